# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""RDMA discovery and measurement parsing (plain Python, unit-tested on recorded outputs).

* ``read_sysfs(root)``: RoCE devices from ``/sys/class/infiniband``: each device's netdev,
  port state, link layer and GID table (index, GID, type, netdev, IPv4).
* ``parse_ibv_devinfo``, ``parse_ibdev2netdev``, ``parse_show_gids``: the same facts from the
  usual commands (``active_mtu`` only comes from ``ibv_devinfo``).
* ``select_gids``: per fabric interface, the GID index of type RoCE v2 that carries the
  node's IPv4 on that interface, and ``gid_env`` the NCCL setting it implies.
* ``parse_ib_write_bw`` and ``parse_nccl_tests``: bandwidth figures for the opt-in checks.
"""
from __future__ import annotations

import os
import re

# Pass thresholds: NVIDIA spark_cluster_setup.py (MIN_NCCL_TEST_BW, MIN_NCCL_TEST_BW_RING).
NCCL_MIN_BUSBW_GBS = {"switch": 21.875, "direct": 21.875, "ring3": 10.0, "ring4": 10.0}
REQUIRED_ACTIVE_MTU = 4096


def _read(path):
    try:
        with open(path) as handle:
            return handle.read().strip()
    except (IOError, OSError):
        return None


def gid_ipv4(gid):
    """The IPv4 of an IPv4-mapped GID (::ffff:a.b.c.d in any spelling), else None."""
    if not gid:
        return None
    text = gid.lower().replace(":", "")
    if len(text) != 32 or not re.match(r"^[0-9a-f]{32}$", text):
        return None
    if text[:20] != "0" * 20 or text[20:24] != "ffff":
        return None
    return ".".join(str(int(text[i:i + 2], 16)) for i in range(24, 32, 2))


def read_sysfs(root="/sys"):
    """RoCE devices under ``root``/class/infiniband; {} when there are none (the lab)."""
    base = os.path.join(root, "class", "infiniband")
    if not os.path.isdir(base):
        return {}
    devices = {}
    for dev in sorted(os.listdir(base)):
        netdir = os.path.join(base, dev, "device", "net")
        netdevs = sorted(os.listdir(netdir)) if os.path.isdir(netdir) else []
        ports = {}
        portdir = os.path.join(base, dev, "ports")
        for port in _numbered(portdir):
            pdir = os.path.join(portdir, port)
            gids = []
            gdir = os.path.join(pdir, "gids")
            for index in _numbered(gdir):
                gid = _read(os.path.join(gdir, index))
                if not gid or gid.replace(":", "").strip("0") == "":
                    continue
                gtype = _read(os.path.join(pdir, "gid_attrs", "types", index))
                ndev = _read(os.path.join(pdir, "gid_attrs", "ndevs", index))
                gids.append({"index": int(index), "gid": gid, "type": gtype, "netdev": ndev,
                             "ipv4": gid_ipv4(gid)})
            ports[int(port)] = {
                "state": _state(_read(os.path.join(pdir, "state"))),
                "phys_state": _read(os.path.join(pdir, "phys_state")),
                "link_layer": _read(os.path.join(pdir, "link_layer")),
                "rate": _read(os.path.join(pdir, "rate")),
                "gids": gids,
            }
        devices[dev] = {"netdevs": netdevs, "ports": ports}
    return devices


def _numbered(directory):
    """The entries of a sysfs directory that are numbers (ports, GID indexes), in order;
    anything else in it is not a port or a GID and is skipped."""
    if not os.path.isdir(directory):
        return []
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted((name for name in names if name.isdigit() and name.isascii()), key=int)


def _state(text):
    """'4: ACTIVE' (sysfs) or 'PORT_ACTIVE (4)' (ibv_devinfo) -> 'ACTIVE'."""
    if not text:
        return None
    match = re.search(r"(?:PORT_)?(ACTIVE|DOWN|INIT|ARMED|ACTIVE_DEFER|NOP)\b", text)
    return match.group(1) if match else text


def parse_ibv_devinfo(text):
    """{device: {port: {state, active_mtu, max_mtu, link_layer}}} from ``ibv_devinfo``."""
    devices = {}
    dev = port = None
    for line in text.splitlines():
        match = re.match(r"^hca_id:\s*(\S+)", line)
        if match:
            dev = match.group(1)
            devices[dev] = {}
            port = None
            continue
        match = re.match(r"^\s+port:\s*(\d+)", line)
        if match and dev:
            port = int(match.group(1))
            devices[dev][port] = {}
            continue
        match = re.match(r"^\s+(state|active_mtu|max_mtu|link_layer):\s*(.+?)\s*$", line)
        if match and dev and port is not None:
            key, value = match.groups()
            if key in ("active_mtu", "max_mtu"):
                # "4096 (5)"; anything else is kept as text for mtu_problems to report
                word = value.split()[0]
                value = int(word) if word.isdigit() and word.isascii() else value
            elif key == "state":
                value = _state(value)
            devices[dev][port][key] = value
    return devices


def parse_ibdev2netdev(text):
    """[{rdma, port, netdev, state}] from ``ibdev2netdev``."""
    out = []
    for line in text.splitlines():
        match = re.match(r"^\s*(\S+)\s+port\s+(\d+)\s+==>\s+(\S+)\s+\((\w+)\)", line)
        if match:
            out.append({"rdma": match.group(1), "port": int(match.group(2)),
                        "netdev": match.group(3), "state": match.group(4)})
    return out


def parse_show_gids(text):
    """[{rdma, port, index, gid, ipv4, version, netdev}] from ``show_gids``."""
    out = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5 or not fields[1].isdigit() or not fields[2].isdigit():
            continue
        dev, port, index, gid = fields[0], int(fields[1]), int(fields[2]), fields[3]
        rest = fields[4:]
        ipv4 = rest[0] if rest and re.match(r"^\d+\.\d+\.\d+\.\d+$", rest[0]) else None
        if ipv4:
            rest = rest[1:]
        version = rest[0] if rest else None
        netdev = rest[1] if len(rest) > 1 else None
        out.append({"rdma": dev, "port": port, "index": index, "gid": gid,
                    "ipv4": ipv4 or gid_ipv4(gid), "version": version, "netdev": netdev})
    return out


def select_gids(devices, interfaces):
    """For each fabric interface ({netdev, ip}), the device, port and RoCE v2 GID index.

    Returns (selection, problems): selection maps netdev -> {rdma, port, gid_index, state};
    problems lists what keeps an interface from RDMA (no device, port not active, no RoCE v2
    GID for its IPv4 yet).
    """
    by_netdev = {}
    for dev, info in devices.items():
        for netdev in info["netdevs"]:
            by_netdev[netdev] = dev
    check_interfaces(interfaces)
    selection, problems = {}, []
    for iface in interfaces:
        netdev, ip = iface["netdev"], iface["ip"]
        dev = by_netdev.get(netdev)
        if dev is None:
            problems.append("%s has no RoCE device" % netdev)
            continue
        for port, pinfo in sorted(devices[dev]["ports"].items()):
            match = [g for g in pinfo["gids"] if g["ipv4"] == ip and
                     (g["type"] or "").lower().replace(" ", "") == "rocev2"]
            entry = {"rdma": dev, "port": port, "state": pinfo["state"],
                     "gid_index": match[0]["index"] if match else None}
            selection[netdev] = entry
            if pinfo["state"] != "ACTIVE":
                problems.append("%s (%s port %d) is %s, not ACTIVE" % (dev, netdev, port,
                                                                       pinfo["state"]))
            if not match:
                problems.append("%s (%s) has no RoCE v2 GID carrying %s" % (dev, netdev, ip))
            break
    return selection, problems


def mtu_problems(devices, selection, required=REQUIRED_ACTIVE_MTU):
    """Sets each selected interface's ``active_mtu`` (from ``devices``) and lists what falls
    short of ``required``: a smaller MTU, or one ibv_devinfo printed as something else. None
    (ibv_devinfo not installed) is not judged."""
    problems = []
    for netdev, entry in sorted(selection.items()):
        port = devices.get(entry["rdma"], {}).get("ports", {}).get(entry["port"], {})
        mtu = port.get("active_mtu")
        entry["active_mtu"] = mtu
        if mtu is None:
            continue
        if isinstance(mtu, bool) or not isinstance(mtu, int):
            problems.append("%s (%s) active_mtu reads %r, not a number: check the port with "
                            "ibv_devinfo -d %s" % (entry["rdma"], netdev, mtu, entry["rdma"]))
        elif mtu < required:
            problems.append("%s (%s) active_mtu is %d, not %d: set MTU 9000 on %s and l2mtu "
                            "9216 on the switch" % (entry["rdma"], netdev, mtu, required, netdev))
    return problems


def check_interfaces(interfaces):
    """The interfaces argument of rdma_facts: a list of {netdev, ip} (names where it is not)."""
    if not isinstance(interfaces, (list, tuple)):
        raise ValueError("interfaces=%r: must be a list of {netdev, ip}. Fix: give e.g. "
                         "[{netdev: enp1s0f1np1, ip: 192.168.100.10}]" % (interfaces,))
    for i, iface in enumerate(interfaces):
        for key in ("netdev", "ip"):
            if not isinstance(iface, dict) or not isinstance(iface.get(key), str) or \
                    not iface.get(key):
                raise ValueError("interfaces[%d].%s=%r: must be a non-empty string. Fix: give "
                                 "each interface as {netdev: NAME, ip: ADDRESS}"
                                 % (i, key, iface.get(key) if isinstance(iface, dict)
                                    else iface))


def gid_env(selection):
    """NCCL's GID setting for one node: one index if all interfaces agree, else let NCCL
    choose RoCE v2 over IPv4 by itself (NCCL uses one index for every HCA of a process)."""
    indexes = set(e["gid_index"] for e in selection.values() if e["gid_index"] is not None)
    if len(indexes) == 1:
        return {"NCCL_IB_GID_INDEX": str(indexes.pop())}
    if indexes:
        return {"NCCL_IB_ROCE_VERSION_NUM": "2", "NCCL_IB_ADDR_FAMILY": "AF_INET"}
    return {}


def facts(devices, ibv_devinfo_output, interfaces, required_active_mtu=REQUIRED_ACTIVE_MTU):
    """What the rdma_facts module (and fabric_facts' ``rdma``) returns: ``devices``
    (read_sysfs), with each port's ``active_mtu`` from ``ibv_devinfo``'s output (None when
    it is not installed or failed), ``selection`` and ``problems`` for the fabric
    ``interfaces`` and the NCCL GID ``env``; ``present`` false (and nothing else) without RoCE
    devices. Raises ValueError for a malformed interface."""
    if not devices:
        return {"present": False, "devices": {}, "selection": {}, "problems": [], "env": {}}
    if ibv_devinfo_output:
        for dev, ports in parse_ibv_devinfo(ibv_devinfo_output).items():
            for port, info in ports.items():
                if dev in devices and port in devices[dev]["ports"]:
                    devices[dev]["ports"][port]["active_mtu"] = info.get("active_mtu")
    selection, problems = select_gids(devices, interfaces)
    problems += mtu_problems(devices, selection, required_active_mtu)
    return {"present": True, "devices": devices, "selection": selection, "problems": problems,
            "env": gid_env(selection)}


def module_facts(module, sysfs_root, interfaces, required_active_mtu=REQUIRED_ACTIVE_MTU):
    """``facts`` for an AnsibleModule: reads sysfs, runs ``ibv_devinfo`` when there are RoCE
    devices and it is installed. Raises ValueError for a malformed interface."""
    devices = read_sysfs(sysfs_root)
    ibv_output = None
    ibv = module.get_bin_path("ibv_devinfo") if devices else None
    if ibv:
        rc, out, dummy = module.run_command([ibv])
        ibv_output = out if rc == 0 else None
    return facts(devices, ibv_output, interfaces, required_active_mtu)


def parse_ib_write_bw(text):
    """Header facts and the result row of ``ib_write_bw`` (Gb/s whatever the unit)."""
    out = {"device": None, "gid_index": None, "mtu": None, "link_type": None,
           "bw_peak_gbps": None, "bw_avg_gbps": None, "msg_size": None}
    unit_gbit = False
    for line in text.splitlines():
        for key, pattern in (("device", r"Device\s*:\s*(\S+)"),
                             ("gid_index", r"GID index\s*:\s*(\d+)"),
                             ("mtu", r"\bMtu\s*:\s*(\d+)"),
                             ("link_type", r"Link type\s*:\s*(\S+)")):
            match = re.search(pattern, line)
            if match and out[key] is None:
                out[key] = int(match.group(1)) if key in ("gid_index", "mtu") else match.group(1)
        if re.search(r"BW average\[Gb/sec\]", line):
            unit_gbit = True
        # #bytes #iterations BW-peak BW-average [MsgRate [CPU_Util]]
        match = re.match(r"^\s*(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)(?:\s+[\d.]+){0,2}\s*$", line)
        if match and out["bw_avg_gbps"] is None:
            peak, avg = float(match.group(3)), float(match.group(4))
            if not unit_gbit:  # MB/sec (2^20 bytes) -> Gb/s
                peak, avg = peak * 8 * 1.048576 / 1000, avg * 8 * 1.048576 / 1000
            out.update(msg_size=int(match.group(1)), bw_peak_gbps=round(peak, 2),
                       bw_avg_gbps=round(avg, 2))
    return out


def parse_nccl_tests(text):
    """``# Avg bus bandwidth`` (GB/s), the largest size's busbw and the #wrong counts."""
    out = {"avg_busbw_gbs": None, "rows": [], "wrong": 0, "out_of_bounds": None}
    for line in text.splitlines():
        match = re.match(r"^#\s*Avg bus bandwidth\s*:\s*([\d.]+)", line)
        if match:
            out["avg_busbw_gbs"] = float(match.group(1))
            continue
        match = re.match(r"^#\s*Out of bounds values\s*:\s*(\d+)", line)
        if match:
            out["out_of_bounds"] = int(match.group(1))
            continue
        if line.startswith("#") or not line.strip():
            continue
        fields = line.split()
        if len(fields) >= 13 and fields[0].isdigit():
            try:
                row = {"size": int(fields[0]), "oop_busbw": float(fields[7]),
                       "oop_wrong": fields[8], "ip_busbw": float(fields[11]),
                       "ip_wrong": fields[12]}
            except ValueError:
                continue
            for key in ("oop_wrong", "ip_wrong"):
                if row[key].isdigit():
                    out["wrong"] += int(row[key])
            out["rows"].append(row)
    return out
