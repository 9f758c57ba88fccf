#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: fabric_facts
short_description: Read in one call what the fabric role checks on a node before it changes anything
version_added: "0.3.0"
description:
  - Returns the node's interfaces and addresses (C(ip -j addr show)), the address Ansible
    reached the node at (C(SSH_CONNECTION) of the module or of the nearest process above it
    that has it; become clears it from the module's own environment), the netplan files other
    than the fabric role's own that name a fabric interface, the live values of the fabric's
    kernel settings (C(sysctl KEY...)) and the node's RoCE devices mapped to the fabric
    interfaces (as M(dgxspark.cluster.rdma_facts) returns them).
  - The decisions are made elsewhere (C(plugins/module_utils/fabric_check.py),
    C(plugins/module_utils/rdma.py)). Read-only.
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
  sysctl:
    description: The kernel settings to read (C(net.ipv4.conf.<netdev>.arp_ignore) and the like).
    type: list
    elements: str
    default: []
  netplan_dir:
    description: Where netplan's files are.
    type: path
    default: /etc/netplan
  netplan_file:
    description: The fabric role's own netplan file (not reported).
    type: path
    required: true
  sysfs_root:
    description: Where sysfs is mounted (tests point it at a recorded tree).
    type: path
    default: /sys
  required_active_mtu:
    description: The C(active_mtu) every fabric port must report.
    type: int
    default: 4096
"""

EXAMPLES = r"""
- name: Read the node's fabric state
  dgxspark.cluster.fabric_facts:
    interfaces:
      - {netdev: enp1s0f0np0, ip: 192.168.100.11}
    sysctl: [net.ipv4.conf.enp1s0f0np0.arp_ignore]
    netplan_file: /etc/netplan/60-dgxspark-fabric.yaml
  register: fabric_read
"""

RETURN = r"""
ip_addr:
  description: What C(ip -j addr show) printed, parsed (one entry per interface).
  returned: always
  type: list
  elements: dict
ssh_server:
  description: The node's address of the SSH connection Ansible came over; empty without one.
  returned: always
  type: str
other_netplan:
  description: The netplan files other than O(netplan_file) that name a fabric interface.
  returned: always
  type: list
  elements: str
sysctl:
  description:
    - What C(sysctl KEY...) printed (C(key = value) lines; a key the kernel lacks is not
      listed); empty when O(sysctl) is.
  returned: always
  type: str
rdma:
  description:
    - C(present), C(devices), C(selection), C(problems) and C(env), as
      M(dgxspark.cluster.rdma_facts) returns them.
  returned: always
  type: dict
"""

import glob
import json
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dgxspark.cluster.plugins.module_utils.fabric_check import (
    other_netplan_files, ssh_server_address)
from ansible_collections.dgxspark.cluster.plugins.module_utils.node import read_sysctl
from ansible_collections.dgxspark.cluster.plugins.module_utils.rdma import module_facts


def _netplan_files(directory):
    out = []
    for path in sorted(glob.glob(os.path.join(directory, "*.yaml"))):
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                out.append((path, handle.read()))
        except OSError:
            continue
    return out


def main():
    module = AnsibleModule(
        argument_spec=dict(
            interfaces=dict(type="list", elements="dict", required=True),
            sysctl=dict(type="list", elements="str", default=[]),
            netplan_dir=dict(type="path", default="/etc/netplan"),
            netplan_file=dict(type="path", required=True),
            sysfs_root=dict(type="path", default="/sys"),
            required_active_mtu=dict(type="int", default=4096),
        ),
        supports_check_mode=True,
    )
    p = module.params
    rc, out, err = module.run_command(["ip", "-j", "addr", "show"])
    if rc != 0:
        module.fail_json(msg="ip -j addr show failed (rc %d): %s" % (rc, err.strip()))
    try:
        ip_addr = json.loads(out)
    except ValueError:
        module.fail_json(msg="ip -j addr show printed no JSON: %.80r (iproute2 4.14 or newer "
                             "prints JSON)" % out)
    netdevs = [str(i.get("netdev", "")) for i in p["interfaces"] if i.get("netdev")]
    other = other_netplan_files(_netplan_files(p["netplan_dir"]), netdevs, p["netplan_file"])
    sysctl_output = read_sysctl(p["sysctl"])
    try:
        rdma = module_facts(module, p["sysfs_root"], p["interfaces"], p["required_active_mtu"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, ip_addr=ip_addr, ssh_server=ssh_server_address(),
                     other_netplan=other, sysctl=sysctl_output, rdma=rdma)


if __name__ == "__main__":
    main()
