# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Plain-words rendering of a plan result and of the suggestion table."""
from __future__ import annotations

import json


def _fmt_int(value):
    if value is None:
        return "-"
    if isinstance(value, float) and not value.is_integer():
        return "%.2f" % value
    return "{:,}".format(int(value))


def _gib(value):
    return "-" if value is None else "%.2f GiB" % (value / 2.0 ** 30)


def render(result, title=None):
    """Lines describing one evaluated plan (the dict ``engine.evaluate`` returns)."""
    plan = result["plan"]
    lines = []
    verdict = "SATISFIABLE" if result["satisfiable"] else "NOT SATISFIABLE"
    head = title or plan.get("model_config")
    lines.append("=== %s: %s ===" % (head, verdict))
    spec = plan.get("speculative_config") or {}
    mtp = ("MTP %d" % plan["num_speculative_tokens"]) if spec else "no MTP"
    lines.append("plan: TP %d, PP %d, DCP %d, %s on %d node(s); build %s; max_model_len %s, "
                 "max_num_seqs %d, max_num_batched_tokens %d, kv %s, block %d" % (
                     plan["tensor_parallel_size"], plan["pipeline_parallel_size"],
                     plan["decode_context_parallel_size"], mtp, plan["nodes"],
                     plan["vllm_build"], _fmt_int(plan["max_model_len"]), plan["max_num_seqs"],
                     plan["max_num_batched_tokens"], plan["kv_cache_dtype"],
                     plan["block_size"]))
    model = result["model"]
    lines.append("model: %s (%s), %d layers, vocab %s, quantization %s" % (
        model["architecture"], model["model_type"], model["num_layers"],
        _fmt_int(model["vocab_size"]), model["quantization"]["method"]))

    pad = result["padding"]
    if pad["applied"]:
        served = pad["served_by"]

        def by(part):
            return " [%s]" % served[part] if part in served else ""

        lines.append("virtual heads: padded %s (the patch serving each part in brackets)"
                     % ", ".join(pad["padded"]))
        for item in pad.get("attention", []):
            if "kv_heads" in item:
                text = "  %s layers: q %d -> %d, kv %d -> %d (%d q / %d kv per rank)%s" % (
                    item["layer_type"], item["q_heads"][0], item["q_heads"][1],
                    item["kv_heads"][0], item["kv_heads"][1], item["q_per_rank"],
                    item["kv_per_rank"], by("heads"))
                if "sink_len_per_rank" in item:
                    text += ", sink vector %d per rank%s" % (item["sink_len_per_rank"],
                                                             by("sinks"))
                lines.append(text)
            else:
                lines.append("  %s heads: %d -> %d%s" % (
                    item["layer_type"], item["q_heads"][0], item["q_heads"][1], by("heads")))
        lines.append("  vocab %s -> %s%s" % (_fmt_int(pad["vocab"][0]), _fmt_int(pad["vocab"][1]),
                                             by("vocab")))
        if "moe_intermediate" in pad:
            lines.append("  MoE expert width %s -> %s%s" % (
                _fmt_int(pad["moe_intermediate"][0]), _fmt_int(pad["moe_intermediate"][1]),
                by("moe")))
        if "dense_intermediate" in pad:
            lines.append("  dense MLP width %s -> %s%s" % (
                _fmt_int(pad["dense_intermediate"][0]), _fmt_int(pad["dense_intermediate"][1]),
                by("dense")))
        if pad.get("kv_pad_bytes_per_token") is not None:
            lines.append("  pad KV heads cost %s bytes per token per rank (%.0f%% of the "
                         "full-attention KV)" % (_fmt_int(pad["kv_pad_bytes_per_token"]),
                                                 100 * (pad.get("kv_pad_fraction") or 0)))
        lines.append("  patches needed: %s" % ", ".join(pad["patches"]))
        lines.append("  vLLM gets the padding as --hf-overrides '%s'" % json.dumps(
            pad["hf_overrides"], separators=(",", ":")))
    elif pad.get("needed"):
        lines.append("virtual heads: off (this TP would need them)")

    per = result["per_rank"]
    lines.append("per rank:")
    for item in per["attention"]:
        text = "  %s x%d: %s q heads, %s kv heads" % (
            item["layer_type"], item["layers"], _fmt_int(item["q_heads"]),
            _fmt_int(item["kv_heads"]))
        if item.get("kv_replicas", 1) > 1:
            text += " (kv replicated x%d)" % item["kv_replicas"]
        if "sink_len" in item:
            text += ", sinks %s" % _fmt_int(item["sink_len"])
        lines.append(text)
    extra = ["vocab %s" % _fmt_int(per["vocab"])]
    if "moe_intermediate" in per:
        extra.append("MoE width %s" % _fmt_int(per["moe_intermediate"]))
    if "dense_intermediate" in per:
        extra.append("dense width %s" % _fmt_int(per["dense_intermediate"]))
    extra.append("layers per PP stage %s" % per["layers_per_pp_stage"])
    lines.append("  " + ", ".join(extra))

    cg = result["cudagraph"]
    if not cg["enabled"]:
        lines.append("cuda graphs: off (enforce_eager)")
    else:
        text = "cuda graphs (runner %s): capture %s" % (cg["model_runner"],
                                                        _short(cg["sizes"]) or "none")
        if cg["truncated"]:
            text += "; cap %d truncated to %d" % tuple(cg["truncated"])
        if cg["rounded_to"]:
            text += "; rounded to multiples of %d from %s" % (cg["rounded_to"],
                                                              _short(cg["config_sizes"]))
        lines.append(text)
        lines.append("  full decode graphs at %s tokens" % (_short(cg["decode_full_sizes"])
                                                            or "none"))

    kv = result["kv_cache"] or {}
    if kv.get("bytes_per_token") is not None:
        text = "kv cache: %s, %s bytes/token/GPU (full attention)" % (
            kv["cache_dtype"], _fmt_int(kv["bytes_per_token"]))
        if kv.get("sliding_window_bytes_per_request"):
            text += " + %s per request for sliding windows" % _gib(
                kv["sliding_window_bytes_per_request"])
        lines.append(text)
    if kv.get("tokens") is not None:
        lines.append("  %s of KV per GPU -> %s blocks of %d tokens x DCP %d -> %s tokens; "
                     "max concurrency at %s tokens: %.2fx; one request %s" % (
                         _gib(kv["memory_bytes"]), _fmt_int(kv["num_blocks"]), kv["block_size"],
                         kv["dcp"], _fmt_int(kv["tokens"]), _fmt_int(plan["max_model_len"]),
                         kv["max_concurrency"], "fits" if kv["fits_one_request"] else
                         "DOES NOT FIT"))
    patches = result["patches"]
    if patches["required"]:
        lines.append("image patches: needs %s; image declares %s%s" % (
            ", ".join(patches["required"]), ", ".join(patches["declared"]) or "none",
            ("; MISSING " + ", ".join(patches["missing"])) if patches["missing"] else ""))
    for item in result["violations"]:
        lines.append("VIOLATION [%s] %s" % (item["rule"], item["message"]))
        lines.append("  fix: %s" % item["fix"])
        lines.append("  from: %s" % item["source"])
    for item in result["warnings"]:
        lines.append("warning [%s] %s" % (item["rule"], item["message"]))
        lines.append("  hint: %s" % item["fix"])
    return lines


def _short(sizes, limit=12):
    if not sizes:
        return ""
    if len(sizes) <= limit:
        return "[" + ", ".join(str(s) for s in sizes) + "]"
    return "[%s, ... %s] (%d sizes)" % (", ".join(str(s) for s in sizes[:6]), sizes[-1],
                                        len(sizes))


def render_suggestions(rows, limit=None):
    """The suggestion table as text lines."""
    if not rows:
        return ["no satisfiable plan on these nodes with these options"]
    header = "%-3s %-3s %-4s %-4s %-5s %-8s %-12s %-7s %-5s %s" % (
        "TP", "PP", "DCP", "MTP", "cap", "virtual", "KV tokens", "conc.", "warn", "patches")
    lines = [header, "-" * (len(header) + 20)]
    for row in rows[:limit] if limit else rows:
        lines.append("%-3d %-3d %-4d %-4d %-5s %-8s %-12s %-7s %-5d %s" % (
            row["tensor_parallel_size"], row["pipeline_parallel_size"],
            row["decode_context_parallel_size"], row["num_speculative_tokens"],
            row["max_cudagraph_capture_size"] or "auto", "yes" if row["virtual_heads"] else "no",
            _fmt_int(row["kv_tokens"]),
            "-" if row["max_concurrency"] is None else "%.2fx" % row["max_concurrency"],
            row["warnings"], ",".join(row["patches"]) or "-"))
    return lines
