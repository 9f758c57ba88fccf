# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Filters of the fabric role (logic in module_utils/fabric_check.py)."""
from __future__ import annotations

import json

from ansible_collections.dgxspark.cluster.plugins.module_utils.fabric_check import (
    live_state, sysctl_drift)
from ansible_collections.dgxspark.cluster.plugins.plugin_utils.filters import named, need

_IP_FIX = "pass the stdout of `ip -j addr show`"
_PLAN_FIX = "pass this node's part of the fabric plan (fabric_plan's plan.nodes[node])"


@named("fabric_live_state")
def fabric_live_state(ip_addr_json, node_plan, mtu, mgmt_ips=None):
    links = ip_addr_json
    if isinstance(ip_addr_json, str):
        try:
            links = json.loads(ip_addr_json)
        except ValueError:
            raise ValueError("_input=%.80r: is not JSON. Fix: %s" % (ip_addr_json, _IP_FIX))
    for i, link in enumerate(need("_input", links, list, _IP_FIX)):
        need("_input[%d].ifname" % i, need("_input[%d]" % i, link, dict, _IP_FIX).get("ifname"),
             str, _IP_FIX)
        for j, addr in enumerate(need("_input[%d].addr_info" % i, link.get("addr_info") or [],
                                      list, _IP_FIX)):
            need("_input[%d].addr_info[%d]" % (i, j), addr, dict, _IP_FIX)
    for i, iface in enumerate(need("node_plan.interfaces", need(
            "node_plan", node_plan, dict, _PLAN_FIX).get("interfaces"), list, _PLAN_FIX)):
        for key in ("netdev", "ip"):
            need("node_plan.interfaces[%d].%s" % (i, key), need(
                "node_plan.interfaces[%d]" % i, iface, dict, _PLAN_FIX).get(key), str, _PLAN_FIX)
    mtu = int(mtu) if isinstance(mtu, str) and mtu.isdigit() else mtu
    return live_state(links, node_plan, need("mtu", mtu, int, "pass fabric_mtu"),
                      need("mgmt_ips", mgmt_ips or [], list, "pass a list of addresses"))


@named("fabric_sysctl_drift")
def fabric_sysctl_drift(sysctl_output, wanted):
    fix = "pass the stdout of `sysctl KEY...` for the keys of the plan's sysctl"
    return sysctl_drift(need("wanted", wanted, dict, "pass the node's plan (fabric_node.sysctl)"),
                        need("_input", sysctl_output, str, fix))


class FilterModule(object):
    def filters(self):
        return {"fabric_live_state": fabric_live_state, "fabric_sysctl_drift": fabric_sysctl_drift}
