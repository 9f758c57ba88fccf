"""The fabric modules as Ansible runs them (controller side; no lab needed)."""
from __future__ import annotations

from test_vllm_plan_module import adhoc_module

from conftest import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "rdma"


def test_fabric_plan_refuses_a_bad_inventory_naming_the_variable():
    rc, result = adhoc_module("dgxspark.cluster.fabric_plan",
                              {"nodes": ["spark1", "spark2", "spark3", "spark4"],
                               "topology": "ring3"})
    assert rc != 0 and result["variable"] == "fabric_nodes"
    assert "ring3 needs exactly 3 nodes" in result["msg"] and "ring4" in result["fix"]


def test_fabric_plan_returns_the_environment():
    rc, result = adhoc_module("dgxspark.cluster.fabric_plan",
                              {"nodes": ["a", "b", "c", "d"], "topology": "switch"})
    assert rc == 0 and result["changed"] is False
    assert result["plan"]["nodes"]["c"]["env"]["VLLM_HOST_IP"] == "10.20.0.13"


def test_rdma_facts_on_a_recorded_sysfs_tree():
    rc, result = adhoc_module("dgxspark.cluster.rdma_facts", {
        "sysfs_root": str(FIXTURES / "sysfs-dgx04-multiswitch-cluster"),
        "interfaces": [{"netdev": "enp1s0f0np0", "ip": "192.168.100.13"},
                       {"netdev": "enP2p1s0f0np0", "ip": "192.168.101.13"}]})
    assert rc == 0 and result["present"] is True
    assert result["selection"]["enp1s0f0np0"]["gid_index"] == 3
    assert result["env"] == {"NCCL_IB_GID_INDEX": "3"}


def test_rdma_facts_without_devices_says_so(tmp_path):
    rc, result = adhoc_module("dgxspark.cluster.rdma_facts", {
        "sysfs_root": str(tmp_path), "interfaces": [{"netdev": "enp1s0f0np0", "ip": "10.0.0.1"}]})
    assert rc == 0 and result["present"] is False and result["env"] == {}


def test_fabric_facts_reads_what_the_role_checks_in_one_call(tmp_path):
    """fabric_facts: this machine's interfaces (lo is always there), the other netplan files
    that name a fabric interface (not the role's own, not one naming none), the kernel
    settings as sysctl prints them, and the RoCE devices as rdma_facts maps them."""
    netplan = tmp_path / "netplan"
    netplan.mkdir()
    own = netplan / "60-dgxspark-fabric.yaml"
    own.write_text("network: {ethernets: {enp1s0f0np0: {mtu: 9000}}}\n")
    (netplan / "50-cloud-init.yaml").write_text("network: {ethernets: {enp1s0f0np0: {dhcp4: true}}}\n")
    (netplan / "01-mgmt.yaml").write_text("network: {ethernets: {enP7s7: {dhcp4: true}}}\n")
    interfaces = [{"netdev": "enp1s0f0np0", "ip": "192.168.100.13"},
                  {"netdev": "enP2p1s0f0np0", "ip": "192.168.101.13"}]
    sysfs = str(FIXTURES / "sysfs-dgx04-multiswitch-cluster")
    rc, result = adhoc_module("dgxspark.cluster.fabric_facts", {
        "interfaces": interfaces, "netplan_dir": str(netplan), "netplan_file": str(own),
        "sysctl": ["net.ipv4.conf.lo.arp_ignore"], "sysfs_root": sysfs})
    assert rc == 0 and result["changed"] is False
    assert "lo" in [link["ifname"] for link in result["ip_addr"]]
    assert result["other_netplan"] == [str(netplan / "50-cloud-init.yaml")]
    assert result["sysctl"].startswith("net.ipv4.conf.lo.arp_ignore = ")
    dummy, alone = adhoc_module("dgxspark.cluster.rdma_facts",
                                {"interfaces": interfaces, "sysfs_root": sysfs})
    assert result["rdma"]["selection"] == alone["selection"] and result["rdma"]["present"]
    assert result["rdma"]["env"] == {"NCCL_IB_GID_INDEX": "3"}
