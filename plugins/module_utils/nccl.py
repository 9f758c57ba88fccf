# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""The NCCL an image really loads, as labels (plain Python).

The vllm_image role runs ``roles/vllm_image/files/nccl_probe.py`` inside the base image with
the engine's library environment (the image's ENV with any LD_PRELOAD, the recipe's
LD_PRELOAD / LD_LIBRARY_PATH / VLLM_NCCL_SO_PATH) and labels the image with what it found:

* ``dgxspark.nccl_version``: the lowest NCCL version the engine's process loads (torch's own
  and vLLM's PyNccl; one library in the usual case), or ``none`` when it loads none (a CPU
  build, as the simulated lab's engine);
* ``dgxspark.nccl_detail``: where each came from (or why there is none), for the operator.

A mismatch shows up otherwise only as a hang or ``ibv_modify_qp`` error 110 minutes into a
boot (a pip NCCL over the system one, a baked-in LD_PRELOAD shim). Preflight judges the label
(findings/hosts.py ``nccl_gate``).
"""
from __future__ import annotations

import json

from .plan.errors import InputError

VERSION_LABEL = "dgxspark.nccl_version"
DETAIL_LABEL = "dgxspark.nccl_detail"
NONE = "none"

# The environment that decides which NCCL library a process loads: the probe runs with the
# recipe's values of these (the image's own ENV applies by itself).
LIBRARY_ENV = ("LD_PRELOAD", "LD_LIBRARY_PATH", "VLLM_NCCL_SO_PATH")


def version_text(raw):
    """``ncclGetVersion``'s code or torch's tuple -> ``"2.28.9"``; None for no version.

    NCCL >= 2.9 encodes major * 10000 + minor * 100 + patch (22809), older releases major *
    1000 + minor * 100 + patch (2804)."""
    if raw is None or isinstance(raw, bool):
        return None
    if isinstance(raw, (list, tuple)):
        if not raw or not all(isinstance(p, int) and not isinstance(p, bool) for p in raw):
            return None
        return ".".join(str(p) for p in raw)
    if isinstance(raw, int):
        if raw <= 0:
            return None
        if raw >= 10000:
            return "%d.%d.%d" % (raw // 10000, raw % 10000 // 100, raw % 100)
        return "%d.%d.%d" % (raw // 1000, raw % 1000 // 100, raw % 100)
    return None


def version_tuple(text):
    """``"2.30"`` / ``"2.30.7"`` -> (2, 30, 7); None when it is not a version."""
    parts = str(text or "").strip().split(".")
    if not parts or not all(p.isdigit() for p in parts) or len(parts) > 4:
        return None
    return tuple(int(p) for p in parts) + (0,) * (3 - min(len(parts), 3))


def probe_labels(probe):
    """The probe's JSON (text or parsed) -> the image's NCCL labels."""
    if isinstance(probe, str):
        lines = [line for line in probe.splitlines() if line.strip().startswith("{")]
        try:
            probe = json.loads(lines[-1])
        except (IndexError, ValueError):
            raise InputError("nccl_probe", probe, "printed no JSON line",
                             "run roles/vllm_image/files/nccl_probe.py with the image's "
                             "python3 and read its last line")
    if not isinstance(probe, dict):
        raise InputError("nccl_probe", probe, "must be the probe's JSON object",
                         "give the probe's output")
    found = []
    torch_version = version_text(probe.get("torch"))
    vllm_version = version_text(probe.get("vllm"))
    if torch_version:
        found.append((version_tuple(torch_version), torch_version,
                      "torch %s" % torch_version))
    if vllm_version:
        found.append((version_tuple(vllm_version), vllm_version, "vLLM PyNccl %s (%s)" % (
            vllm_version, probe.get("vllm_library") or "libnccl.so.2")))
    details = [what for dummy, dummy, what in found]
    if not found:
        details.append("no NCCL: torch %s; vLLM PyNccl %s" % (
            probe.get("torch_error") or "reports none",
            probe.get("vllm_error") or "reports none"))
    if probe.get("loaded"):
        details.append("loaded %s" % ", ".join(probe["loaded"]))
    if probe.get("ld_preload"):
        details.append("LD_PRELOAD=%s" % probe["ld_preload"])
    if probe.get("vllm_nccl_so_path"):
        details.append("VLLM_NCCL_SO_PATH=%s" % probe["vllm_nccl_so_path"])
    if torch_version and vllm_version and torch_version != vllm_version:
        details.append("torch and vLLM load different NCCL versions")
    lowest = min(found)[1] if found else NONE
    detail = "; ".join(details).replace("\n", " ")
    return {VERSION_LABEL: lowest, DETAIL_LABEL: detail[:1000]}
