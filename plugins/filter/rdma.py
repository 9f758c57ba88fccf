# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Filters that read RDMA measurements (ib_write_bw, nccl-tests) and pair fabric links."""
from __future__ import annotations

from ansible_collections.dgxspark.cluster.plugins.module_utils.rdma import (
    parse_ib_write_bw, parse_nccl_tests)
from ansible_collections.dgxspark.cluster.plugins.plugin_utils.filters import named, need

_LINK_KEYS = ("node", "netdev", "peer_node", "peer_netdev", "peer_ip")


@named("ib_write_bw")
def ib_write_bw(text):
    return parse_ib_write_bw(need("_input", text, str, "pass ib_write_bw's stdout"))


@named("nccl_tests")
def nccl_tests(text):
    return parse_nccl_tests(need("_input", text, str, "pass the nccl-tests stdout"))


@named("bandwidth_pairs")
def bandwidth_pairs(links, topology):
    """One ib_write_bw pair per twin per cable (ring) or per consecutive node pair (switch)."""
    fix = "pass the links of the fabric plan (dgxspark.cluster.fabric_plan), unchanged"
    for i, link in enumerate(need("links", links, list, fix)):
        for key in _LINK_KEYS:
            need("links[%d].%s" % (i, key), need("links[%d]" % i, link, dict, fix).get(key),
                 str, fix)
    need("topology", topology, str, "pass fabric_topology")
    pairs, seen = [], set()
    for link in links:
        if topology == "switch":
            nodes = sorted(set(l["node"] for l in links))
            order = [l["node"] for l in links]
            ordered = sorted(nodes, key=order.index)
            nxt = ordered[(ordered.index(link["node"]) + 1) % len(ordered)]
            if link["peer_node"] != nxt:
                continue
        key = frozenset([(link["node"], link["netdev"]), (link["peer_node"], link["peer_netdev"])])
        if key in seen:
            continue
        seen.add(key)
        pairs.append({"client": link["node"], "client_netdev": link["netdev"],
                      "server": link["peer_node"], "server_netdev": link["peer_netdev"],
                      "server_ip": link["peer_ip"], "tcp_port": 18515 + len(pairs)})
    return pairs


class FilterModule(object):
    def filters(self):
        return {"ib_write_bw": ib_write_bw, "nccl_tests": nccl_tests,
                "bandwidth_pairs": bandwidth_pairs}
