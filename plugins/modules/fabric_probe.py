#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: fabric_probe
short_description: Probe a node's fabric links with don't-fragment pings
version_added: "0.1.0"
description:
  - Reports the node's fabric interfaces (MAC, MTU, carrier, addresses) and, for every link
    given, pings the peer from the link's own interface with the don't-fragment bit at 1472
    bytes and at O(mtu) - 28 bytes, then reads the peer's neighbour entry (the MAC that
    answered ARP).
  - Finds who is on the other end of each interface's wire. It sends ARP requests for every
    fabric address of the cluster (O(wire_targets)) out of that interface and records which
    MACs answer. With C(arp_ignore=1) on the fabric (the fabric role sets it) only the port that
    carries the address answers, so a swapped cable names the port it really reaches.
  - The controller judges the results of all nodes together with
    M(dgxspark.cluster.fabric_check), where a swapped cable, an MTU mismatch and a link without
    carrier each show differently.
  - Changes nothing but the kernel's neighbour cache entry of each peer, which it flushes first so
    the MAC it reads comes from a fresh ARP answer; runs the same in check mode.
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
  interfaces:
    description: Fabric netdevs to report.
    type: list
    elements: str
    required: true
  links:
    description: Links to ping, each a dict with C(netdev) and C(peer_ip).
    type: list
    elements: dict
    default: []
  wire_targets:
    description: Every fabric IPv4 address of the cluster, asked for by ARP out of each interface.
    type: list
    elements: str
    default: []
  mtu:
    description: The fabric MTU; the jumbo ping carries O(mtu) - 28 bytes of payload.
    type: int
    default: 9000
  count:
    description: Pings per size and link.
    type: int
    default: 2
  timeout:
    description: Seconds to wait for each reply.
    type: int
    default: 1
"""

EXAMPLES = r"""
- name: Probe the ring links of this node
  dgxspark.cluster.fabric_probe:
    interfaces: [enp1s0f0np0, enP2p1s0f0np0]
    links:
      - {netdev: enp1s0f0np0, peer_ip: 10.20.0.12}
    mtu: 9000
"""

RETURN = r"""
interfaces:
  description: Per netdev, C(mac), C(mtu), C(carrier), C(operstate) and C(addresses) (CIDR).
  returned: always
  type: dict
links:
  description: Per link, C(small_ok), C(jumbo_ok), C(neigh_mac) and C(neigh_state).
  returned: always
  type: list
  elements: dict
wire:
  description: Per netdev, the C(ip) and C(mac) of every port that answered ARP on its wire.
  returned: always
  type: dict
"""

import json
import select
import socket
import struct
import time
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule


def read_interfaces(module, names):
    rc, out, err = module.run_command(["ip", "-j", "addr", "show"])
    if rc:
        module.fail_json(msg="ip addr failed: %s" % err)
    found = {}
    for link in json.loads(out or "[]"):
        if link["ifname"] not in names:
            continue
        flags = link.get("flags", [])
        found[link["ifname"]] = {
            "mac": link.get("address"), "mtu": link.get("mtu"),
            "operstate": link.get("operstate"),
            "carrier": "LOWER_UP" in flags and "NO-CARRIER" not in flags,
            "addresses": ["%s/%s" % (a["local"], a["prefixlen"])
                          for a in link.get("addr_info", []) if a.get("family") == "inet"],
        }
    return found


def ping(module, netdev, peer, size, count, timeout):
    rc, dummy, dummy = module.run_command(["ping", "-n", "-q", "-M", "do", "-s", str(size), "-c",
                                           str(count), "-i", "0.2", "-W", str(timeout), "-I", netdev,
                                           peer])
    return rc == 0


def probe(module, link):
    params = module.params
    netdev, peer = link["netdev"], link["peer_ip"]
    module.run_command(["ip", "neigh", "flush", "to", peer, "dev", netdev])
    small = ping(module, netdev, peer, 1472, params["count"], params["timeout"])
    jumbo = ping(module, netdev, peer, params["mtu"] - 28, params["count"], params["timeout"])
    rc, out, dummy = module.run_command(["ip", "-j", "neigh", "show", "to", peer, "dev", netdev])
    neigh = json.loads(out or "[]") if rc == 0 else []
    entry = neigh[0] if neigh else {}
    return {"netdev": netdev, "peer_ip": peer, "small_ok": small, "jumbo_ok": jumbo,
            "neigh_mac": entry.get("lladdr"), "neigh_state": entry.get("state")}


ETH_P_ARP = 0x0806


def _mac_bytes(mac):
    return bytes(int(part, 16) for part in mac.split(":"))


def arp_sweep(netdev, mac, src_ip, targets, wait=0.5):
    """Ask ARP for every target out of ``netdev``; return [{ip, mac}] of the answers."""
    if not mac or not src_ip or not targets:
        return []
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    try:
        sock.bind((netdev, 0))
        src = _mac_bytes(mac)
        for target in targets:
            if target == src_ip:
                continue
            arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, src,
                              socket.inet_aton(src_ip), b"\0" * 6, socket.inet_aton(target))
            sock.send(b"\xff" * 6 + src + struct.pack("!H", ETH_P_ARP) + arp)
        answers = {}
        deadline = time.time() + wait
        while time.time() < deadline:
            ready, dummy, dummy = select.select([sock], [], [], max(0.0, deadline - time.time()))
            if not ready:
                break
            frame = sock.recv(2048)
            if len(frame) < 42 or frame[12:14] != struct.pack("!H", ETH_P_ARP):
                continue
            op = struct.unpack("!H", frame[20:22])[0]
            sender_mac = ":".join("%02x" % b for b in frame[22:28])
            sender_ip = socket.inet_ntoa(frame[28:32])
            if op == 2 and sender_ip in targets:
                answers[sender_ip] = sender_mac
        return [{"ip": ip, "mac": answers[ip]} for ip in sorted(answers)]
    finally:
        sock.close()


def main():
    module = AnsibleModule(
        argument_spec=dict(
            interfaces=dict(type="list", elements="str", required=True),
            links=dict(type="list", elements="dict", default=[]),
            wire_targets=dict(type="list", elements="str", default=[]),
            mtu=dict(type="int", default=9000),
            count=dict(type="int", default=2),
            timeout=dict(type="int", default=1),
        ),
        supports_check_mode=True,
    )
    interfaces = read_interfaces(module, set(module.params["interfaces"]))
    links = [l for l in module.params["links"] if l.get("netdev") in interfaces]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda l: probe(module, l), links))
    missing = [l for l in module.params["links"] if l.get("netdev") not in interfaces]
    for link in missing:
        results.append({"netdev": link.get("netdev"), "peer_ip": link.get("peer_ip"),
                        "small_ok": False, "jumbo_ok": False, "neigh_mac": None,
                        "neigh_state": "NO_INTERFACE"})
    targets = module.params["wire_targets"]

    def sweep(item):
        netdev, info = item
        own = info["addresses"][0].split("/")[0] if info["addresses"] else None
        return netdev, arp_sweep(netdev, info["mac"], own, targets) if info["carrier"] else []

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            wire = dict(pool.map(sweep, sorted(interfaces.items())))
    except OSError as exc:
        module.fail_json(msg="ARP probe failed: %s (the probe needs root)" % exc)
    module.exit_json(changed=False, interfaces=interfaces, links=results, wire=wire)


if __name__ == "__main__":
    main()
