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
  facts_dir:
    description: Where the roles' records are.
    type: path
    default: /etc/ansible/facts.d
"""

EXAMPLES = r"""
- name: Read what this Spark is
  dgxspark.cluster.node_facts:
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
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dgxspark.cluster.plugins.module_utils.node import read_facts


def main():
    module = AnsibleModule(
        argument_spec=dict(facts_dir=dict(type="path", default="/etc/ansible/facts.d")),
        supports_check_mode=True,
    )
    module.exit_json(changed=False, node=read_facts(module.params["facts_dir"]))


if __name__ == "__main__":
    main()
