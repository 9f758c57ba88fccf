# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""The simulated Spark lab's wiring, as data (plain Python, no side effects).

Every simulated Spark is a network namespace with an nspawn node in it. Its fabric
interfaces carry the real Spark names (``enp1s0f0np0`` ...); each is one end of a veth pair
whose other end stays on the host, plugged into a host bridge:

* rings: one bridge per twin per cable (a "patch cord", MTU 9216) with the two ends of
  that cable twin, cabled exactly as ``topology.cables_for`` says (P0 of node i to P1 of
  node i+1);
* switch: one bridge for every fabric port (the MikroTik stand-in, MTU 9216).

Faults change only the host side, never a node: ``swap`` plugs a node's P0 and P1 cables
into each other's ports (the P0-to-P0 mistake), ``mtu`` lowers one host port (a switch port
or one cable end) to e.g. 1500, ``down`` takes one host port down (the node sees no carrier).
Management is a separate host bridge with one ``enP7s7`` per node.
"""
from __future__ import annotations

from .plan.errors import InputError
from .topology import HAS_NETADDR, PORTS, TopologyError, cables_for

if HAS_NETADDR:  # topology.py says how to install it when it is missing
    from netaddr import AddrFormatError, IPNetwork

FAULT_KINDS = ("swap", "mtu", "down")
MGMT_NETDEV = "enP7s7"
BRIDGE_MTU = 9216


class LabError(InputError):
    """Bad lab input: names the variable, the value and the fix."""


def names(prefix, nodes):
    """Host-side names: netns, bridges and veths (all <= 15 characters)."""
    if not prefix.isalnum() or len(prefix) > 6:
        raise LabError("lab_prefix", prefix, "must be 1-6 letters or digits",
                       "use the default 'dgx'")
    return {
        "netns": dict((node, "%s-%s" % (prefix, node)) for node in nodes),
        "mgmt_bridge": "%smgmt" % prefix,
        "mgmt_host": dict((node, "%sm%d" % (prefix, i + 1)) for i, node in enumerate(nodes)),
        "port_host": dict(((node, port, twin), "%s%d%s%d" % (prefix, i + 1, port.lower(), twin))
                          for i, node in enumerate(nodes) for port in PORTS for twin in (0, 1)),
    }


def _validate_faults(faults, nodes, topology, switch_port):
    out = []
    for fault in faults or []:
        if not isinstance(fault, dict) or fault.get("kind") not in FAULT_KINDS:
            raise LabError("lab_faults", fault, "each fault needs kind: swap, mtu or down",
                           "e.g. {kind: swap, node: spark2} or {kind: mtu, node: spark1, "
                           "port: P0, mtu: 1500}")
        node = fault.get("node")
        if node not in nodes:
            raise LabError("lab_faults", fault, "node %r is not a lab node" % node,
                           "use one of %s" % ", ".join(nodes))
        if fault["kind"] == "swap" and topology == "switch":
            raise LabError("lab_faults", fault, "a switch fabric has one cable per node",
                           "inject swap faults on ring3 or ring4")
        port = fault.get("port", switch_port if topology == "switch" else "P0")
        if port not in PORTS:
            raise LabError("lab_faults", fault, "port must be P0 or P1", "set port: P0 or P1")
        twins = [fault["twin"]] if fault.get("twin") in (0, 1) else [0, 1]
        mtu = fault.get("mtu", 1500)
        if fault["kind"] == "mtu" and (not isinstance(mtu, int) or mtu < 576):
            raise LabError("lab_faults", fault, "mtu must be an integer >= 576", "use 1500")
        out.append({"kind": fault["kind"], "node": node, "port": port, "twins": twins,
                    "mtu": mtu})
    return out


def wiring(nodes, topology, prefix="dgx", switch_port="P1", faults=None,
           mgmt_cidr="10.99.0.0/24"):
    """The lab's desired host-side state: bridges, host ports and node interfaces."""
    if topology not in ("ring3", "ring4", "switch"):
        raise LabError("lab_topology", topology, "is not a lab topology",
                       "use ring3, ring4 or switch")
    try:
        cables = cables_for(topology, list(nodes), switch_port)
    except TopologyError as exc:
        raise LabError("lab_topology", topology, str(exc), "see the topology's node count")
    want = {"ring3": 3, "ring4": 4}.get(topology)
    if want and len(nodes) != want or topology == "switch" and not 2 <= len(nodes) <= 8:
        raise LabError("lab_nodes", len(nodes), "%s needs %s nodes" % (
            topology, want or "2 to 8"), "set lab_nodes accordingly")
    try:
        mgmt = IPNetwork(mgmt_cidr)
    except (AddrFormatError, ValueError):
        raise LabError("lab_mgmt_cidr", mgmt_cidr, "is not a network", "use 10.99.0.0/24")
    if mgmt.size < len(nodes) + 12:
        raise LabError("lab_mgmt_cidr", mgmt_cidr, "is too small", "use a /24")
    faults = _validate_faults(faults, list(nodes), topology, switch_port)
    n = names(prefix, nodes)

    ports = []  # one per host veth
    bridges = {n["mgmt_bridge"]: {"mtu": 1500, "address": "%s/%d" % (
        mgmt.network + 1, mgmt.prefixlen)}}
    plug = {}   # (node, port) -> cable key, before faults
    for c, (a, pa, b, pb) in enumerate(cables):
        if topology == "switch":
            plug[(a, pa)] = "sw"
        else:
            plug[(a, pa)] = "c%d" % (c + 1)
            plug[(b, pb)] = "c%d" % (c + 1)
    for fault in faults:
        if fault["kind"] == "swap":
            node = fault["node"]
            plug[(node, "P0")], plug[(node, "P1")] = plug[(node, "P1")], plug[(node, "P0")]
    for (node, port), cable in sorted(plug.items(), key=lambda kv: (nodes.index(kv[0][0]),
                                                                    kv[0][1])):
        for twin in (0, 1):
            bridge = "%ssw0" % prefix if cable == "sw" else "%s%st%d" % (prefix, cable, twin)
            if cable == "sw" and twin == 1:
                bridge = "%ssw0" % prefix  # both twins share the switch bridge (L2)
            bridges.setdefault(bridge, {"mtu": BRIDGE_MTU, "address": None})
            ports.append({"node": node, "netns": n["netns"][node],
                          "host": n["port_host"][(node, port, twin)],
                          "netdev": PORTS[port][twin]["netdev"], "port": port, "twin": twin,
                          "bridge": bridge, "mtu": BRIDGE_MTU, "up": True})
    for fault in faults:
        for item in ports:
            if item["node"] == fault["node"] and item["port"] == fault["port"] and \
                    item["twin"] in fault["twins"]:
                if fault["kind"] == "mtu":
                    item["mtu"] = fault["mtu"]
                elif fault["kind"] == "down":
                    item["up"] = False
    mgmt_ports = []
    for i, node in enumerate(nodes):
        mgmt_ports.append({"node": node, "netns": n["netns"][node], "host": n["mgmt_host"][node],
                           "netdev": MGMT_NETDEV, "bridge": n["mgmt_bridge"],
                           "address": "%s/%d" % (mgmt.network + 11 + i, mgmt.prefixlen),
                           "ip": str(mgmt.network + 11 + i)})
    return {"topology": topology, "prefix": prefix, "nodes": list(nodes), "netns": n["netns"],
            "bridges": bridges, "ports": ports, "mgmt": mgmt_ports,
            "mgmt_gateway": str(mgmt.network + 1), "faults": faults}
