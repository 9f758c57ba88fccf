# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""What a node is, read in one go (the node_facts module), and the node's memory drained
before a launch (the memory_drain module). Plain Python, standard library only: it runs on
the Spark (or a lab node).

``read_facts`` returns the kernel, the GPU and its driver (``nvidia-smi``, when present), the
memory (``/proc/meminfo``), the IPv4 addresses of every interface (``ip -j addr``), and the
records the collection's roles leave in ``/etc/ansible/facts.d`` (``dgxspark_fabric``,
``dgxspark_image``, ``dgxspark_cluster``, ``dgxspark_memory_guard``) with the memory guard's
last kill.

``read_memory`` (the memory_ledger module) reads what the node's memory holds after a launch:
``/proc/meminfo``, vLLM's memory lines in the engine unit's log since it started, the
proportional set size of the engine's and Ray's processes, and the records it needs.
"""
from __future__ import annotations

import json
import os
import subprocess

FACTS_DIR = "/etc/ansible/facts.d"
RECORDS = ("fabric", "image", "cluster", "memory_guard")


def meminfo(text):
    """/proc/meminfo text -> {field: kB}."""
    out = {}
    for line in (text or "").splitlines():
        if ":" not in line:
            continue
        key, value = line.split(":", 1)
        parts = value.split()
        if parts and parts[0].isdigit():
            out[key.strip()] = int(parts[0])
    return out


def addresses(ip_json):
    """``ip -j addr show`` -> {interface: [IPv4 addresses]}."""
    data = json.loads(ip_json) if isinstance(ip_json, str) else ip_json
    out = {}
    for link in data or []:
        if not isinstance(link, dict) or not link.get("ifname"):
            continue
        out[link["ifname"]] = [a.get("local") for a in link.get("addr_info") or []
                               if isinstance(a, dict) and a.get("family") == "inet"
                               and a.get("local")]
    return out


def _run(argv):
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, str(exc)
    if proc.returncode != 0:
        return None, (proc.stderr or proc.stdout).strip()[:300]
    return proc.stdout, None


def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def read_record(name, facts_dir=FACTS_DIR):
    """A role's record (``dgxspark_<name>.fact``, JSON) or None; an unreadable one is
    returned as ``{"error": ...}``."""
    text = _read(os.path.join(facts_dir, "dgxspark_%s.fact" % name))
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        return {"error": "not JSON: %s" % exc}
    return value if isinstance(value, dict) else {"error": "not a JSON object"}


def read_facts(facts_dir=FACTS_DIR):
    out = {"kernel": os.uname().release, "gpu": None, "gpu_error": None}
    smi, error = _run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"])
    if smi:
        first = smi.strip().splitlines()[0] if smi.strip() else ""
        name, dummy, driver = first.partition(",")
        out["gpu"] = {"name": name.strip(), "driver": driver.strip()}
    else:
        out["gpu_error"] = error
    mem = meminfo(_read("/proc/meminfo"))
    out["memory_kib"] = dict((k, mem.get(k)) for k in ("MemTotal", "MemAvailable", "SwapTotal",
                                                       "SwapFree"))
    ip_out, error = _run(["ip", "-j", "addr", "show"])
    try:
        out["addresses"] = addresses(ip_out) if ip_out else {}
    except ValueError:
        out["addresses"] = {}
        error = "ip -j addr show printed no JSON"
    out["addresses_error"] = error if not ip_out or not out["addresses"] else None
    out["records"] = dict((name, read_record(name, facts_dir)) for name in RECORDS)
    out["memory_guard_last_kill"] = last_kill(out["records"]["memory_guard"])
    return out


UNIT_PROPERTIES = "Id,LoadState,UnitFileState,ActiveState"


def read_units(units):
    """What ``systemctl show --property=Id,LoadState,UnitFileState,ActiveState UNIT...``
    printed (the units filters read it), or raises RuntimeError with systemctl's message."""
    if not units:
        return ""
    out, error = _run(["systemctl", "show", "--property=" + UNIT_PROPERTIES] + list(units))
    if out is None:
        raise RuntimeError("systemctl show %s: %s" % (" ".join(units), error))
    return out


def read_sysctl(keys):
    """What ``sysctl KEY...`` printed ("key = value" lines). A key the kernel lacks makes
    sysctl fail; the lines it printed for the others still count (the callers treat a missing
    key as one to set, which then fails loudly)."""
    if not keys:
        return ""
    try:
        proc = subprocess.run(["sysctl"] + list(keys), capture_output=True, text=True,
                              timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout


def unit_commands(units):
    """{unit: the command line (argv) its main process runs with, [] when none runs}."""
    out = {}
    for unit in units or []:
        pid, dummy = _run(["systemctl", "show", "-p", "MainPID", "--value", unit])
        cmdline = _read("/proc/%s/cmdline" % pid.strip()) if pid and pid.strip() not in ("", "0") \
            else None
        out[unit] = [arg for arg in (cmdline or "").split("\0") if arg]
    return out


def paths_exist(paths):
    """{path: whether it exists} (as the connection's user sees it)."""
    return dict((path, os.path.exists(path)) for path in paths or [])


def last_kill(guard):
    """The memory guard's last kill (the last line of its events file, JSON), or None."""
    if not isinstance(guard, dict) or not guard.get("events_file"):
        return None
    text = _read(guard["events_file"])
    lines = [line for line in (text or "").splitlines() if line.strip()]
    if not lines:
        return None
    try:
        value = json.loads(lines[-1])
    except ValueError:
        return {"error": "%s: last line is not JSON" % guard["events_file"]}
    return value if isinstance(value, dict) else None


def _container_ids(names):
    ids = {}
    for name in names:
        out, dummy = _run(["docker", "inspect", "--format", "{{.Id}}", name])
        if out and out.strip():
            ids[out.strip()] = name
    return ids


def processes(container_names=("dgxspark-vllm", "dgxspark-ray")):
    """The node's processes that belong to the engine or to Ray (memory.classify), with
    their proportional set size (``pss_kib``; VmRSS where smaps_rollup is unreadable)."""
    from .memory import classify
    ids = _container_ids(container_names)
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        base = "/proc/%s/" % entry
        comm = (_read(base + "comm") or "").strip()
        cgroup = _read(base + "cgroup") or ""
        container = next((name for cid, name in ids.items() if cid in cgroup), None)
        cmdline = (_read(base + "cmdline") or "")[:400].replace("\0", " ")
        process = {"pid": int(entry), "comm": comm, "cmdline": cmdline, "container": container}
        if not comm or classify(process) is None:
            continue
        fields = meminfo(_read(base + "smaps_rollup")) or {}
        if "Pss" not in fields:
            fields = {"Pss": meminfo(_read(base + "status")).get("VmRSS", 0)}
        process["pss_kib"] = fields.get("Pss", 0)
        out.append(process)
    return out


def unit_log(unit):
    """The unit's log since it last became active (this boot's when it is not active)."""
    since, dummy = _run(["systemctl", "show", "-p", "ActiveEnterTimestamp", "--value", unit])
    argv = ["journalctl", "-u", unit, "-o", "cat", "--no-pager"]
    argv += ["--since", since.strip()] if since and since.strip() else ["-b"]
    text, error = _run(argv)
    return text or "", error


def read_memory(unit="dgxspark-vllm.service", containers=("dgxspark-vllm", "dgxspark-ray"),
                facts_dir=FACTS_DIR):
    """What the memory_ledger module returns for this node (see module_utils/memory.py)."""
    from .memory import engine_figures, held_gib
    mem = meminfo(_read("/proc/meminfo"))
    cluster = read_record("cluster", facts_dir) or {}
    guard = read_record("memory_guard", facts_dir)
    text, error = unit_log(unit)
    return {
        "meminfo_kib": dict((k, mem.get(k)) for k in ("MemTotal", "MemAvailable", "SwapTotal",
                                                      "SwapFree")),
        "figures": engine_figures(text),
        "log_error": error,
        "processes": held_gib(processes(containers)),
        "guard": guard if isinstance(guard, dict) and not guard.get("error") else None,
        "last_kill": last_kill(guard),
        "host_ip": (cluster.get("fabric_env") or {}).get("VLLM_HOST_IP"),
        "executor": cluster.get("executor"),
        "ray_object_store_bytes": cluster.get("ray_object_store_bytes"),
    }


def drain(drain_swap=True, drop_caches=True, check_mode=False):
    """Move swapped pages back to RAM (when they fit) and drop the page cache, as a launch
    wants it; returns what was done and MemAvailable / swap before and after (KiB)."""
    before = meminfo(_read("/proc/meminfo"))
    done = []
    notes = []
    swap_used = before.get("SwapTotal", 0) - before.get("SwapFree", 0)
    if drain_swap and swap_used > 0:
        if swap_used < before.get("MemAvailable", 0):
            done.append("swapoff -a; swapon -a (%d MiB back in RAM)" % (swap_used // 1024))
            if not check_mode:
                for argv in (["swapoff", "-a"], ["swapon", "-a"]):
                    dummy, error = _run(argv)
                    if error:
                        raise RuntimeError("%s failed: %s" % (" ".join(argv), error))
        else:
            notes.append("swap in use (%d MiB) does not fit in MemAvailable: left as it is"
                         % (swap_used // 1024))
    if drop_caches:
        if os.access("/proc/sys/vm/drop_caches", os.W_OK):
            done.append("dropped the page cache")
            if not check_mode:
                os.sync()
                with open("/proc/sys/vm/drop_caches", "w") as handle:
                    handle.write("3\n")
        else:
            notes.append("page cache not dropped: /proc/sys/vm is read-only here")
    after = before if check_mode else meminfo(_read("/proc/meminfo"))
    return {"done": done, "notes": notes,
            "before_kib": dict((k, before.get(k)) for k in ("MemAvailable", "SwapTotal",
                                                            "SwapFree")),
            "after_kib": dict((k, after.get(k)) for k in ("MemAvailable", "SwapTotal",
                                                          "SwapFree"))}
