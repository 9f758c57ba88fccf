#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: fabric_plan
short_description: Plan the RoCE fabric of a Spark cluster from its node list and topology
version_added: "0.1.0"
description:
  - Derives, from the ordered node list, the topology and a subnet pool (or explicit subnets),
    every node's fabric interfaces with address, peer and MTU (one subnet per twin per cable),
    the control-plane identity address and its routes, and the per-node NCCL / Gloo / vLLM
    environment (C(NCCL_IB_HCA), C(NCCL_SOCKET_IFNAME), C(GLOO_SOCKET_IFNAME), C(VLLM_HOST_IP),
    C(NCCL_IB_DISABLE), ring and switch settings, C(NCCL_IB_GID_INDEX) where known).
  - Refuses wrong inventories before any host is touched (an empty or duplicate node name, a
    topology the node count cannot have, a full mesh (ring3 for 3 nodes; 4 need more ports than
    a Spark has), overlapping subnets, a pool or prefix too small for the nodes, a management
    address inside the fabric), with a message that names the variable and the fix.
  - Runs on the controller; changes nothing.
  - Where the task runs on the controller (a local connection, as with C(delegate_to) localhost)
    its action plugin computes the result in Ansible's own process, with no interpreter to
    start; anywhere else it runs as a module. The result is the same.
requirements:
  - netaddr (Python, on the controller where the module runs; C(pip install netaddr))
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
    platforms: posix
options:
  nodes:
    description: Node names (inventory hostnames) in cabling order; at most 64.
    type: list
    elements: str
    required: true
  topology:
    description: C(ring3), C(ring4) or C(switch).
    type: str
    required: true
  subnet_pool:
    description: Pool the per-twin subnets are taken from, in cable order.
    type: str
    default: 10.20.0.0/16
  prefixlen:
    description: Prefix length of each per-twin subnet.
    type: int
    default: 24
  subnets:
    description: Explicit subnets instead of the pool, two per cable (twin 0, twin 1) in cable order.
    type: list
    elements: str
  mtu:
    description: MTU of every fabric interface.
    type: int
    default: 9000
  switch_port:
    description: Port of each node cabled to the switch.
    type: str
    default: P1
  host_base:
    description: Host number of the first node in every subnet (the others follow).
    type: int
    default: 11
  management:
    description:
      - Node to management address (C(ansible_host)); none may lie in a fabric subnet.
      - An address is read in every spelling a tool may read it (C(10.20.2.12/24), leading
        zeros as decimal and as the octal ssh and glibc read, C(inet_aton) forms); a DNS name is
        checked on the live interface by the fabric role instead.
    type: dict
    default: {}
  gid_index:
    description:
      - Node to RoCE GID index found by RDMA discovery (sets C(NCCL_IB_GID_INDEX)); an integer
        from 0 to 65535.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Plan a 3-node ring
  dgxspark.cluster.fabric_plan:
    nodes: [spark1, spark2, spark3]
    topology: ring3
  delegate_to: localhost
  run_once: true
  register: fabric
"""

RETURN = r"""
plan:
  description:
    - C(nodes) (per node C(interfaces), C(identity), C(routes), C(forwarding), C(env),
      C(sysctl) - the kernel settings it needs),
      C(cables), C(links) (every directed link), C(subnets) and C(notes) (the documented
      NCCL choices).
  returned: success
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dgxspark.cluster.plugins.module_utils.controller import finish
from ansible_collections.dgxspark.cluster.plugins.module_utils.topology import (
    ARGUMENT_SPEC, compute)


def main():
    # on the controller the action plugin of the same name runs compute in Ansible's process
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    finish(module, compute(module.params))


if __name__ == "__main__":
    main()
