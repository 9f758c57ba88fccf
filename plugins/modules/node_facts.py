#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: node_facts
short_description: Read in one call what the stages need to know about a Spark
version_added: "0.2.0"
description:
  - Returns the node's kernel, its GPU and driver (C(nvidia-smi), when installed), its memory
    (C(/proc/meminfo)), the IPv4 addresses of every interface (C(ip -j addr show)), and the
    records the collection's roles leave in C(/etc/ansible/facts.d) - C(dgxspark_fabric)
    (the node's fabric and NCCL environment), C(dgxspark_image) (the image it holds, with its
    NCCL labels), C(dgxspark_cluster) (the cluster it is part of and the node's units) and
    C(dgxspark_memory_guard) (earlyoom's thresholds and command line) - and the last kill the
    memory guard handled.
  - On request, in the same call - the state of systemd units (O(units)) and the command
    lines their main processes run with (O(unit_commands)), kernel settings (O(sysctl)),
    whether paths exist (O(paths)), a model directory's manifest (O(model), as
    M(dgxspark.cluster.model_manifest) returns it) and a checkpoint's findings (O(checkpoint),
    as M(dgxspark.cluster.model_checkpoint) returns them), so that a stage reads all it needs
    of a node in one round trip.
  - The checks made with these facts are decided elsewhere (C(plugins/module_utils/findings/)).
    Read-only.
author:
  - dgxspark.cluster contributors (@dgxspark)
extends_documentation_fragment:
  - dgxspark.cluster.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
  platform:
    support: full
    platforms: linux
options:
  node:
    description:
      - Read the node itself (RV(node)); V(false) reads only what the other options ask for
        (no C(nvidia-smi), no C(ip)).
    type: bool
    default: true
  facts_dir:
    description: Where the roles' records are.
    type: path
    default: /etc/ansible/facts.d
  units:
    description:
      - Also read these systemd units' C(Id), C(LoadState), C(UnitFileState) and C(ActiveState)
        (RV(units)).
    type: list
    elements: str
    default: []
  sysctl:
    description: Also read these kernel settings (RV(sysctl)).
    type: list
    elements: str
    default: []
  unit_commands:
    description: Also read the command line the main process of each of these units runs with (RV(unit_commands)).
    type: list
    elements: str
    default: []
  paths:
    description: Also say whether each of these paths exists (RV(paths)), keyed as given.
    type: list
    elements: str
    default: []
  model:
    description:
      - Also read this model directory's manifest (RV(model)); the options of
        M(dgxspark.cluster.model_manifest).
    type: dict
    suboptions:
      path:
        description: The model directory.
        type: path
        required: true
      hash_limit:
        description: Files up to this many bytes are hashed whole.
        type: int
        default: 67108864
      full:
        description: Hash every file whole.
        type: bool
        default: false
  checkpoint:
    description:
      - Also check the safetensors checkpoint in this directory (RV(checkpoint)); the options
        of M(dgxspark.cluster.model_checkpoint).
    type: dict
    suboptions:
      path:
        description: The model directory.
        type: path
        required: true
      mtp:
        description: The plan drafts with MTP.
        type: bool
        default: false
      mtp_prefixes:
        description: The MTP layers' weight-name prefixes; empty - from the checkpoint's C(config.json).
        type: list
        elements: str
        default: []
      profile:
        description: The recipe's model profile (a parsed C(config.json)); its quantization must be the checkpoint's.
        type: dict
      profile_name:
        description: How the messages name the profile.
        type: str
        default: ""
"""

EXAMPLES = r"""
- name: Read what this Spark is
  dgxspark.cluster.node_facts:
  register: node

- name: Read what this Spark is, its model directory, and (on the head) the checkpoint
  dgxspark.cluster.node_facts:
    model:
      path: /var/lib/dgxspark/models/glm-5.2-nvfp4
    checkpoint: "{{ {'path': '/var/lib/dgxspark/models/glm-5.2-nvfp4', 'mtp': true}
      if inventory_hostname == groups['sparks'][0] else omit }}"
  register: node
"""

RETURN = r"""
node:
  description:
    - C(kernel); C(gpu) (C(name), C(driver)) or null with C(gpu_error); C(memory_kib)
      (C(MemTotal), C(MemAvailable), C(SwapTotal), C(SwapFree)); C(addresses) (interface to its
      IPv4 addresses) and C(addresses_error); C(records) (C(fabric), C(image), C(cluster),
      C(memory_guard) - each the role's JSON record, null when absent, or C({error}) when
      unreadable); C(memory_guard_last_kill) (the last line of the guard's events file - C(name),
      C(pid), C(time), C(engine), C(stopped) - or null).
  returned: when O(node) is true
  type: dict
units:
  description:
    - What C(systemctl show --property=Id,LoadState,UnitFileState,ActiveState) printed for
      O(units) (the C(dgxspark.cluster.units_to_stop), C(units_down) and C(units_to_start)
      filters read it); empty without O(units).
  returned: always
  type: str
sysctl:
  description: What C(sysctl KEY...) printed for O(sysctl) (C(key = value) lines; a key the kernel lacks is not listed).
  returned: always
  type: str
unit_commands:
  description: Each of O(unit_commands) and its main process's command line (a list; empty when none runs).
  returned: always
  type: dict
paths:
  description: Each of O(paths) and whether it exists.
  returned: always
  type: dict
model:
  description:
    - C(exists) and C(manifest) of the model directory, as M(dgxspark.cluster.model_manifest)
      returns them.
  returned: when O(model) is given
  type: dict
checkpoint:
  description:
    - C(exists), C(findings), C(errors) and C(warnings), as
      M(dgxspark.cluster.model_checkpoint) returns them.
  returned: when O(checkpoint) is given
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dgxspark.cluster.plugins.module_utils import checkpoint
from ansible_collections.dgxspark.cluster.plugins.module_utils.model_manifest import (
    OPTIONS as MANIFEST_OPTIONS, ManifestError, read_directory)
from ansible_collections.dgxspark.cluster.plugins.module_utils.node import (
    paths_exist, read_facts, read_sysctl, read_units, unit_commands)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            node=dict(type="bool", default=True),
            facts_dir=dict(type="path", default="/etc/ansible/facts.d"),
            units=dict(type="list", elements="str", default=[]),
            paths=dict(type="list", elements="str", default=[]),
            sysctl=dict(type="list", elements="str", default=[]),
            unit_commands=dict(type="list", elements="str", default=[]),
            model=dict(type="dict", options=MANIFEST_OPTIONS),
            checkpoint=dict(type="dict", options=checkpoint.OPTIONS),
        ),
        supports_check_mode=True,
    )
    p = module.params
    result = {"paths": paths_exist(p["paths"]), "sysctl": read_sysctl(p["sysctl"]),
              "unit_commands": unit_commands(p["unit_commands"])}
    if p["node"]:
        result["node"] = read_facts(p["facts_dir"])
    try:
        result["units"] = read_units(p["units"])
    except RuntimeError as exc:
        module.fail_json(msg=str(exc))
    if p["model"] is not None:
        try:
            result["model"] = read_directory(p["model"]["path"], p["model"]["hash_limit"],
                                             p["model"]["full"])
        except ManifestError as exc:
            module.fail_json(msg=str(exc))
    if p["checkpoint"] is not None:
        c = p["checkpoint"]
        result["checkpoint"] = checkpoint.report(c["path"], c["mtp"], c["mtp_prefixes"],
                                                 c["profile"], c["profile_name"])
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
