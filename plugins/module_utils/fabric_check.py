# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Judge the fabric link by link from the nodes' probes (plain Python).

Each node probes every planned link of its own: a don't-fragment ping at 1472 bytes (fits a
1500 MTU) and one at MTU - 28 (a full jumbo frame) from the link's own interface, then reads
the neighbour entry of the peer address (the MAC that answered ARP). With every node's
interface MACs this tells apart:

* ``swapped``: the ports that answer ARP on the interface's wire (the probe asks for every
  fabric address of the cluster) do not include the planned peer port (a P0-to-P0 cable
  answers from the peer's P0); without that sweep, the MAC that answered the peer's address;
* ``link_down``: the interface has no carrier;
* ``mtu``: small frames pass and jumbo frames do not (an interface or a switch port/hop at
  1500), with the interface MTUs on both ends to say where;
* ``address``: the planned address is not on the interface;
* ``unreachable``: nothing answers at all.
"""
from __future__ import annotations

import os

from .plan.errors import InputError

FIXES = {
    "swapped": "re-cable so that P0 of each node meets P1 of the next (NCCL pairs HCAs by "
               "device index; a P0-to-P0 cable hangs ncclCommInitRank)",
    "link_down": "check the cable and its seating; on a switch, enable the port (and on a "
                 "CRS812 all lanes of the breakout)",
    "mtu": "set MTU 9000 on both interfaces and l2mtu 9216 on every switch port in the path",
    "address": "re-run the fabric role; if it persists another netplan file or NetworkManager "
               "owns the interface",
    "unreachable": "check the cabling against the plan (cables table in the README) and the "
                   "peer's interface",
    "missing": "the node lacks this ConnectX-7 interface name: check the inventory order and "
               "the NIC (ibdev2netdev)",
}


class ProbeError(InputError):
    """The plan or a probe is not what fabric_plan / fabric_probe return: names where."""


_PLAN_FIX = "pass the plan dgxspark.cluster.fabric_plan returned, unchanged"
_PROBE_FIX = "pass the results of dgxspark.cluster.fabric_probe, unchanged"
_LINK_KEYS = ("node", "netdev", "ip", "port", "cable", "peer_node", "peer_netdev", "peer_ip",
              "peer_port")


def _need(variable, value, kind, fix):
    if not isinstance(value, kind):
        raise ProbeError(variable, value, "must be a %s" % {dict: "dict", list: "list",
                                                            str: "string"}[kind], fix)
    return value


def check_inputs(plan, probes):
    """Refuse a plan or probes of the wrong shape, naming the key (a probe link without
    peer_ip was a KeyError)."""
    _need("plan", plan, dict, _PLAN_FIX)
    if isinstance(plan.get("mtu"), bool) or not isinstance(plan.get("mtu"), int):
        raise ProbeError("plan.mtu", plan.get("mtu"), "must be an integer", _PLAN_FIX)
    _need("plan.nodes", plan.get("nodes"), dict, _PLAN_FIX)
    for node, data in plan["nodes"].items():
        _need("plan.nodes.%s" % node, data, dict, _PLAN_FIX)
        for i, iface in enumerate(_need("plan.nodes.%s.interfaces" % node,
                                        data.get("interfaces"), list, _PLAN_FIX)):
            _need("plan.nodes.%s.interfaces[%d]" % (node, i), iface, dict, _PLAN_FIX)
            for key in ("netdev", "port"):
                _need("plan.nodes.%s.interfaces[%d].%s" % (node, i, key), iface.get(key), str,
                      _PLAN_FIX)
    for i, link in enumerate(_need("plan.links", plan.get("links"), list, _PLAN_FIX)):
        _need("plan.links[%d]" % i, link, dict, _PLAN_FIX)
        for key in _LINK_KEYS:
            _need("plan.links[%d].%s" % (i, key), link.get(key), str, _PLAN_FIX)
    _need("probes", probes, dict, _PROBE_FIX)
    for node, probe in probes.items():
        where = "probes.%s" % node
        if probe is None:
            continue  # a node without a probe: its links are judged "missing"/"not probed"
        _need(where, probe, dict, _PROBE_FIX)
        for netdev, info in _need(where + ".interfaces", probe.get("interfaces") or {}, dict,
                                  _PROBE_FIX).items():
            _need("%s.interfaces.%s" % (where, netdev), info, dict, _PROBE_FIX)
            if info.get("mac") is not None:
                _need("%s.interfaces.%s.mac" % (where, netdev), info["mac"], str, _PROBE_FIX)
            for j, address in enumerate(_need("%s.interfaces.%s.addresses" % (where, netdev),
                                              info.get("addresses") or [], list, _PROBE_FIX)):
                _need("%s.interfaces.%s.addresses[%d]" % (where, netdev, j), address, str,
                      _PROBE_FIX)
        for j, link in enumerate(_need(where + ".links", probe.get("links") or [], list,
                                       _PROBE_FIX)):
            _need("%s.links[%d]" % (where, j), link, dict, _PROBE_FIX)
            for key in ("netdev", "peer_ip"):
                _need("%s.links[%d].%s" % (where, j, key), link.get(key), str, _PROBE_FIX)
            if link.get("neigh_mac") is not None:
                _need("%s.links[%d].neigh_mac" % (where, j), link["neigh_mac"], str,
                      _PROBE_FIX)
        for netdev, answers in _need(where + ".wire", probe.get("wire") or {}, dict,
                                     _PROBE_FIX).items():
            for j, answer in enumerate(_need("%s.wire.%s" % (where, netdev), answers or [],
                                             list, _PROBE_FIX)):
                _need("%s.wire.%s[%d]" % (where, netdev, j), answer, dict, _PROBE_FIX)
                if answer.get("mac") is not None:
                    _need("%s.wire.%s[%d].mac" % (where, netdev, j), answer["mac"], str,
                          _PROBE_FIX)


def _label(node, netdev, port=None):
    return "%s/%s%s" % (node, netdev, " (%s)" % port if port else "")


def analyse(plan, probes):
    """Return ``{"ok": bool, "links": [...], "problems": [...]}``.

    ``plan`` is ``topology.plan()``; ``probes`` maps node -> the fabric_probe result
    (``interfaces``: netdev -> {mac, mtu, carrier, addresses}; ``links``: list of
    {netdev, peer_ip, small_ok, jumbo_ok, neigh_mac}). Raises ProbeError when either is not
    of that shape.
    """
    check_inputs(plan, probes)
    macs = {}
    ports = {}
    for node, data in plan["nodes"].items():
        for iface in data["interfaces"]:
            ports[(node, iface["netdev"])] = iface["port"]
    for node, probe in probes.items():
        for netdev, info in ((probe or {}).get("interfaces") or {}).items():
            if info.get("mac"):
                macs[info["mac"].lower()] = (node, netdev)
    mtu = plan["mtu"]
    rows, problems = [], []
    for link in plan["links"]:
        node, netdev, peer, peer_netdev = (link["node"], link["netdev"], link["peer_node"],
                                           link["peer_netdev"])
        probe = probes.get(node) or {}
        info = (probe.get("interfaces") or {}).get(netdev)
        peer_info = ((probes.get(peer) or {}).get("interfaces") or {}).get(peer_netdev) or {}
        result = next((r for r in probe.get("links") or [] if r["netdev"] == netdev and
                       r["peer_ip"] == link["peer_ip"]), None)
        here = _label(node, netdev, link["port"])
        there = _label(peer, peer_netdev, link["peer_port"])
        kind, message = None, None
        if info is None:
            kind, message = "missing", "%s does not exist" % here
        elif not info.get("carrier"):
            kind, message = "link_down", "%s has no carrier (cable %s to %s)" % (
                here, link["cable"], there)
        elif peer_info and not peer_info.get("carrier"):
            kind, message = "link_down", "%s has no carrier, so %s cannot reach it (cable %s)" % (
                there, here, link["cable"])
        elif link["ip"] not in [a.split("/")[0] for a in info.get("addresses") or []]:
            kind, message = "address", "%s lacks its planned address %s" % (here, link["ip"])
        elif result is None:
            kind, message = "unreachable", "%s was not probed" % here
        else:
            answered = (result.get("neigh_mac") or "").lower()
            expected = (peer_info.get("mac") or "").lower()
            wire = (probe.get("wire") or {}).get(netdev)
            ends = []
            for answer in wire or []:
                end = macs.get((answer.get("mac") or "").lower())
                if end and end != (node, netdev) and end not in ends:
                    ends.append(end)
            if wire is not None and ends and (peer, peer_netdev) not in ends:
                where = ", ".join(_label(e[0], e[1], ports.get(e)) for e in ends)
                kind = "swapped"
                message = ("swapped cable: %s is cabled to %s, the plan wants %s (%s on %s "
                           "must meet %s)" % (here, where, there, link["port"], node,
                                              link["peer_port"]))
            elif wire is not None and ends:
                pass  # the right port is on the wire: judge the pings below
            elif answered and expected and answered != expected:
                actual = macs.get(answered)
                if actual:
                    where = _label(actual[0], actual[1], ports.get(actual))
                    kind = "swapped"
                    message = ("swapped cable: %s is cabled to %s, the plan wants %s (%s on "
                               "%s must meet %s)" % (here, where, there, link["port"], node,
                                                     link["peer_port"]))
                else:
                    kind = "swapped"
                    message = ("%s reaches an unknown port (MAC %s) instead of %s"
                               % (here, answered, there))
            if kind is None and not result.get("small_ok"):
                kind, message = "unreachable", "%s cannot reach %s at %s" % (
                    here, there, link["peer_ip"])
            elif kind is None and not result.get("jumbo_ok"):
                kind = "mtu"
                local_mtu, peer_mtu = info.get("mtu"), peer_info.get("mtu")
                if local_mtu != mtu or peer_mtu != mtu:
                    where = "interface MTU %s on %s, %s on %s" % (local_mtu, here, peer_mtu,
                                                                  there)
                else:
                    where = ("both interfaces are at %d, so a hop between them (switch port "
                             "or cable) drops frames above 1500 bytes" % mtu)
                message = ("MTU mismatch: %s reaches %s with 1500-byte frames but not with "
                           "%d-byte frames (%s)" % (here, there, mtu, where))
        rows.append({"node": node, "netdev": netdev, "peer": there, "peer_ip": link["peer_ip"],
                     "cable": link["cable"], "ok": kind is None, "problem": kind})
        if kind:
            problems.append({"kind": kind, "node": node, "netdev": netdev, "peer": there,
                             "cable": link["cable"], "message": message, "fix": FIXES[kind]})
    return {"ok": not problems, "links": rows, "problems": problems}


def summary(result):
    lines = []
    good = sum(1 for r in result["links"] if r["ok"])
    lines.append("fabric: %d of %d link directions pass (both twins, both directions, "
                 "don't-fragment pings at full MTU)" % (good, len(result["links"])))
    for problem in result["problems"]:
        lines.append("%s: %s -- fix: %s" % (problem["kind"].upper(), problem["message"],
                                            problem["fix"]))
    return lines


def live_state(links, node_plan, mtu, mgmt_ips=()):
    """Compare a node's ``ip -j addr`` output with its part of the plan.

    Returns ``missing`` (planned netdevs the node lacks), ``mgmt_on_fabric`` (fabric netdevs
    that carry a management address), ``drift`` (an interface lacks its address or MTU) and
    ``converged`` (every interface has its address and MTU).
    """
    by_name = dict((link["ifname"], link) for link in links)
    missing, mgmt, wrong = [], [], []
    for iface in node_plan["interfaces"]:
        link = by_name.get(iface["netdev"])
        if link is None:
            missing.append(iface["netdev"])
            continue
        local = [a.get("local") for a in link.get("addr_info", [])]
        if set(local) & set(ip for ip in mgmt_ips if ip):
            mgmt.append(iface["netdev"])
        if link.get("mtu") != mtu or iface["ip"] not in local:
            wrong.append(iface["netdev"])
    return {"missing": missing, "mgmt_on_fabric": mgmt, "drift": bool(wrong or missing),
            "converged": not wrong and not missing, "wrong": wrong}


def sysctl_drift(wanted, output):
    """Which of a node's ``wanted`` kernel settings ({key: value}, the plan's ``sysctl``) the
    node does not have, as "key=value" arguments for ``sysctl -w``, in the plan's order.
    ``output`` is what ``sysctl KEY...`` printed ("key = value" per line); a key it does not
    list counts as drift (setting it then fails loudly if the kernel has no such key)."""
    live = {}
    for line in (output or "").splitlines():
        key, sep, value = line.partition(" = ")
        if sep:
            live[key.strip()] = value.strip()
    return ["%s=%s" % (key, value) for key, value in wanted.items()
            if live.get(key) != str(value)]


def other_netplan_files(paths_and_texts, netdevs, own_file):
    """The netplan files (``[(path, text), ...]``) other than ``own_file`` that name one of
    the fabric ``netdevs``: netplan merges every file, so their addresses would stay."""
    return sorted(path for path, text in paths_and_texts
                  if path != own_file and any(netdev in text for netdev in netdevs))


def _ssh_server(environ_text):
    """The server address of ``SSH_CONNECTION`` ("client cport server sport") in a process's
    environment (``/proc/<pid>/environ``: NUL-separated), or None."""
    for entry in environ_text.split("\0"):
        if entry.startswith("SSH_CONNECTION="):
            parts = entry.split("=", 1)[1].split()
            return parts[2] if len(parts) == 4 else None
    return None


def ssh_server_address(proc="/proc", pid="self", limit=32):
    """The address this node was reached at over SSH: ``SSH_CONNECTION`` of this process or
    of the nearest ancestor that has it (become - sudo - clears it from the module's own
    environment, the SSH session's shell above keeps it; reading it needs the same user or
    root). "" when no process up the chain came over SSH (a local connection)."""
    for dummy in range(limit):
        base = os.path.join(proc, str(pid))
        try:
            with open(os.path.join(base, "environ"), "rb") as handle:
                found = _ssh_server(handle.read().decode("utf-8", "replace"))
            if found:
                return found
        except OSError:
            pass
        try:
            with open(os.path.join(base, "stat")) as handle:
                stat = handle.read()
        except OSError:
            return ""
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        ppid = stat[stat.rindex(")") + 2:].split()[1]
        if ppid in ("0", "1"):
            return ""
        pid = ppid
    return ""


# The fabric_check module's options (its module and its action plugin share them).
ARGUMENT_SPEC = dict(
    plan=dict(type="dict", required=True),
    probes=dict(type="dict", required=True),
    fail_on_problems=dict(type="bool", default=True),
)


def compute(params):
    """The fabric_check module's result for its ``params`` (module_utils/controller.py)."""
    try:
        result = analyse(params["plan"], params["probes"])
    except ProbeError as exc:
        return {"failed": True, "msg": str(exc), "variable": exc.variable, "fix": exc.fix}
    result["report"] = summary(result)
    result["changed"] = False
    if result["problems"] and params["fail_on_problems"]:
        result.update(failed=True, msg="fabric verification failed:\n" + "\n".join(
            result["report"][1:]))
    return result
