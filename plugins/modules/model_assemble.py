#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: model_assemble
short_description: Assemble a model directory from a checkpoint, or a hybrid one from a base and an MTP part
version_added: "0.3.0"
description:
  - Without O(mtp) - makes O(dest) a copy of O(base) made of hard links (no byte copied; a
    copy where the file systems differ). Nothing to do when O(dest) is O(base).
  - With O(mtp) - assembles a hybrid checkpoint, as GLM-5.2 NVFP4 needs (the NVFP4 base plus
    the real MTP layer C(model.layers.78.*) from a second repository) - every file of the base
    hard-linked, the MTP part's shards that hold the MTP layer added (under another name when
    the base has a file of that name), and C(model.safetensors.index.json) merged tensor by
    tensor. A base shard that holds tensors of the MTP layer is written anew without them (the
    base's files are never changed). It refuses - and changes nothing - unless the MTP part has
    tensors under every prefix of O(layer_prefixes) and every shard its index names for them is
    there, whole, and holds them; afterwards every shard of the merged index must hold its
    tensors.
  - Only what is missing or differs is done, so a second run changes nothing. Reads the
    safetensors headers only, never a tensor. The domain logic is in
    C(plugins/module_utils/model.py).
author:
  - dgxspark.cluster contributors (@dgxspark)
extends_documentation_fragment:
  - dgxspark.cluster.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: One line per file linked or written.
  idempotent:
    support: full
  platform:
    support: full
    platforms: posix
options:
  base:
    description: The checkpoint directory (the base of a hybrid checkpoint).
    type: path
    required: true
  mtp:
    description: The directory of the MTP part (a hybrid checkpoint); none for a plain one.
    type: path
  dest:
    description: The model directory to assemble.
    type: path
    required: true
  layer_prefixes:
    description:
      - The MTP layer's weight-name prefixes, e.g. C(model.layers.78.). Empty - from the
        base's C(config.json) (C(num_hidden_layers), C(num_nextn_predict_layers), architecture).
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Assemble GLM-5.2 NVFP4 with its real MTP layer
  dgxspark.cluster.model_assemble:
    base: /var/lib/dgxspark/model-store/Mapika--GLM-5.2-NVFP4@main
    mtp: /var/lib/dgxspark/model-store/sant1an--GLM-5.2-NVFP4-MTP@main
    dest: /var/lib/dgxspark/models/glm-5.2-nvfp4
"""

RETURN = r"""
actions:
  description: What was (in check mode, would be) done, one line per file.
  returned: always
  type: list
  elements: str
files:
  description: How many files the assembled directory has.
  returned: always
  type: int
mtp_tensors:
  description: How many tensors of the MTP layer the MTP part adds (0 without one).
  returned: always
  type: int
replaced:
  description: Tensors of the base under an MTP prefix, replaced by the MTP part's.
  returned: always
  type: list
  elements: str
extra:
  description: Files in O(dest) the assembly does not make (left alone).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dgxspark.cluster.plugins.module_utils import model


def main():
    module = AnsibleModule(
        argument_spec=dict(
            base=dict(type="path", required=True),
            mtp=dict(type="path"),
            dest=dict(type="path", required=True),
            layer_prefixes=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        plan = model.hybrid_plan(p["base"], p["dest"], p["mtp"], p["layer_prefixes"] or None)
        lines = model.describe(plan)
        if plan["changed"] and not module.check_mode:
            model.apply_plan(plan, p["dest"])
    except model.AssemblyError as exc:
        module.fail_json(msg="%s: %s -- fix: %s" % (exc.path, exc.problem, exc.fix),
                         changed=False)
    except OSError as exc:
        module.fail_json(msg="cannot assemble %s: %s -- fix: give a writable model directory "
                         "on the file system of the sources (hard links)" % (p["dest"], exc))
    result = dict(changed=plan["changed"], actions=lines, files=plan["files"],
                  mtp_tensors=plan["mtp_tensors"], replaced=plan["replaced"], extra=plan["extra"])
    if module._diff:
        result["diff"] = {"before": "", "after": "".join(line + "\n" for line in lines),
                          "after_header": p["dest"]}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
