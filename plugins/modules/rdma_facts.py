#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: rdma_facts
short_description: Map a node's fabric netdevs to RoCE devices and find their GID indexes
version_added: "0.1.0"
description:
  - Reads C(/sys/class/infiniband), and C(ibv_devinfo) for C(active_mtu) when installed, to
    learn each RoCE device's netdev, port state, link layer and GID table.
  - For every fabric interface given, finds its RoCE device and the GID index of type RoCE v2
    that carries the interface's IPv4 address (it can differ between nodes and twins), checks
    that the port is ACTIVE and that C(active_mtu) is 4096, and returns the NCCL GID setting.
  - On a host without RoCE devices (the simulated lab) returns RV(present=false) and nothing else.
  - Read-only.
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
  interfaces:
    description: Fabric interfaces, each a dict with C(netdev) and C(ip).
    type: list
    elements: dict
    required: true
  sysfs_root:
    description: Where sysfs is mounted (tests point it at a recorded tree).
    type: path
    default: /sys
  required_active_mtu:
    description: The RoCE C(active_mtu) the fabric must reach (4096 needs netdev MTU 9000).
    type: int
    default: 4096
"""

EXAMPLES = r"""
- name: Discover RDMA on this Spark
  dgxspark.cluster.rdma_facts:
    interfaces:
      - {netdev: enp1s0f1np1, ip: 192.168.100.10}
  register: rdma
"""

RETURN = r"""
present:
  description: Whether the host has RoCE devices.
  returned: always
  type: bool
devices:
  description: Per RoCE device, its netdevs and ports (state, link layer, active_mtu, GIDs).
  returned: always
  type: dict
selection:
  description: Per fabric netdev, its RoCE device, port, state and GID index.
  returned: always
  type: dict
problems:
  description: What keeps an interface from RDMA (no device, port down, no RoCE v2 GID, small active_mtu).
  returned: always
  type: list
  elements: str
env:
  description: The NCCL GID setting for this node (C(NCCL_IB_GID_INDEX), or RoCE v2 over IPv4 when the indexes differ).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dgxspark.cluster.plugins.module_utils.rdma import module_facts


def main():
    module = AnsibleModule(
        argument_spec=dict(
            interfaces=dict(type="list", elements="dict", required=True),
            sysfs_root=dict(type="path", default="/sys"),
            required_active_mtu=dict(type="int", default=4096),
        ),
        supports_check_mode=True,
    )
    try:
        result = module_facts(module, module.params["sysfs_root"], module.params["interfaces"],
                              module.params["required_active_mtu"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
