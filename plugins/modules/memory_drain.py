#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: memory_drain
short_description: Give a Spark's unified memory back before a launch (swap drained, page cache dropped)
version_added: "0.2.0"
description:
  - On a Spark the GPU and the OS share 128 GB, and vLLM sizes itself from what is free when it
    starts. Before a launch this moves swapped pages back to RAM (C(swapoff -a; swapon -a),
    only when they fit in MemAvailable) and drops the page cache (C(sync), C(echo 3 >
    /proc/sys/vm/drop_caches), where C(/proc/sys/vm) is writable), and reports MemAvailable and
    swap before and after.
  - Used by the vllm_cluster role before every launch and by the os_prune role's C(prepare)
    entry point.
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
    support: none
    details: Dropping caches and cycling swap is an action, reported as a change each time it is done.
  platform:
    support: full
    platforms: linux
options:
  drain_swap:
    description: Move swapped pages back to RAM when they fit.
    type: bool
    default: true
  drop_caches:
    description: Drop the page cache.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Give the memory back before the launch
  dgxspark.cluster.memory_drain:
  register: drained
"""

RETURN = r"""
done:
  description: What was done (empty when nothing was needed).
  returned: always
  type: list
  elements: str
notes:
  description: What was not done and why (swap that does not fit, a read-only /proc/sys/vm).
  returned: always
  type: list
  elements: str
before_kib:
  description: MemAvailable, SwapTotal and SwapFree before (KiB).
  returned: always
  type: dict
after_kib:
  description: The same after (KiB; as before in check mode).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dgxspark.cluster.plugins.module_utils.node import drain


def main():
    module = AnsibleModule(
        argument_spec=dict(drain_swap=dict(type="bool", default=True),
                           drop_caches=dict(type="bool", default=True)),
        supports_check_mode=True,
    )
    try:
        result = drain(module.params["drain_swap"], module.params["drop_caches"],
                       module.check_mode)
    except (RuntimeError, OSError) as exc:
        module.fail_json(msg="cannot give the memory back: %s" % exc)
    module.exit_json(changed=bool(result["done"]), **result)


if __name__ == "__main__":
    main()
