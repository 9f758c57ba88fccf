"""The fabric topology planner, the lab's wiring and the link judge."""
from __future__ import annotations

import pytest

from ansible_collections.dgxspark.cluster.plugins.module_utils import fabric_check, lab, topology
from ansible_collections.dgxspark.cluster.plugins.module_utils.topology import TopologyError

RING3 = ["spark1", "spark2", "spark3"]
FOUR = ["spark1", "spark2", "spark3", "spark4"]


def iface(plan, node, netdev):
    return [i for i in plan["nodes"][node]["interfaces"] if i["netdev"] == netdev][0]


# --- planner ---------------------------------------------------------------------------

def test_ring3_cabling_p0_to_next_p1_and_one_subnet_per_twin():
    plan = topology.plan(RING3, "ring3")
    assert [(c["a"]["node"], c["a"]["port"], c["b"]["node"], c["b"]["port"])
            for c in plan["cables"]] == [("spark1", "P0", "spark2", "P1"),
                                         ("spark2", "P0", "spark3", "P1"),
                                         ("spark3", "P0", "spark1", "P1")]
    assert len(set(plan["subnets"])) == 6
    a, b = iface(plan, "spark1", "enp1s0f0np0"), iface(plan, "spark2", "enp1s0f1np1")
    assert a["subnet"] == b["subnet"] and (a["ip"], b["ip"]) == ("10.20.0.11", "10.20.0.12")
    twin = iface(plan, "spark1", "enP2p1s0f0np0")
    assert twin["subnet"] != a["subnet"]  # twins never share a subnet
    assert all(i["mtu"] == 9000 for n in plan["nodes"].values() for i in n["interfaces"])
    assert len(plan["links"]) == 12  # 3 cables x 2 twins x 2 directions


def test_ring3_env_and_control_plane():
    plan = topology.plan(RING3, "ring3")
    node = plan["nodes"]["spark1"]
    env = node["env"]
    assert env["NCCL_IB_HCA"] == "rocep1s0f0,roceP2p1s0f0,rocep1s0f1,roceP2p1s0f1"
    assert env["VLLM_HOST_IP"] == "10.20.0.11" and env["NCCL_SOCKET_IFNAME"] == "enp1s0f0np0"
    assert env["GLOO_SOCKET_IFNAME"] == "enp1s0f0np0" and env["NCCL_IB_DISABLE"] == "0"
    assert env["NCCL_IB_SUBNET_AWARE_ROUTING"] == "1" and env["NCCL_NET_PLUGIN"] == "none"
    assert "NCCL_ALGO" not in env
    # every identity reachable: directly connected, or a /32 over the direct cable
    for name, data in plan["nodes"].items():
        own = [i["subnet"] for i in data["interfaces"]]
        for other, odata in plan["nodes"].items():
            if other == name:
                continue
            target = odata["identity"]["ip"]
            direct = any(target == i["ip"] and i["subnet"] in own
                         for i in odata["interfaces"])
            routed = [r for r in data["routes"] if r["to"] == target + "/32"]
            assert direct or routed, (name, other)
            if routed:  # the gateway is the other node's address on a shared cable
                assert routed[0]["via"] in [i["ip"] for i in odata["interfaces"]]
        assert data["forwarding"] == []


def test_ring4_routes_opposite_nodes_symmetrically_through_one_relay():
    plan = topology.plan(FOUR, "ring4")
    env = plan["nodes"]["spark3"]["env"]
    assert env["NCCL_ALGO"] == "Ring" and env["NCCL_IB_MERGE_NICS"] == "0"
    r13 = [r for r in plan["nodes"]["spark1"]["routes"] if "through" in r][0]
    r31 = [r for r in plan["nodes"]["spark3"]["routes"] if "through" in r][0]
    assert r13["node"] == "spark3" and r31["node"] == "spark1"
    assert r13["through"] == r31["through"] == "spark2"
    assert plan["nodes"]["spark2"]["forwarding"] == ["enp1s0f0np0", "enp1s0f1np1"]
    assert plan["nodes"]["spark3"]["forwarding"] == []
    # the relay's kernel settings: ARP per interface, then forwarding on its twin-0 interfaces
    relay = plan["nodes"]["spark2"]["sysctl"]
    assert [k for k in relay if k.endswith(".forwarding")] == [
        "net.ipv4.conf.enp1s0f0np0.forwarding", "net.ipv4.conf.enp1s0f1np1.forwarding"]
    assert not any(k.endswith(".forwarding") for k in plan["nodes"]["spark3"]["sysctl"])


def test_switch_uses_one_port_and_shared_subnets():
    plan = topology.plan(FOUR, "switch")
    assert plan["subnets"] == ["10.20.0.0/24", "10.20.1.0/24"]
    node = plan["nodes"]["spark4"]
    assert [i["netdev"] for i in node["interfaces"]] == ["enp1s0f1np1", "enP2p1s0f1np1"]
    assert node["sysctl"] == {
        "net.ipv4.conf.enp1s0f1np1.arp_ignore": "1", "net.ipv4.conf.enP2p1s0f1np1.arp_ignore": "1",
        "net.ipv4.conf.enp1s0f1np1.arp_announce": "2",
        "net.ipv4.conf.enP2p1s0f1np1.arp_announce": "2"}
    assert node["env"]["NCCL_IB_HCA"] == "rocep1s0f1,roceP2p1s0f1"
    assert node["env"]["VLLM_HOST_IP"] == "10.20.0.14" and node["routes"] == []
    assert len(node["interfaces"][0]["peers"]) == 3
    assert "NCCL_IB_MERGE_NICS" not in node["env"]


@pytest.mark.parametrize("address, ips", [
    ("10.20.2.12", ["10.20.2.12"]),
    ("10.20.2.12/24", ["10.20.2.12"]),
    ("10.20.002.012", ["10.20.2.10", "10.20.2.12"]),  # octal as ssh reads it, and decimal
    ("spark1.example.org", []),
])
def test_management_ips_reads_every_spelling(address, ips):
    assert [str(ip) for ip in topology.management_ips(address)] == ips


def test_management_outside_the_fabric_passes():
    plan = topology.plan(RING3, "ring3", management={"spark1": "192.168.1.11",
                                                     "spark2": "spark2.lan", "spark3": None})
    assert plan["nodes"]["spark1"]["identity"]


def test_explicit_subnets_and_gid_index():
    subnets = ["192.168.%d.0/24" % i for i in range(6)]
    plan = topology.plan(RING3, "ring3", subnets=subnets, host_base=1,
                         gid_index={"spark2": 3})
    assert iface(plan, "spark1", "enp1s0f0np0")["ip"] == "192.168.0.1"  # NVIDIA's ring3
    assert plan["nodes"]["spark2"]["env"]["NCCL_IB_GID_INDEX"] == "3"
    assert "NCCL_IB_GID_INDEX" not in plan["nodes"]["spark1"]["env"]


@pytest.mark.parametrize("kwargs,variable,words", [
    ({"nodes": ["a", "b", "a"], "topology": "ring3"}, "fabric_nodes", "twice"),
    ({"nodes": FOUR, "topology": "mesh"}, "fabric_topology", "full mesh"),
    ({"nodes": FOUR, "topology": "ring3"}, "fabric_nodes", "use ring4"),
    ({"nodes": RING3, "topology": "ring4"}, "fabric_nodes", "use ring3"),
    ({"nodes": ["a"], "topology": "switch"}, "fabric_nodes", "2+ nodes"),
    ({"nodes": RING3, "topology": "torus"}, "fabric_topology", "not a known topology"),
    ({"nodes": RING3, "topology": "ring3", "subnet_pool": "10.20.0.0/23"},
     "fabric_subnet_pool", "needs 6"),
    ({"nodes": RING3, "topology": "ring3", "subnet_pool": "10.20.0.1/16"},
     "fabric_subnet_pool", "host bits"),
    ({"nodes": RING3, "topology": "ring3", "subnets": ["10.0.0.0/24"] * 6},
     "fabric_subnets", "overlap"),
    ({"nodes": RING3, "topology": "ring3", "subnets": ["10.0.0.0/24"]},
     "fabric_subnets", "must give 6"),
    ({"nodes": RING3, "topology": "ring3", "management": {"spark2": "10.20.3.7"}},
     "fabric_subnet_pool", "management path"),
    ({"nodes": RING3, "topology": "ring3", "mtu": 65000}, "fabric_mtu", "between"),
    ({"nodes": RING3, "topology": "switch", "switch_port": "P2"}, "fabric_switch_port", "P0"),
    ({"nodes": RING3, "topology": "ring3", "prefixlen": 31}, "fabric_prefixlen", "8 to 30"),
    # issue 11: an empty or null node name crashed
    ({"nodes": ["", "b", "c"], "topology": "ring3"}, "fabric_nodes", "not a node name"),
    ({"nodes": ["s%d" % i for i in range(65)], "topology": "switch"}, "fabric_nodes",
     "at most 64"),
    ({"nodes": [None, "b", "c"], "topology": "ring3"}, "fabric_nodes", "not a node name"),
    ({"nodes": [{"a": 1}, "b", "c"], "topology": "ring3"}, "fabric_nodes", "not a node name"),
    # a full mesh of 3 Sparks is ring3 (the message said "needs 2 ports, a Spark has 2")
    ({"nodes": RING3, "topology": "mesh"}, "fabric_topology", "use fabric_topology: ring3"),
    ({"nodes": ["a", "b"], "topology": "mesh"}, "fabric_topology", "one direct cable"),
    # a /31 pool is the pool's fault, a /29 prefix the prefix's (not fabric_subnets)
    ({"nodes": RING3, "topology": "ring3", "subnet_pool": "10.20.0.0/31"},
     "fabric_subnet_pool", "smaller than one /24"),
    ({"nodes": RING3, "topology": "ring3", "prefixlen": 29}, "fabric_prefixlen",
     "spark3 needs 13"),
    ({"nodes": RING3, "topology": "ring3", "subnets": ["10.0.%d.0/29" % i for i in range(6)]},
     "fabric_subnets", "holds host numbers 1 to 6"),
    ({"nodes": RING3, "topology": "ring3", "host_base": 10 ** 9}, "fabric_host_base",
     "1 to 65000"),
    # management addresses that once slipped past: CIDR notation, leading zeros, inet_aton forms
    ({"nodes": RING3, "topology": "ring3", "management": {"spark2": "10.20.2.12/24"}},
     "fabric_subnet_pool", "management path"),
    ({"nodes": RING3, "topology": "ring3", "management": {"spark2": "10.20.002.012"}},
     "fabric_subnet_pool", "management path"),
    ({"nodes": RING3, "topology": "ring3", "management": {"spark2": "169083916"}},
     "fabric_subnet_pool", "10.20.4.12"),
    ({"nodes": RING3, "topology": "ring3", "management": ["10.0.0.1"]}, "management",
     "must be a dict"),
    ({"nodes": RING3, "topology": "ring3", "management": {"spark9": "192.168.1.9"}},
     "management.spark9", "not in fabric_nodes"),
    ({"nodes": RING3, "topology": "ring3", "gid_index": {"spark9": 3}}, "gid_index.spark9",
     "not in fabric_nodes"),
    ({"nodes": RING3, "topology": "ring3", "gid_index": {"spark1": "three"}},
     "gid_index.spark1", "GID table index"),
])
def test_wrong_inventories_fail_with_the_variable_and_a_fix(kwargs, variable, words):
    nodes, topo = kwargs.pop("nodes"), kwargs.pop("topology")
    with pytest.raises(TopologyError) as err:
        topology.plan(nodes, topo, **kwargs)
    assert err.value.variable == variable
    assert words in str(err.value) and "Fix:" in str(err.value)


# --- lab wiring ------------------------------------------------------------------------

def test_lab_ring_wiring_matches_the_plan():
    wiring = lab.wiring(RING3, "ring3")
    bridges = {}
    for port in wiring["ports"]:
        bridges.setdefault(port["bridge"], []).append((port["node"], port["netdev"]))
    assert sorted(bridges["dgxc1t0"]) == [("spark1", "enp1s0f0np0"), ("spark2", "enp1s0f1np1")]
    assert all(len(v) == 2 for v in bridges.values()) and len(bridges) == 6
    assert all(len(p["host"]) <= 15 for p in wiring["ports"] + wiring["mgmt"])
    assert [m["ip"] for m in wiring["mgmt"]] == ["10.99.0.11", "10.99.0.12", "10.99.0.13"]


def test_lab_faults_change_only_host_ports():
    swap = lab.wiring(RING3, "ring3", faults=[{"kind": "swap", "node": "spark2"}])
    by = dict(((p["node"], p["netdev"]), p) for p in swap["ports"])
    assert by[("spark2", "enp1s0f0np0")]["bridge"] == "dgxc1t0"     # spark1's P0 cable
    assert by[("spark2", "enp1s0f1np1")]["bridge"] == "dgxc2t0"
    mtu = lab.wiring(FOUR, "switch", faults=[{"kind": "mtu", "node": "spark3", "twin": 0}])
    ports = [p for p in mtu["ports"] if p["mtu"] != 9216]
    assert [(p["node"], p["netdev"], p["mtu"]) for p in ports] == [("spark3", "enp1s0f1np1",
                                                                    1500)]
    down = lab.wiring(RING3, "ring3", faults=[{"kind": "down", "node": "spark1", "port": "P1"}])
    assert sorted(p["netdev"] for p in down["ports"] if not p["up"]) == ["enP2p1s0f1np1",
                                                                         "enp1s0f1np1"]


@pytest.mark.parametrize("args,variable", [
    ((RING3, "ring3"), None),
    ((FOUR, "ring3"), "lab_nodes"),
    ((RING3, "mesh"), "lab_topology"),
    ((FOUR, "switch", {"faults": [{"kind": "swap", "node": "spark1"}]}), "lab_faults"),
    ((RING3, "ring3", {"faults": [{"kind": "flood", "node": "spark1"}]}), "lab_faults"),
    ((RING3, "ring3", {"faults": [{"kind": "down", "node": "spark9"}]}), "lab_faults"),
    ((RING3, "ring3", {"prefix": "this-is-too-long"}), "lab_prefix"),
])
def test_lab_input_validation(args, variable):
    kwargs = args[2] if len(args) > 2 else {}
    if variable is None:
        assert lab.wiring(args[0], args[1], **kwargs)
        return
    with pytest.raises(lab.LabError) as err:
        lab.wiring(args[0], args[1], **kwargs)
    assert err.value.variable == variable and "Fix:" in str(err.value)


# --- the link judge --------------------------------------------------------------------

def healthy_probes(plan, mtu=9000):
    """Probes as a correctly cabled fabric returns them."""
    probes = {}
    for node, data in plan["nodes"].items():
        interfaces = {}
        for i, item in enumerate(data["interfaces"]):
            interfaces[item["netdev"]] = {
                "mac": "02:00:00:00:%02x:%02x" % (data["index"], i), "mtu": mtu,
                "carrier": True, "addresses": [item["address"]]}
        probes[node] = {"interfaces": interfaces, "links": []}
    for link in plan["links"]:
        peer_mac = probes[link["peer_node"]]["interfaces"][link["peer_netdev"]]["mac"]
        probes[link["node"]]["links"].append({"netdev": link["netdev"],
                                              "peer_ip": link["peer_ip"], "small_ok": True,
                                              "jumbo_ok": True, "neigh_mac": peer_mac})
    return probes


def test_judge_passes_a_healthy_fabric():
    plan = topology.plan(RING3, "ring3")
    result = fabric_check.analyse(plan, healthy_probes(plan))
    assert result["ok"] and len(result["links"]) == 12


def test_judge_names_a_swapped_cable():
    plan = topology.plan(RING3, "ring3")
    probes = healthy_probes(plan)
    wrong_mac = probes["spark2"]["interfaces"]["enp1s0f0np0"]["mac"]  # spark2's P0
    for result in probes["spark1"]["links"]:
        if result["netdev"] == "enp1s0f0np0":
            result.update(small_ok=False, jumbo_ok=False, neigh_mac=wrong_mac)
    out = fabric_check.analyse(plan, probes)
    problem = [p for p in out["problems"] if p["kind"] == "swapped"][0]
    assert "spark1/enp1s0f0np0 (P0) is cabled to spark2/enp1s0f0np0 (P0)" in problem["message"]
    assert "spark2/enp1s0f1np1 (P1)" in problem["message"]


def test_judge_names_an_mtu_hop_and_an_interface_mtu():
    plan = topology.plan(FOUR, "switch")
    probes = healthy_probes(plan)
    for result in probes["spark2"]["links"]:
        if result["peer_ip"] == "10.20.0.13":
            result["jumbo_ok"] = False
    out = fabric_check.analyse(plan, probes)
    assert [p["kind"] for p in out["problems"]] == ["mtu"]
    assert "a hop between them" in out["problems"][0]["message"]
    probes = healthy_probes(plan)
    probes["spark4"]["interfaces"]["enP2p1s0f1np1"]["mtu"] = 1500
    for result in probes["spark1"]["links"]:
        if result["peer_ip"] == "10.20.1.14":
            result["jumbo_ok"] = False
    out = fabric_check.analyse(plan, probes)
    assert "interface MTU 9000 on spark1/enP2p1s0f1np1 (P1), 1500 on spark4" in \
        out["problems"][0]["message"]


def test_judge_names_a_link_without_carrier_from_both_ends():
    plan = topology.plan(RING3, "ring3")
    probes = healthy_probes(plan)
    probes["spark3"]["interfaces"]["enP2p1s0f0np0"]["carrier"] = False
    out = fabric_check.analyse(plan, probes)
    kinds = set((p["node"], p["kind"]) for p in out["problems"])
    assert kinds == {("spark3", "link_down"), ("spark1", "link_down")}
    assert all("cable3" in p["message"] for p in out["problems"])


@pytest.mark.parametrize("change, variable", [
    # issue 11: a probe link lacking peer_ip was a KeyError
    (lambda p, q: q["spark1"]["links"][0].pop("peer_ip"), "probes.spark1.links[0].peer_ip"),
    (lambda p, q: q["spark1"]["links"][0].update(netdev=None), "probes.spark1.links[0].netdev"),
    (lambda p, q: q["spark2"].update(links="enp1s0f0np0"), "probes.spark2.links"),
    (lambda p, q: q["spark2"]["interfaces"]["enp1s0f0np0"].update(mac=7),
     "probes.spark2.interfaces.enp1s0f0np0.mac"),
    (lambda p, q: q["spark2"]["interfaces"]["enp1s0f0np0"].update(addresses=[None]),
     "probes.spark2.interfaces.enp1s0f0np0.addresses[0]"),
    (lambda p, q: q.update(spark3="down"), "probes.spark3"),
    (lambda p, q: q["spark1"].update(wire={"enp1s0f0np0": ["x"]}),
     "probes.spark1.wire.enp1s0f0np0[0]"),
    (lambda p, q: p.pop("mtu"), "plan.mtu"),
    (lambda p, q: p["links"][0].pop("peer_ip"), "plan.links[0].peer_ip"),
])
def test_judge_refuses_malformed_probes_naming_where(change, variable):
    plan = topology.plan(RING3, "ring3")
    probes = healthy_probes(plan)
    change(plan, probes)
    with pytest.raises(fabric_check.ProbeError) as err:
        fabric_check.analyse(plan, probes)
    assert err.value.variable == variable and "Fix:" in str(err.value)


def test_judge_takes_a_node_without_a_probe_as_not_probed():
    plan = topology.plan(RING3, "ring3")
    probes = healthy_probes(plan)
    probes["spark3"] = None
    out = fabric_check.analyse(plan, probes)
    assert not out["ok"] and {p["kind"] for p in out["problems"]
                              if p["node"] == "spark3"} == {"missing"}
