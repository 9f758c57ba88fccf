# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""A Spark's unified memory: the guard that keeps a node from freezing, and the ledger of
what a running cluster holds. Plain Python, standard library only.

On a Spark the GPU and the OS share 128 GB. When a model load or a long prefill takes it all
the node does not OOM-kill cleanly, it freezes or resets. The guard is earlyoom (Debian's
package) with thresholds, a preference for the engine's processes and a hook that stops the
engine's units after a kill (roles/memory_guard). Here:

* ``earlyoom_argv``: earlyoom's command line from the role's variables, every value checked
  (a mistake names the variable and the fix).
* ``engine_figures``: what vLLM itself logged about memory, per rank: "Model loading took X
  GiB", "Available KV cache memory: X GiB", the explicit budget ("reserved X GiB memory for
  KV Cache"), the CPU build's "Explicitly set (X/Y) GiB for KV cache" / "Auto set (X/Y) GiB
  ... C GiB memory was consumed by non-kv usages", and the engine's "KV cache size: N tokens".
* ``classify``: which of a node's processes are the engine's and which are Ray's own.
* ``ledgers``: per node, total, available, the engine's weights and KV cache, what Ray holds,
  the margin left above the guard's first threshold, and a warning under a floor.
"""
from __future__ import annotations

import re

from .plan.errors import InputError

KIB_PER_GIB = 1048576.0

# earlyoom 1.7 (Debian 12, Ubuntu 24.04) matches --prefer / --avoid against the process
# name (/proc/PID/comm, at most 15 characters) with POSIX extended regular expressions.
# vLLM names its processes VLLM::<role> (EngineCore, Worker_TP0, ...), the API server runs
# as `vllm`, torch's processes that set no title show as pt_main_thread, Ray's workers as
# ray::<class>.
DEFAULT_PREFER = r"^(VLLM::.*|vllm|ray::.*|pt_main_thread)$"
# What must survive: systemd (PID 1 is never a candidate; its helpers are systemd-*), ssh
# (OpenSSH also sets its own oom_score_adj to -1000, which earlyoom skips), the network,
# docker and containerd (containerd's unit sets -999, dockerd -500), the guard itself.
DEFAULT_AVOID = (r"^(systemd|systemd-.*|\(sd-pam\)|sshd|sshd-session|dockerd|containerd"
                 r"|containerd-shim|NetworkManager|wpa_supplicant|dhclient|dhcpcd"
                 r"|networkd-dispat|earlyoom|dbus-daemon|nvidia-persiste|rdma-ndd|agetty)$")


class MemoryGuardError(InputError):
    """A memory guard setting cannot be used: names the variable, the value and the fix."""


def _number(variable, value, low, high, fix, integer=True):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MemoryGuardError(variable, value, "must be a number", fix)
    if integer and int(value) != value:
        raise MemoryGuardError(variable, value, "must be a whole number", fix)
    if not low <= value <= high:
        raise MemoryGuardError(variable, value, "must be from %s to %s" % (low, high), fix)
    return int(value) if integer else float(value)


def _pair(prefix, term, kill, low, high, unit, fix):
    """A (term, kill) threshold pair; 0/0 means not used. Kill must not exceed term."""
    term = _number("%s_term_%s" % (prefix, unit), term, 0, high, fix, integer=(unit == "kib"))
    kill = _number("%s_kill_%s" % (prefix, unit), kill, 0, high, fix, integer=(unit == "kib"))
    if term == 0 and kill == 0:
        return None
    if term < low or kill < low:
        raise MemoryGuardError("%s_%s" % (prefix, unit), [term, kill],
                               "give both levels (the SIGTERM and the SIGKILL level) or "
                               "neither", fix)
    if kill > term:
        raise MemoryGuardError("%s_kill_%s" % (prefix, unit), kill,
                               "is above %s_term_%s (%s): earlyoom sends SIGTERM first, "
                               "SIGKILL only further down" % (prefix, unit, term), fix)
    return term, kill


def _regex(variable, value):
    if not isinstance(value, str) or not value:
        raise MemoryGuardError(variable, value, "must be a regular expression",
                               "give an extended regular expression over process names")
    try:
        re.compile(value)
    except re.error as exc:
        raise MemoryGuardError(variable, value, "is not a regular expression (%s)" % exc,
                               "fix the expression, e.g. %s" % DEFAULT_PREFER)
    return value


def _fmt(number):
    return ("%d" % number) if float(number) == int(number) else ("%g" % number)


def earlyoom_argv(settings, binary="/usr/bin/earlyoom"):
    """earlyoom's argv from the memory_guard role's settings (names without the
    ``memory_guard_`` prefix): ``mem_term_kib``/``mem_kill_kib`` (-M), ``mem_term_percent``/
    ``mem_kill_percent`` (-m; with both, earlyoom acts at the lower), ``swap_term_percent``/
    ``swap_kill_percent`` (-s), ``report_interval`` (-r), ``prefer``, ``avoid`` and ``hook``
    (-N, the script earlyoom runs after a kill)."""
    if not isinstance(settings, dict):
        raise MemoryGuardError("settings", settings, "must be a dict",
                               "give the memory_guard settings")
    fix_kib = "give KiB, e.g. 524288 and 102400 (eugr's -M 524288,102400), or 0 and 0"
    fix_pct = "give percent of MemTotal, e.g. 2 and 1 (a NixOS Spark setup), or 0 and 0"
    kib = _pair("memory_guard_mem", settings.get("mem_term_kib", 0),
                settings.get("mem_kill_kib", 0), 1, 2 ** 40, "kib", fix_kib)
    pct = _pair("memory_guard_mem", settings.get("mem_term_percent", 0),
                settings.get("mem_kill_percent", 0), 0.01, 99, "percent", fix_pct)
    if kib is None and pct is None:
        raise MemoryGuardError("memory_guard_mem_term_kib", 0,
                               "no memory threshold: both the KiB and the percent levels are 0",
                               fix_kib)
    swap = _pair("memory_guard_swap", settings.get("swap_term_percent", 100),
                 settings.get("swap_kill_percent", 100), 0.01, 100, "percent",
                 "give percent of SwapTotal; 100 and 100 ignore swap (eugr's -s 100)")
    interval = _number("memory_guard_report_interval", settings.get("report_interval", 60),
                       0, 86400, "give seconds between memory reports in the journal (0: none)")
    argv = [binary]
    if kib:
        argv += ["-M", "%d,%d" % kib]
    if pct:
        argv += ["-m", "%s,%s" % (_fmt(pct[0]), _fmt(pct[1]))]
    if swap:
        argv += ["-s", "%s,%s" % (_fmt(swap[0]), _fmt(swap[1]))]
    argv += ["-r", "%d" % interval]
    argv += ["--prefer", _regex("memory_guard_prefer", settings.get("prefer", DEFAULT_PREFER))]
    argv += ["--avoid", _regex("memory_guard_avoid", settings.get("avoid", DEFAULT_AVOID))]
    hook = settings.get("hook")
    if hook:
        if not isinstance(hook, str) or not hook.startswith("/"):
            raise MemoryGuardError("memory_guard_bin_dir", hook, "earlyoom runs its -N script "
                                   "only from an absolute path", "give an absolute directory")
        argv += ["-N", hook]
    return argv


def term_threshold_kib(guard, mem_total_kib):
    """The MemAvailable (KiB) under which the guard sends its first SIGTERM, from the guard's
    record (its settings), or None without a guard. With both -M and -m earlyoom takes the
    lower."""
    if not isinstance(guard, dict) or not guard.get("settings"):
        return None
    settings = guard["settings"]
    levels = []
    if settings.get("mem_term_kib"):
        levels.append(float(settings["mem_term_kib"]))
    if settings.get("mem_term_percent") and mem_total_kib:
        levels.append(float(settings["mem_term_percent"]) / 100.0 * mem_total_kib)
    return min(levels) if levels else None


# --- what the engine logged --------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# vLLM's prefix "(Worker_TP0 pid=34)", Ray's "(RayWorkerProc pid=1234, ip=10.20.2.12)"
_PREFIX = re.compile(r"^\((?P<who>[^ ()]+) pid=(?P<pid>\d+)(?:, ip=(?P<ip>[0-9.]+))?\)")
_WEIGHTS = re.compile(r"Model loading took (?P<gib>[0-9.]+) GiB")
_KV_AVAILABLE = re.compile(r"Available KV cache memory: (?P<gib>-?[0-9.]+) GiB")
_KV_RESERVED = re.compile(r"reserved (?P<gib>[0-9.]+) GiB memory for KV Cache")
_KV_CPU = re.compile(r"(?P<how>Explicitly|Auto) set \((?P<gib>[0-9.]+)/(?P<total>[0-9.]+)\) "
                     r"GiB for KV cache(?:.*?(?P<nonkv>[0-9.]+) GiB memory was consumed by "
                     r"non-kv usages)?")
_KV_TOKENS = re.compile(r"(?P<device>GPU|CPU)(?: \+ host)? KV cache size: (?P<tokens>[0-9,]+) "
                        r"tokens")


def engine_figures(log_text):
    """vLLM's own memory lines in a unit's log -> ``{"ranks": {key: figures}, "kv_tokens",
    "device"}``. A rank is keyed by its process (``ip/pid`` under Ray, ``pid`` otherwise);
    its figures: ``weights_gib``, ``kv_cache_gib`` with ``kv_source`` (``profiled``,
    ``kv_cache_memory_bytes``, ``cpu explicit``, ``cpu auto``), ``non_kv_gib`` (the CPU
    build's auto mode), ``ip`` (Ray) and ``name``. The last value of each wins (a restart
    logs again)."""
    ranks = {}
    out = {"ranks": ranks, "kv_tokens": None, "device": None}
    for raw in (log_text or "").splitlines():
        line = _ANSI.sub("", raw)
        prefix = _PREFIX.search(line)
        key = name = ip = None
        if prefix:
            ip = prefix.group("ip")
            key = ("%s/%s" % (ip, prefix.group("pid"))) if ip else prefix.group("pid")
            name = prefix.group("who")
        tokens = _KV_TOKENS.search(line)
        if tokens:
            out["kv_tokens"] = int(tokens.group("tokens").replace(",", ""))
            out["device"] = tokens.group("device")
            continue
        found = None
        for pattern, what in ((_WEIGHTS, "weights"), (_KV_AVAILABLE, "profiled"),
                              (_KV_RESERVED, "kv_cache_memory_bytes"), (_KV_CPU, "cpu")):
            match = pattern.search(line)
            if match:
                found = (what, match)
                break
        if not found:
            continue
        what, match = found
        rank = ranks.setdefault(key or "?", {"name": name, "ip": ip})
        if name and (rank.get("name") in (None, "Worker") or name.startswith("Worker_")):
            rank["name"] = name
        if what == "weights":
            rank["weights_gib"] = float(match.group("gib"))
        elif what == "cpu":
            rank["kv_cache_gib"] = float(match.group("gib"))
            rank["kv_source"] = "cpu explicit" if match.group("how") == "Explicitly" \
                else "cpu auto"
            if match.group("nonkv"):
                rank["non_kv_gib"] = float(match.group("nonkv"))
        else:
            rank["kv_cache_gib"] = float(match.group("gib"))
            rank["kv_source"] = what
    return out


# --- what the node's processes hold ------------------------------------------------------

_ENGINE_NAMES = re.compile(DEFAULT_PREFER)
_RAY_NAMES = re.compile(r"^(raylet|gcs_server|ray::IDLE.*|ray::_.*|ray)$")


def classify(process):
    """``engine``, ``ray`` or None for one process ``{comm, cmdline, container}`` of a
    node: the engine's processes are vLLM's (and the Ray workers that run its ranks), Ray's
    are its daemons and idle workers in the Ray container."""
    comm = str(process.get("comm") or "")
    cmdline = str(process.get("cmdline") or "")
    container = process.get("container")
    if _RAY_NAMES.match(comm) or "ray/_private" in cmdline or "ray/dashboard" in cmdline \
            or "ray/autoscaler" in cmdline:
        return "ray"
    if comm.startswith("ray::"):
        return "engine" if "Worker" in comm else "ray"
    if container == "dgxspark-vllm" or _ENGINE_NAMES.match(comm):
        return "engine"
    if container == "dgxspark-ray":
        return "ray"
    return None


def held_gib(processes):
    """Proportional set size (PSS) of the engine's and of Ray's processes, in GiB."""
    held = {"engine": 0, "ray": 0}
    seen = {"engine": 0, "ray": 0}
    for process in processes or []:
        kind = classify(process)
        if kind:
            held[kind] += int(process.get("pss_kib") or 0)
            seen[kind] += 1
    return dict((kind, {"gib": round(held[kind] / KIB_PER_GIB, 2), "processes": seen[kind]})
                for kind in held)


# --- the ledger ---------------------------------------------------------------------------

LAB_NOTE = ("simulated lab: the figures are the lab machine's (its memory is shared by every "
            "lab node, and the engine is vLLM's CPU build), not a Spark's")


def _gib(kib):
    return round(kib / KIB_PER_GIB, 2) if kib is not None else None


def _sum(values):
    values = [v for v in values if v is not None]
    return round(sum(values), 2) if values else None


def ledgers(nodes, reads, settings=None):
    """One ledger per node from what the memory_ledger module read on each.

    ``nodes``: the cluster's nodes (head first). ``reads``: node -> the module's result
    (``meminfo_kib``, ``figures`` (engine_figures of the node's engine log), ``processes``
    (held_gib), ``guard`` (the memory guard's record or None), ``host_ip`` (the node's
    VLLM_HOST_IP), ``executor``, ``ray_object_store_bytes``, ``last_kill``).
    ``settings``: ``floor_gib`` (warn when the margin is below it), ``lab``.
    Under Ray every rank logs through the head: a rank whose line carries ``ip=`` belongs to
    the node with that VLLM_HOST_IP."""
    settings = settings or {}
    floor = float(settings.get("floor_gib", 4))
    lab = bool(settings.get("lab"))
    by_ip = dict(((reads.get(n) or {}).get("host_ip"), n) for n in nodes)
    ranks = dict((n, []) for n in nodes)
    kv_tokens = None
    for node in nodes:
        figures = (reads.get(node) or {}).get("figures") or {}
        if figures.get("kv_tokens") is not None:
            kv_tokens = figures["kv_tokens"]
        for rank in (figures.get("ranks") or {}).values():
            owner = by_ip.get(rank.get("ip")) if rank.get("ip") else node
            ranks[owner or node].append(rank)
    out = {"nodes": {}, "warnings": [], "lab": lab, "note": LAB_NOTE if lab else "",
           "floor_gib": floor, "kv_cache_tokens": kv_tokens}
    for node in nodes:
        read = reads.get(node) or {}
        mem = read.get("meminfo_kib") or {}
        total, available = mem.get("MemTotal"), mem.get("MemAvailable")
        guard = read.get("guard")
        term = term_threshold_kib(guard, total)
        held = read.get("processes") or {}
        executor = read.get("executor")
        ray = None
        if executor == "ray":
            cap = read.get("ray_object_store_bytes")
            ray = {"object_store_cap_gib": round(cap / 1073741824.0, 2) if cap else None,
                   "processes_gib": (held.get("ray") or {}).get("gib"),
                   "processes": (held.get("ray") or {}).get("processes")}
        node_ranks = ranks.get(node) or []
        margin = None
        if available is not None:
            margin = _gib(available - (term or 0))
        entry = {
            "mem_total_gib": _gib(total),
            "mem_available_gib": _gib(available),
            "swap_used_gib": _gib((mem.get("SwapTotal") or 0) - (mem.get("SwapFree") or 0))
            if mem.get("SwapTotal") is not None else None,
            "engine": {
                "ranks": len(node_ranks),
                "weights_gib": _sum(r.get("weights_gib") for r in node_ranks),
                "kv_cache_gib": _sum(r.get("kv_cache_gib") for r in node_ranks),
                "kv_source": sorted(set(r["kv_source"] for r in node_ranks
                                        if r.get("kv_source"))),
                "non_kv_gib": _sum(r.get("non_kv_gib") for r in node_ranks),
                "processes_gib": (held.get("engine") or {}).get("gib"),
            },
            "ray": ray,
            "guard_term_gib": _gib(term),
            "margin_gib": margin,
            "last_kill": read.get("last_kill"),
        }
        if read.get("error"):
            entry["error"] = read["error"]
            out["warnings"].append("memory: %s: could not read the node (%s)"
                                   % (node, read["error"]))
        elif margin is not None and margin < floor:
            out["warnings"].append(
                "memory: %s has %.1f GiB left above %s (MemAvailable %.1f GiB), under the floor "
                "of %.1f GiB: a long prefill, a compile or a Ray object can make the guard kill "
                "the engine. Lower the engine's memory (kv_cache_memory_bytes or "
                "gpu_memory_utilization, max_num_batched_tokens) or stop what else runs there"
                "%s" % (node, margin, "the memory guard's SIGTERM level (%.1f GiB)" % (term /
                        KIB_PER_GIB) if term else "nothing (no memory guard on the node)",
                        available / KIB_PER_GIB, floor, " (%s)" % LAB_NOTE if lab else ""))
        out["nodes"][node] = entry
    return out


def _show(value, unit="GiB"):
    return "?" if value is None else "%.2f %s" % (value, unit)


def ledger_lines(ledger):
    """The ledger as report lines, one per node (then the lab's note)."""
    lines = []
    for node, entry in (ledger.get("nodes") or {}).items():
        engine = entry.get("engine") or {}
        parts = ["total %s" % _show(entry.get("mem_total_gib")),
                 "available %s" % _show(entry.get("mem_available_gib"))]
        if engine.get("ranks"):
            parts.append("engine (%d rank%s) weights %s, KV cache %s%s" % (
                engine["ranks"], "" if engine["ranks"] == 1 else "s",
                _show(engine.get("weights_gib")) if engine.get("weights_gib") is not None
                else "not logged", _show(engine.get("kv_cache_gib")),
                " (%s)" % ", ".join(engine["kv_source"]) if engine.get("kv_source") else ""))
        else:
            parts.append("engine: no memory line logged on this node")
        if engine.get("processes_gib") is not None:
            parts.append("engine processes %s" % _show(engine["processes_gib"]))
        if entry.get("ray"):
            parts.append("Ray object store cap %s, Ray processes %s" % (
                _show(entry["ray"].get("object_store_cap_gib")),
                _show(entry["ray"].get("processes_gib"))))
        parts.append("margin %s%s" % (_show(entry.get("margin_gib")),
                                      " above the guard's SIGTERM level" if
                                      entry.get("guard_term_gib") is not None else
                                      " (no memory guard)"))
        if entry.get("last_kill"):
            kill = entry["last_kill"]
            parts.append("last guard kill: %s (pid %s) at %s" % (
                kill.get("name"), kill.get("pid"), kill.get("time")))
        lines.append("memory: %s: %s" % (node, "; ".join(parts)))
    if ledger.get("kv_cache_tokens") is not None:
        lines.append("memory: the engine's KV cache holds {:,} tokens".format(
            ledger["kv_cache_tokens"]))
    if ledger.get("lab"):
        lines.append("memory: " + LAB_NOTE)
    return lines
