"""RDMA parsing on outputs recorded on real DGX Sparks (tests/fixtures/rdma, see SOURCES.md)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ansible_collections.dgxspark.cluster.plugins.module_utils import rdma
from ansible_collections.dgxspark.cluster.plugins.module_utils.topology import PORTS

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "rdma"
SPARK_PAIRS = dict((t["rdma"], t["netdev"]) for port in PORTS.values() for t in port)


def text(name):
    return (FIXTURES / name).read_text()


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("ibdev2netdev.*")))
def test_ibdev2netdev_maps_every_roce_device_to_its_twin(name):
    entries = rdma.parse_ibdev2netdev(text(name))
    assert len(entries) == 4
    for entry in entries:
        assert SPARK_PAIRS[entry["rdma"]] == entry["netdev"] and entry["port"] == 1
        assert entry["state"] in ("Up", "Down")


def test_ibv_devinfo_ports_and_active_mtu():
    devices = rdma.parse_ibv_devinfo(text("ibv_devinfo.capture-guid-1a16.txt"))
    assert devices["rocep1s0f0"][1] == {"state": "DOWN", "max_mtu": 4096, "active_mtu": 1024,
                                        "link_layer": "Ethernet"}
    assert devices["rocep1s0f1"][1]["state"] == "ACTIVE"
    assert devices["rocep1s0f1"][1]["active_mtu"] == 4096  # netdev at MTU 9000
    spark2 = rdma.parse_ibv_devinfo(text("ibv_devinfo.elizabetht-spark-02.txt"))
    assert sorted(spark2) == sorted(SPARK_PAIRS)
    assert set(p[1]["active_mtu"] for p in spark2.values()) == {1024}  # netdev at MTU 1500


def test_show_gids_finds_the_ipv4_roce_v2_gid():
    gids = rdma.parse_show_gids(text("show_gids.dgx04-multiswitch-cluster.txt"))
    assert len(gids) == 12
    v2 = [g for g in gids if g["ipv4"] == "192.168.100.13" and g["version"] == "v2"]
    assert [(g["rdma"], g["index"], g["netdev"]) for g in v2] == [("rocep1s0f0", 3,
                                                                   "enp1s0f0np0")]
    assert rdma.gid_ipv4("0000:0000:0000:0000:0000:ffff:c0a8:650d") == "192.168.101.13"
    assert rdma.gid_ipv4("fe80:0000:0000:0000:4ebb:47ff:fe2a:6531") is None


def test_sysfs_tree_selects_gid_per_interface():
    devices = rdma.read_sysfs(str(FIXTURES / "sysfs-dgx04-multiswitch-cluster"))
    assert devices["rocep1s0f0"]["netdevs"] == ["enp1s0f0np0"]
    gids = devices["rocep1s0f0"]["ports"][1]["gids"]
    assert [(g["index"], g["type"]) for g in gids][2:] == [(2, "IB/RoCE v1"), (3, "RoCE v2")]
    selection, problems = rdma.select_gids(devices, [
        {"netdev": "enp1s0f0np0", "ip": "192.168.100.13"},
        {"netdev": "enP2p1s0f0np0", "ip": "192.168.101.13"},
        {"netdev": "enP2p1s0f1np1", "ip": "192.168.201.13"}])
    assert selection["enp1s0f0np0"]["gid_index"] == 3
    assert selection["enP2p1s0f0np0"]["gid_index"] == 3
    # the twin without an IPv4 address has only link-local GIDs (NCCL would use GID 0)
    assert selection["enP2p1s0f1np1"]["gid_index"] is None
    assert any("roceP2p1s0f1" in p and "no RoCE v2 GID" in p for p in problems)


def test_sysfs_port_state_from_a_real_node():
    devices = rdma.read_sysfs(str(FIXTURES / "sysfs-spark-0e68"))
    states = dict((d, v["ports"][1]["state"]) for d, v in devices.items())
    assert states == {"rocep1s0f0": "DOWN", "rocep1s0f1": "ACTIVE", "roceP2p1s0f0": "DOWN",
                      "roceP2p1s0f1": "ACTIVE"}
    assert devices["rocep1s0f1"]["ports"][1]["link_layer"] == "Ethernet"


def test_no_rdma_devices_is_empty(tmp_path):
    assert rdma.read_sysfs(str(tmp_path)) == {}


def test_gid_env_one_index_or_let_nccl_choose():
    same = {"a": {"gid_index": 3}, "b": {"gid_index": 3}}
    assert rdma.gid_env(same) == {"NCCL_IB_GID_INDEX": "3"}
    differ = {"a": {"gid_index": 3}, "b": {"gid_index": 5}}  # chishiki37: 5 on one node, 3
    assert rdma.gid_env(differ) == {"NCCL_IB_ROCE_VERSION_NUM": "2",
                                    "NCCL_IB_ADDR_FAMILY": "AF_INET"}
    assert rdma.gid_env({}) == {}


@pytest.mark.parametrize("name,avg,gid,mtu", [
    ("ib_write_bw.client.nvidia-perf-guide-rocep1s0f0.txt", 92.57, 3, 1024),
    ("ib_write_bw.client.nvidia-perf-guide-roceP2p1s0f0.txt", 97.28, 3, 1024),
    ("ib_write_bw.client.eugr-networking-rocep1s0f1.txt", 111.71, None, None),
    ("ib_write_bw.client.trevorsquillario-gb10-14-rocep1s0f0.txt", 111.61, None, None),
    ("ib_write_bw.client.gb10-roce-handson-roceP2p1s0f0.txt", 92.57, 3, 1024),
    ("ib_write_bw.client.eks-hybrid-blog-dual-rail-interleaved.txt", 98.04, None, 4096),
    ("ib_write_bw.client.elizabetht-spark-02-rocep1s0f0.txt", 92.54, None, None),
])
def test_ib_write_bw(name, avg, gid, mtu):
    out = rdma.parse_ib_write_bw(text(name))
    assert out["bw_avg_gbps"] == pytest.approx(avg, abs=0.01)
    if gid is not None:
        assert out["gid_index"] == gid
    if mtu is not None:
        assert out["mtu"] == mtu


@pytest.mark.parametrize("name,busbw,passes_switch", [
    ("nccl_all_gather.mprg-spark-fb97-4440-switch.txt", 21.4033, False),
    ("nccl_all_gather.eks-hybrid-blog-spark-101-102.txt", 22.1205, True),
    ("nccl_all_gather.trevorsquillario-gb10-14-promaxgb10.txt", 22.9611, True),
    ("nccl_all_gather.mprg-spark-fb97-4440-direct-degraded.txt", 2.82151, False),
])
def test_nccl_tests_against_nvidia_threshold(name, busbw, passes_switch):
    out = rdma.parse_nccl_tests(text(name))
    assert out["avg_busbw_gbs"] == pytest.approx(busbw)
    assert out["wrong"] == 0 and out["rows"]
    assert (out["avg_busbw_gbs"] >= rdma.NCCL_MIN_BUSBW_GBS["switch"]) is passes_switch
    assert out["avg_busbw_gbs"] >= rdma.NCCL_MIN_BUSBW_GBS["ring3"] or busbw < 10


# --- issue 11: the readers crashed on a non-numeric gids entry or active_mtu -----------------

def test_sysfs_skips_entries_that_are_not_ports_or_gid_indexes(tmp_path):
    tree = tmp_path / "sys"
    shutil.copytree(FIXTURES / "sysfs-dgx04-multiswitch-cluster", tree, symlinks=True)
    ports = tree / "class/infiniband/rocep1s0f0/ports"
    (ports / "1/gids/README").write_text("not a gid\n")
    (ports / "1/gids/٣").write_text("a non-ASCII digit\n")
    (ports / "power").mkdir()
    devices = rdma.read_sysfs(str(tree))
    gids = devices["rocep1s0f0"]["ports"][1]["gids"]
    assert [g["index"] for g in gids] == sorted(g["index"] for g in gids)
    assert list(devices["rocep1s0f0"]["ports"]) == [1]
    selection, dummy = rdma.select_gids(devices, [{"netdev": "enp1s0f0np0",
                                                   "ip": "192.168.100.13"}])
    assert selection["enp1s0f0np0"]["gid_index"] == 3


def test_ibv_devinfo_keeps_an_unreadable_active_mtu_as_text():
    devices = rdma.parse_ibv_devinfo(text("ibv_devinfo.capture-guid-1a16.txt").replace(
        "active_mtu:\t\t1024 (3)", "active_mtu:\t\tunknown", 1))
    assert "unknown" in [p.get("active_mtu") for d in devices.values() for p in d.values()]


@pytest.mark.parametrize("mtu, problem", [
    (4096, None),
    (None, None),  # ibv_devinfo not installed: not judged
    (1024, "active_mtu is 1024, not 4096"),
    ("unknown", "active_mtu reads 'unknown', not a number"),
])
def test_mtu_problems(mtu, problem):
    devices = {"rocep1s0f1": {"netdevs": ["enp1s0f1np1"], "ports": {1: {"active_mtu": mtu}}}}
    selection = {"enp1s0f1np1": {"rdma": "rocep1s0f1", "port": 1, "gid_index": 3}}
    problems = rdma.mtu_problems(devices, selection)
    assert selection["enp1s0f1np1"]["active_mtu"] == mtu
    assert problems == ([] if problem is None else [p for p in problems if problem in p])
    assert len(problems) == (0 if problem is None else 1)


@pytest.mark.parametrize("interfaces, where", [
    ("enp1s0f1np1", "interfaces="),
    ([{"netdev": "enp1s0f1np1"}], "interfaces[0].ip"),
    (["enp1s0f1np1"], "interfaces[0].netdev"),
    ([{"netdev": 3, "ip": "10.0.0.1"}], "interfaces[0].netdev"),
])
def test_select_gids_names_a_malformed_interface(interfaces, where):
    with pytest.raises(ValueError) as err:
        rdma.select_gids({}, interfaces)
    assert str(err.value).startswith(where) and "Fix:" in str(err.value)
