"""Filters fail with the filter, the argument, the value and the fix; never a raw Python
message (issue 11: decode_bytes_per_token(0) said "float division by zero")."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.dgxspark.cluster.plugins.filter import fabric, meminfo, rdma, verify
from ansible_collections.dgxspark.cluster.plugins.module_utils import topology

PLAN = topology.plan(["spark1", "spark2", "spark3"], "ring3")
LINK = dict(PLAN["links"][0])


@pytest.mark.parametrize("name, call, argument", [
    ("ib_write_bw", lambda: rdma.ib_write_bw(None), "_input=None"),
    ("nccl_tests", lambda: rdma.nccl_tests({"a": 1}), "_input={'a': 1}"),
    ("bandwidth_pairs", lambda: rdma.bandwidth_pairs("links", "ring3"), "links='links'"),
    ("bandwidth_pairs", lambda: rdma.bandwidth_pairs([dict(LINK, peer_ip=None)], "ring3"),
     "links[0].peer_ip=None"),
    ("bandwidth_pairs", lambda: rdma.bandwidth_pairs([LINK], None), "topology=None"),
    ("meminfo", lambda: meminfo.meminfo(["MemTotal: 1 kB"]), "_input=["),
    ("verify_worker_list", lambda: verify.verify_worker_list(3), "_input=3"),
    ("fabric_live_state", lambda: fabric.fabric_live_state("not json", {}, 9000),
     "_input='not json': is not JSON"),
    ("fabric_live_state", lambda: fabric.fabric_live_state([{"addr_info": []}], {}, 9000),
     "_input[0].ifname=None"),
    ("fabric_live_state", lambda: fabric.fabric_live_state(
        [], PLAN["nodes"]["spark1"], "jumbo"), "mtu='jumbo'"),
    ("fabric_live_state", lambda: fabric.fabric_live_state([], {"interfaces": [{}]}, 9000),
     "node_plan.interfaces[0].netdev=None"),
    ("fabric_sysctl_drift", lambda: fabric.fabric_sysctl_drift(None, {}), "_input=None"),
    ("fabric_sysctl_drift", lambda: fabric.fabric_sysctl_drift("", ["a"]), "wanted=['a']"),
])
def test_filter_errors_name_the_filter_the_argument_and_the_fix(name, call, argument):
    with pytest.raises(AnsibleFilterError) as err:
        call()
    message = str(err.value)
    assert message.startswith("dgxspark.cluster.%s: %s" % (name, argument)), message
    assert "Fix: " in message


def test_the_checked_filters_still_work():
    assert rdma.bandwidth_pairs(PLAN["links"], "ring3")
    assert meminfo.meminfo("MemTotal:  128 kB\nbad\n") == {"MemTotal": 128}
    assert meminfo.meminfo(None) == {}
    state = fabric.fabric_live_state("[]", PLAN["nodes"]["spark1"], "9000")
    assert state["drift"] and len(state["missing"]) == 4


def test_sysctl_drift_lists_what_the_node_lacks_in_the_plans_order():
    wanted = PLAN["nodes"]["spark1"]["sysctl"]
    right = "".join("%s = %s\n" % kv for kv in wanted.items())
    assert fabric.fabric_sysctl_drift(right, wanted) == []
    keys = list(wanted)
    # one value reset (netplan re-created the interface), one key not listed at all
    live = right.replace("%s = 1" % keys[0], "%s = 0" % keys[0]).replace(
        "%s = 2\n" % keys[-1], "")
    assert fabric.fabric_sysctl_drift(live, wanted) == ["%s=1" % keys[0], "%s=2" % keys[-1]]
    assert fabric.fabric_sysctl_drift("", wanted) == ["%s=%s" % kv for kv in wanted.items()]
