# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Fabric topology planner: from the ordered node list and a topology to every interface.

A DGX Spark's ConnectX-7 has two QSFP ports; each port is two PCIe functions, so two "twin"
netdevs and two RoCE devices (~100G each; both twins together make the 200G link):

=====  ================  ==============  ===================  ==============
port   twin 0 netdev     twin 0 RoCE     twin 1 netdev        twin 1 RoCE
=====  ================  ==============  ===================  ==============
P0     enp1s0f0np0       rocep1s0f0      enP2p1s0f0np0        roceP2p1s0f0
P1     enp1s0f1np1       rocep1s0f1      enP2p1s0f1np1        roceP2p1s0f1
=====  ================  ==============  ===================  ==============

Topologies (NVIDIA connect-three-sparks, eugr/spark-vllm-docker docs/NETWORKING.md):

* ``ring3`` / ``ring4``: cable *i* joins P0 of node *i* to P1 of node *i+1* (the last node's
  P0 returns to the first node's P1). NCCL pairs HCAs by device index, so a P0-P0 cable hangs
  it: cabling is part of the plan and the fabric role verifies it.
* ``switch``: one port per node (P1 by default, as NVIDIA's switch guide) into one bridge.

Addressing: one subnet per twin per cable (twins never share a subnet: "assigning two distinct
network interfaces to the same subnet causes routing ambiguity and NCCL failures"), taken in
cable order from a pool (or given explicitly); a node's host number is ``host_base + index``
in every subnet (spark1 .11, spark2 .12, ...), so an address names its node.

Control plane: vLLM, Ray, Gloo and the NCCL bootstrap need one address per node that every
other node reaches (``VLLM_HOST_IP``; a 169.254 or a neighbour-only address hangs or crashes
the launch). The planner gives each node an *identity* address on the fabric: on a switch, the
twin-0 address; on ``ring3`` the node's P0 twin-0 address plus /32 routes to the others'
identities over the direct cables (in a triangle every pair is cabled); on ``ring4`` the same,
and the opposite node is reached through one neighbour (the lower-indexed intermediate, so
routes are symmetric), which forwards on its twin-0 fabric interfaces only. RDMA traffic never
takes these routes: NCCL uses the RoCE devices of ``NCCL_IB_HCA`` directly.
"""
from __future__ import annotations

import socket
import traceback

# netaddr is a controller requirement (requirements.txt); a module that plans the fabric says
# so with missing_required_lib(NETADDR_REASON) when it is missing (fabric_plan, lab_network).
try:
    from netaddr import AddrFormatError, IPAddress, IPNetwork, IPSet
except ImportError:
    HAS_NETADDR = False
    NETADDR_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_NETADDR = True
    NETADDR_IMPORT_ERROR = None
NETADDR_REASON = ("to plan the fabric's subnets and addresses: install it on the controller "
                  "with `pip install netaddr` (requirements.txt pins it)")

from .plan.errors import InputError
from .plan.request import MAX_NODES  # the same bound as vllm_plan's nodes

PORTS = {
    "P0": ({"netdev": "enp1s0f0np0", "rdma": "rocep1s0f0"},
           {"netdev": "enP2p1s0f0np0", "rdma": "roceP2p1s0f0"}),
    "P1": ({"netdev": "enp1s0f1np1", "rdma": "rocep1s0f1"},
           {"netdev": "enP2p1s0f1np1", "rdma": "roceP2p1s0f1"}),
}
FABRIC_NETDEVS = tuple(t["netdev"] for port in ("P0", "P1") for t in PORTS[port])
TOPOLOGIES = ("ring3", "ring4", "switch")
RING_SIZES = {"ring3": 3, "ring4": 4}

# The documented NCCL choices (see plan()["notes"] for the why).
NCCL_RING = {"NCCL_IB_SUBNET_AWARE_ROUTING": "1", "NCCL_NET_PLUGIN": "none",
             "NCCL_IB_MERGE_NICS": "0"}
NCCL_RING4 = {"NCCL_ALGO": "Ring", "NCCL_MIN_NCHANNELS": "4"}
NCCL_SWITCH = {"NCCL_MIN_NCHANNELS": "8", "NCCL_MAX_NCHANNELS": "8"}
NOTES = [
    "NCCL_IB_HCA lists the RoCE devices of the node's own cabled interfaces only (a live HCA "
    "on another subnet fails ncclCommInitRank with ibv_modify_qp 110).",
    "Rings: NCCL_IB_SUBNET_AWARE_ROUTING=1 and NCCL_NET_PLUGIN=none (NVIDIA ring setup, "
    "eugr mesh/ring); NCCL_IB_MERGE_NICS=0 as both NVIDIA's ring script and eugr set it (one "
    "4-ring field report kept the default 1; the published setups win).",
    "ring4: NCCL_ALGO=Ring because trees connect opposite ranks, which RoCE cannot reach "
    "(ncclTransportTreeConnect 'unhandled system error'); 4 channels as the sparknet tp4-ring "
    "profile.",
    "switch: NCCL_IB_MERGE_NICS left at NCCL's default (1: both twins as one 200G NIC took a "
    "2-node pair from 98 to 161 Gb/s); 8 channels gave the best CRS804 all_gather (23.86 GB/s).",
    "NCCL_IB_GID_INDEX is set per node from the GID that carries the node's fabric IPv4 "
    "(it differs between nodes and twins: 3 on some, 5 on others); unset where no RDMA device "
    "exists, so NCCL picks.",
]


class TopologyError(InputError):
    """Bad fabric input: names the variable, the value and the fix."""


def _net(variable, value):
    try:
        net = IPNetwork(str(value))
    except (AddrFormatError, ValueError, TypeError):
        raise TopologyError(variable, value, "is not an IPv4 network",
                            "use CIDR notation such as 10.20.0.0/16")
    if net.version != 4:
        raise TopologyError(variable, value, "is not IPv4", "use an IPv4 network")
    if net.ip != net.network:
        raise TopologyError(variable, value, "has host bits set",
                            "use the network address, e.g. %s" % net.cidr)
    return net


def cables_for(topology, nodes, switch_port="P1"):
    """Cables as (node a, port a, node b, port b); for a switch, one per node (b = None)."""
    if topology in RING_SIZES:
        n = len(nodes)
        return [(nodes[i], "P0", nodes[(i + 1) % n], "P1") for i in range(n)]
    return [(node, switch_port, None, None) for node in nodes]


MESHES = ("mesh", "full_mesh", "mesh3", "mesh4")


def _mesh(nodes):
    """(problem, fix) for a full mesh of these nodes (a Spark has 2 QSFP ports)."""
    n = len(nodes)
    if n == 3:
        return ("a full mesh of 3 Sparks is called ring3 here: in a triangle every pair of "
                "Sparks is cabled, with the 2 QSFP ports each Spark has",
                "use fabric_topology: ring3")
    if n == 2:
        return ("a full mesh of 2 Sparks is one direct cable, which this planner does not plan",
                "use fabric_topology: switch (or add a third Spark and use ring3)")
    return ("a full mesh of %d Sparks needs %d QSFP ports per node, a Spark has 2" % (n, n - 1),
            "use ring4 for 4 nodes, or switch" if n == 4 else "use fabric_topology: switch")


def _validate_nodes(nodes, topology):
    if not isinstance(nodes, (list, tuple)) or not nodes:
        raise TopologyError("fabric_nodes", nodes, "must be a non-empty list of node names",
                            "list the Sparks in cabling order, e.g. [spark1, spark2, spark3]")
    if len(nodes) > MAX_NODES:
        raise TopologyError("fabric_nodes", "%d nodes" % len(nodes),
                            "lists more Sparks than the planner's bound (%d)" % MAX_NODES,
                            "plan a fabric of at most %d Sparks" % MAX_NODES)
    seen = set()
    for index, node in enumerate(nodes):
        if not isinstance(node, str) or not node.strip() or node != node.strip():
            raise TopologyError("fabric_nodes", list(nodes), "entry %d (%r) is not a node name"
                                % (index, node), "list the Sparks' inventory hostnames, "
                                "e.g. [spark1, spark2, spark3]")
        if node in seen:
            raise TopologyError("fabric_nodes", list(nodes), "lists %s twice" % node,
                                "list each Spark once, in cabling order")
        seen.add(node)
    if not isinstance(topology, str):
        raise TopologyError("fabric_topology", topology, "is not a known topology",
                            "use one of %s" % ", ".join(TOPOLOGIES))
    if topology in MESHES:
        problem, fix = _mesh(nodes)
        raise TopologyError("fabric_topology", topology, problem, fix)
    if topology not in TOPOLOGIES:
        raise TopologyError("fabric_topology", topology, "is not a known topology",
                            "use one of %s" % ", ".join(TOPOLOGIES))
    if topology in RING_SIZES and len(nodes) != RING_SIZES[topology]:
        other = [t for t, size in RING_SIZES.items() if size == len(nodes)]
        raise TopologyError(
            "fabric_nodes", list(nodes), "%s needs exactly %d nodes, got %d"
            % (topology, RING_SIZES[topology], len(nodes)),
            "use %s, or a switch" % other[0] if other else
            "cable 3 or 4 Sparks as a ring, or use a switch")
    if topology == "switch" and len(nodes) < 2:
        raise TopologyError("fabric_nodes", list(nodes), "a switch fabric needs 2+ nodes",
                            "add Sparks or drop the fabric")


def _subnets(topology, cables, pool, prefixlen, explicit):
    """Two subnets per cable (twin 0, twin 1), from the pool or given explicitly."""
    want = 2 * len(cables) if topology in RING_SIZES else 2
    if explicit:
        if not isinstance(explicit, (list, tuple)) or len(explicit) != want:
            raise TopologyError(
                "fabric_subnets", explicit, "must give %d subnets (two per %s)"
                % (want, "cable" if topology in RING_SIZES else "switch fabric"),
                "list them in cable order: cable 1 twin 0, cable 1 twin 1, cable 2 ...")
        nets = [_net("fabric_subnets", s) for s in explicit]
        for i, a in enumerate(nets):
            for b in nets[i + 1:]:
                if a in b or b in a or IPSet(a) & IPSet(b):
                    kind = "twins of one cable" if nets.index(b) == i + 1 and i % 2 == 0 \
                        else "two links"
                    raise TopologyError(
                        "fabric_subnets", explicit, "%s and %s overlap (%s)" % (a, b, kind),
                        "give every twin of every cable its own subnet")
        return nets
    net = _net("fabric_subnet_pool", pool)
    if not isinstance(prefixlen, int) or isinstance(prefixlen, bool) or \
            not 8 <= prefixlen <= 30:
        raise TopologyError("fabric_prefixlen", prefixlen, "must be an integer from 8 to 30",
                            "use 24 (one /24 per twin per cable)")
    if net.prefixlen > prefixlen:
        raise TopologyError(
            "fabric_subnet_pool", str(net), "is a /%d, smaller than one /%d fabric subnet (the "
            "fabric needs %d of them)" % (net.prefixlen, prefixlen, want),
            "use a pool that holds %d /%d subnets (e.g. 10.20.0.0/16), or a longer "
            "fabric_prefixlen" % (want, prefixlen))
    available = 2 ** (prefixlen - net.prefixlen)
    if available < want:
        raise TopologyError(
            "fabric_subnet_pool", str(net), "holds %d /%d subnets, the fabric needs %d"
            % (available, prefixlen, want),
            "use a larger pool (e.g. 10.20.0.0/16) or a longer fabric_prefixlen")
    subnets = []
    for index, subnet in enumerate(net.subnet(prefixlen)):
        if index == want:
            break
        subnets.append(subnet)
    return subnets


def _check_room(nets, nodes, host_base, explicit):
    """Every subnet holds the host numbers host_base .. host_base + nodes - 1."""
    last = host_base + len(nodes) - 1
    for net in nets:
        if last >= net.size - 1:
            variable = "fabric_subnets" if explicit else "fabric_prefixlen"
            value = str(net.cidr) if explicit else net.prefixlen
            raise TopologyError(
                variable, value, "%s holds host numbers 1 to %d, but %s needs %d "
                "(fabric_host_base %d + node index %d)" % (net.cidr, max(net.size - 2, 0),
                                                           nodes[-1], last, host_base,
                                                           len(nodes) - 1),
                "use /24 subnets (fabric_prefixlen: 24)" + (
                    ", or a fabric_host_base of at most %d" % (net.size - 1 - len(nodes))
                    if net.size - 1 - len(nodes) >= 1 else ""))


def _address(subnet, host):
    return IPAddress(int(subnet.network) + host)


def plan(nodes, topology, subnet_pool="10.20.0.0/16", prefixlen=24, subnets=None, mtu=9000,
         switch_port="P1", host_base=11, management=None, gid_index=None):
    """Plan the fabric. ``management`` maps node -> management address (ansible_host);
    ``gid_index`` maps node -> RoCE GID index found by RDMA discovery (optional)."""
    _validate_nodes(nodes, topology)
    if not isinstance(switch_port, str) or switch_port not in PORTS:
        raise TopologyError("fabric_switch_port", switch_port, "is not a Spark port",
                            "use P0 (next to the RJ45) or P1 (outermost)")
    if not isinstance(mtu, int) or isinstance(mtu, bool) or not 1280 <= mtu <= 9216:
        raise TopologyError("fabric_mtu", mtu, "must be an integer between 1280 and 9216",
                            "use 9000 (RoCE active_mtu 4096 needs jumbo frames)")
    if not isinstance(host_base, int) or isinstance(host_base, bool) or \
            not 1 <= host_base <= 65000:
        raise TopologyError("fabric_host_base", host_base,
                            "must be an integer from 1 to 65000",
                            "use 11 (spark1 .11, spark2 .12, ...)")
    management = _mapping("management", management)
    gid_index = _mapping("gid_index", gid_index)
    for variable, mapping in (("management", management), ("gid_index", gid_index)):
        for node in mapping:
            if node not in nodes:
                raise TopologyError("%s.%s" % (variable, node), mapping[node],
                                    "names a node that is not in fabric_nodes",
                                    "give %s only for the planned nodes (%s)"
                                    % (variable, ", ".join(str(n) for n in nodes)))
    for node, index in gid_index.items():
        if index is not None and (isinstance(index, bool) or not isinstance(index, int) or
                                  not 0 <= index <= 65535):
            raise TopologyError("gid_index.%s" % node, index,
                                "is not a GID table index",
                                "use the index RDMA discovery found (dgxspark.cluster."
                                "rdma_facts), e.g. 3")
    cables = cables_for(topology, list(nodes), switch_port)
    nets = _subnets(topology, cables, subnet_pool, prefixlen, subnets)
    _check_room(nets, list(nodes), host_base, bool(subnets))
    index = dict((node, i) for i, node in enumerate(nodes))
    ring = topology in RING_SIZES

    out_nodes = dict((node, {"index": i, "interfaces": [], "routes": [], "forwarding": []})
                     for i, node in enumerate(nodes))
    out_cables = []
    for c, (a, pa, b, pb) in enumerate(cables):
        cable = {"id": "cable%d" % (c + 1), "a": {"node": a, "port": pa},
                 "b": {"node": b, "port": pb} if b else {"node": "switch", "port": None},
                 "links": []}
        for twin in (0, 1):
            subnet = nets[2 * c + twin] if ring else nets[twin]
            ends = [(a, pa)] + ([(b, pb)] if b else [])
            link = {"twin": twin, "subnet": str(subnet.cidr), "ends": []}
            for node, port in ends:
                ip = _address(subnet, host_base + index[node])
                iface = {"netdev": PORTS[port][twin]["netdev"],
                         "rdma": PORTS[port][twin]["rdma"], "port": port, "twin": twin,
                         "ip": str(ip), "address": "%s/%d" % (ip, subnet.prefixlen),
                         "subnet": str(subnet.cidr), "mtu": mtu, "cable": cable["id"]}
                out_nodes[node]["interfaces"].append(iface)
                link["ends"].append({"node": node, "netdev": iface["netdev"], "ip": str(ip)})
            cable["links"].append(link)
        out_cables.append(cable)

    # Peers of every interface (the other end of its cable, or every other switch port).
    for node, data in out_nodes.items():
        for iface in data["interfaces"]:
            peers = []
            for other, odata in out_nodes.items():
                if other == node:
                    continue
                for oif in odata["interfaces"]:
                    if oif["subnet"] == iface["subnet"]:
                        peers.append({"node": other, "netdev": oif["netdev"], "ip": oif["ip"],
                                      "port": oif["port"]})
            iface["peers"] = peers
        data["interfaces"].sort(key=lambda i: FABRIC_NETDEVS.index(i["netdev"]))

    _control_plane(topology, list(nodes), out_nodes)
    _check_management(management, out_nodes, nets)
    for node, data in out_nodes.items():
        data["env"] = _env(topology, data, gid_index.get(node))
        data["sysctl"] = _sysctl(data)
    links = []
    for node, data in out_nodes.items():
        for iface in data["interfaces"]:
            for peer in iface["peers"]:
                links.append({"node": node, "netdev": iface["netdev"], "ip": iface["ip"],
                              "port": iface["port"], "twin": iface["twin"],
                              "cable": iface["cable"], "peer_node": peer["node"],
                              "peer_netdev": peer["netdev"], "peer_ip": peer["ip"],
                              "peer_port": peer["port"], "mtu": mtu})
    return {"topology": topology, "mtu": mtu, "nodes": out_nodes, "cables": out_cables,
            "links": links, "subnets": [str(n.cidr) for n in nets], "notes": NOTES}


def _sysctl(data):
    """The kernel settings a node's fabric needs, {key: value} in a fixed order: twins of one
    port share a wire (and on a switch every fabric port shares one), so each interface answers
    ARP only for its own address (arp_ignore 1) and announces it from itself (arp_announce 2);
    a ring4 relay forwards on its twin-0 interfaces."""
    names = [iface["netdev"] for iface in data["interfaces"]]
    out = {}
    for key, value in (("arp_ignore", "1"), ("arp_announce", "2")):
        for name in names:
            out["net.ipv4.conf.%s.%s" % (name, key)] = value
    for name in data["forwarding"]:
        out["net.ipv4.conf.%s.forwarding" % name] = "1"
    return out


def _control_plane(topology, nodes, out):
    """Identity address per node, /32 routes to the others, forwarding where needed."""
    def twin0(node, port):
        return [i for i in out[node]["interfaces"] if i["port"] == port and i["twin"] == 0][0]

    if topology == "switch":
        for node in nodes:
            iface = [i for i in out[node]["interfaces"] if i["twin"] == 0][0]
            out[node]["identity"] = {"ip": iface["ip"], "netdev": iface["netdev"]}
        return
    n = len(nodes)
    for node in nodes:
        iface = twin0(node, "P0")
        out[node]["identity"] = {"ip": iface["ip"], "netdev": iface["netdev"]}
    for i, node in enumerate(nodes):
        nxt, prv = nodes[(i + 1) % n], nodes[(i - 1) % n]
        # Next node: over my P0 cable (its P1 end). Previous node: over my P1 cable.
        hops = {nxt: (twin0(node, "P0"), twin0(nxt, "P1")),
                prv: (twin0(node, "P1"), twin0(prv, "P0"))}
        for other in nodes:
            if other == node:
                continue
            target = out[other]["identity"]["ip"]
            mine = list(out[node]["interfaces"])
            if any(x["subnet"] == y["subnet"] for x in mine
                   for y in out[other]["interfaces"] if y["ip"] == target):
                continue  # identity is on a directly connected subnet
            if other in hops:
                local, remote = hops[other]
                out[node]["routes"].append({"to": target + "/32", "via": remote["ip"],
                                            "dev": local["netdev"], "node": other})
            else:  # ring4: opposite node, through the lower-indexed intermediate
                via_node = min(nxt, prv, key=nodes.index)
                local, remote = hops[via_node]
                out[node]["routes"].append({"to": target + "/32", "via": remote["ip"],
                                            "dev": local["netdev"], "node": other,
                                            "through": via_node})
                for name in (via_node,):
                    for iface in out[name]["interfaces"]:
                        if iface["twin"] == 0 and iface["netdev"] not in out[name]["forwarding"]:
                            out[name]["forwarding"].append(iface["netdev"])
    for node in nodes:
        out[node]["forwarding"].sort(key=FABRIC_NETDEVS.index)


def _mapping(variable, value):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TopologyError(variable, value, "must be a dict of node name to value",
                            "give e.g. {spark1: ...}")
    return value


def management_ips(address):
    """The IPv4 addresses a management address (ansible_host) can mean: as written, in CIDR
    notation (10.20.2.12/24), with leading zeros read as decimal (10.20.002.012) and as
    ssh and glibc's inet_aton read them (octal: 10.20.2.10; also 0x0a.20.2.12 or 169083404).
    A DNS name gives none (the fabric role checks the live interface instead)."""
    host = str(address).strip().split("/", 1)[0]
    ips = set()
    try:
        ips.add(IPAddress(host))
    except (AddrFormatError, ValueError, TypeError):
        pass
    parts = host.split(".")
    if len(parts) == 4 and all(p.isdigit() and len(p) <= 4 for p in parts):
        try:
            ips.add(IPAddress(".".join(str(int(p)) for p in parts)))
        except (AddrFormatError, ValueError):
            pass
    try:
        ips.add(IPAddress(socket.inet_ntoa(socket.inet_aton(host))))
    except (OSError, ValueError):
        pass
    return sorted(ips)


def _check_management(management, out, nets):
    fabric = IPSet(nets)
    for node, address in management.items():
        if not address:
            continue
        inside = [ip for ip in management_ips(address) if ip in fabric]
        if inside:
            address = "%s (%s)" % (address, inside[0]) if str(inside[0]) != str(address) \
                else address
            raise TopologyError(
                "fabric_subnet_pool", [str(n.cidr) for n in nets],
                "node %s is managed at %s, inside the fabric subnets: configuring the fabric "
                "would take over the management path" % (node, address),
                "choose fabric subnets that do not contain any ansible_host address")


def _env(topology, data, gid_index):
    env = {
        "NCCL_IB_HCA": ",".join(i["rdma"] for i in data["interfaces"]),
        "NCCL_IB_DISABLE": "0",
        "NCCL_SOCKET_IFNAME": data["identity"]["netdev"],
        "GLOO_SOCKET_IFNAME": data["identity"]["netdev"],
        "VLLM_HOST_IP": data["identity"]["ip"],
    }
    if topology in RING_SIZES:
        env.update(NCCL_RING)
    if topology == "ring4":
        env.update(NCCL_RING4)
    if topology == "switch":
        env.update(NCCL_SWITCH)
    if gid_index is not None:
        env["NCCL_IB_GID_INDEX"] = str(gid_index)
    return env


# The fabric_plan module's options (its module and its action plugin share them).
ARGUMENT_SPEC = dict(
    nodes=dict(type="list", elements="str", required=True),
    topology=dict(type="str", required=True),
    subnet_pool=dict(type="str", default="10.20.0.0/16"),
    prefixlen=dict(type="int", default=24),
    subnets=dict(type="list", elements="str"),
    mtu=dict(type="int", default=9000),
    switch_port=dict(type="str", default="P1"),
    host_base=dict(type="int", default=11),
    management=dict(type="dict", default={}),
    gid_index=dict(type="dict", default={}),
)


def compute(params):
    """The fabric_plan module's result for its ``params`` (module_utils/controller.py)."""
    if not HAS_NETADDR:
        from ansible.module_utils.basic import missing_required_lib
        return {"failed": True, "msg": missing_required_lib("netaddr", reason=NETADDR_REASON),
                "exception": NETADDR_IMPORT_ERROR}
    p = params
    try:
        result = plan(p["nodes"], p["topology"], subnet_pool=p["subnet_pool"],
                      prefixlen=p["prefixlen"], subnets=p["subnets"], mtu=p["mtu"],
                      switch_port=p["switch_port"], host_base=p["host_base"],
                      management=p["management"], gid_index=p["gid_index"])
    except TopologyError as exc:
        return {"failed": True, "msg": str(exc), "variable": exc.variable, "fix": exc.fix}
    return {"changed": False, "plan": result}
