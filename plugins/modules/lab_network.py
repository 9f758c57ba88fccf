#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: lab_network
short_description: Cable the simulated Spark lab (network namespaces, veth pairs, host bridges)
version_added: "0.1.0"
description:
  - Creates, rewires or removes the host side of the simulated Spark lab on the machine it runs
    on (root). Each node is a network namespace; its fabric interfaces carry the real Spark names
    and are veth pairs whose host ends plug into host bridges (one per twin per cable for rings,
    one for a switch), its management interface C(enP7s7) plugs into a management bridge.
  - Converges to the wiring of O(topology) with O(faults) applied, changing only what differs, so
    a second run reports no change and a fault can be injected or removed on a running lab.
  - O(state=absent) removes every namespace, bridge and veth whose name carries O(prefix) for
    O(nodes), and nothing else. Stop the lab's nodes first (M(dgxspark.cluster.lab_nodes)).
requirements:
  - netaddr (Python, on the host the module runs on; C(pip install netaddr))
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
  nodes:
    description: Node names in cabling order.
    type: list
    elements: str
    required: true
  topology:
    description: How the nodes are cabled.
    type: str
    choices: [ring3, ring4, switch]
    default: ring3
  switch_port:
    description: The Spark port cabled to the switch (switch topology).
    type: str
    choices: [P0, P1]
    default: P1
  faults:
    description:
      - Faults to inject on the host side, each a dict with C(kind) (C(swap), C(mtu), C(down)),
        C(node), and for C(mtu)/C(down) the C(port) (P0/P1), optional C(twin) (0/1) and C(mtu).
    type: list
    elements: dict
    default: []
  prefix:
    description: Prefix of every host object the lab creates (namespaces, bridges, veths).
    type: str
    default: dgx
  mgmt_cidr:
    description: Management network; the host bridge takes its first address, nodes get .11 and up.
    type: str
    default: 10.99.0.0/24
  state:
    description: Whether the lab's network should exist.
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: Cable a 3-node ring
  dgxspark.cluster.lab_network:
    nodes: [spark1, spark2, spark3]
    topology: ring3

- name: Plug spark2's cables into the wrong ports (P0 to P0)
  dgxspark.cluster.lab_network:
    nodes: [spark1, spark2, spark3]
    topology: ring3
    faults:
      - {kind: swap, node: spark2}
"""

RETURN = r"""
wiring:
  description: The desired wiring (bridges, host ports, management ports, faults).
  returned: always
  type: dict
actions:
  description: The commands that changed something (empty when nothing changed).
  returned: always
  type: list
  elements: str
"""

import json

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.dgxspark.cluster.plugins.module_utils.lab import LabError, wiring
from ansible_collections.dgxspark.cluster.plugins.module_utils.topology import (
    HAS_NETADDR, NETADDR_IMPORT_ERROR, NETADDR_REASON)


# What iproute2 prints when the link to delete is already gone: `ip link del` says "No such
# device" (RTNETLINK), other subcommands "Cannot find device". A deleted namespace takes its
# veth ends with it asynchronously, so the host end can vanish between listing and deleting.
GONE_MESSAGES = ("Cannot find device", "No such device")


class Host(object):
    def __init__(self, module):
        self.module = module
        self.actions = []

    def run(self, args, change=True, gone_ok=False):
        if change:
            self.actions.append(" ".join(args))
            if self.module.check_mode:
                return ""
        rc, out, err = self.module.run_command(args)
        if rc != 0 and gone_ok and any(text in err for text in GONE_MESSAGES):
            return out  # a veth whose peer's namespace the kernel is still tearing down
        if rc != 0:
            self.module.fail_json(msg="%s failed: %s" % (" ".join(args), err.strip()),
                                  actions=self.actions)
        return out

    def links(self, netns=None):
        args = ["ip"] + (["-n", netns] if netns else []) + ["-j", "-d", "link", "show"]
        return dict((link["ifname"], link) for link in json.loads(self.run(args, False) or "[]"))

    def netns(self):
        out = self.run(["ip", "-j", "netns", "list"], False).strip()
        return set(item["name"] for item in json.loads(out or "[]"))

    def addresses(self, name):
        out = self.run(["ip", "-j", "addr", "show", "dev", name], False)
        found = []
        for link in json.loads(out or "[]"):
            for info in link.get("addr_info", []):
                found.append("%s/%s" % (info["local"], info["prefixlen"]))
        return found


def ensure_present(host, plan):
    links = host.links()
    for name, bridge in sorted(plan["bridges"].items()):
        if name not in links:
            host.run(["ip", "link", "add", "name", name, "mtu", str(bridge["mtu"]), "type",
                      "bridge"])
            links[name] = {"mtu": bridge["mtu"], "flags": []}
        if links[name].get("mtu") != bridge["mtu"]:
            host.run(["ip", "link", "set", name, "mtu", str(bridge["mtu"])])
        if "UP" not in links[name].get("flags", []):
            host.run(["ip", "link", "set", name, "up"])
        if bridge["address"] and (name not in host.links() or
                                  bridge["address"] not in host.addresses(name)):
            host.run(["ip", "addr", "add", bridge["address"], "dev", name])
    existing_ns = host.netns()
    for node, ns in plan["netns"].items():
        if ns not in existing_ns:
            host.run(["ip", "netns", "add", ns])
    inside = {}
    for ns in plan["netns"].values():
        inside[ns] = host.links(ns) if ns in existing_ns else {}
    for item in plan["ports"] + plan["mgmt"]:
        name, ns, netdev = item["host"], item["netns"], item["netdev"]
        mtu = item.get("mtu", 1500)
        if name in links and netdev not in inside[ns]:
            host.run(["ip", "link", "del", name])  # a half pair: recreate it
            del links[name]
        if name not in links:
            host.run(["ip", "link", "add", name, "mtu", str(mtu), "type", "veth", "peer",
                      "name", netdev, "netns", ns])
            links[name] = {"mtu": mtu, "flags": [], "master": None}
        if links[name].get("master") != item["bridge"]:
            host.run(["ip", "link", "set", name, "master", item["bridge"]])
        if links[name].get("mtu") != mtu:
            host.run(["ip", "link", "set", name, "mtu", str(mtu)])
        up = item.get("up", True)
        if up and "UP" not in links[name].get("flags", []):
            host.run(["ip", "link", "set", name, "up"])
        if not up and "UP" in links[name].get("flags", []):
            host.run(["ip", "link", "set", name, "down"])


def ensure_absent(host, plan):
    existing_ns = host.netns()
    for ns in plan["netns"].values():
        if ns in existing_ns:
            host.run(["ip", "netns", "del", ns])
    links = host.links()
    owned = set(item["host"] for item in plan["ports"] + plan["mgmt"]) | set(plan["bridges"])
    for name in sorted(owned):
        if name in links:
            host.run(["ip", "link", "del", name], gone_ok=True)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            nodes=dict(type="list", elements="str", required=True),
            topology=dict(type="str", choices=["ring3", "ring4", "switch"], default="ring3"),
            switch_port=dict(type="str", choices=["P0", "P1"], default="P1"),
            faults=dict(type="list", elements="dict", default=[]),
            prefix=dict(type="str", default="dgx"),
            mgmt_cidr=dict(type="str", default="10.99.0.0/24"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        supports_check_mode=True,
    )
    if not HAS_NETADDR:
        module.fail_json(msg=missing_required_lib("netaddr", reason=NETADDR_REASON),
                         exception=NETADDR_IMPORT_ERROR)
    params = module.params
    try:
        plan = wiring(params["nodes"], params["topology"], prefix=params["prefix"],
                      switch_port=params["switch_port"], faults=params["faults"],
                      mgmt_cidr=params["mgmt_cidr"])
    except LabError as exc:
        module.fail_json(msg=str(exc), variable=exc.variable)
    host = Host(module)
    if params["state"] == "present":
        ensure_present(host, plan)
    else:
        ensure_absent(host, plan)
    module.exit_json(changed=bool(host.actions), actions=host.actions, wiring=plan)


if __name__ == "__main__":
    main()
