# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Evaluate a plan against a model and a vLLM build, and sweep satisfiable plans.

``evaluate(options)`` is the whole preflight: it validates the options, reads the model's
config.json, resolves the build, plans virtual-head padding, resolves CUDA-graph capture
sizes, estimates the KV cache and runs every rule. It returns a plain dict (JSON-able):
``satisfiable``, ``violations``, ``warnings``, ``padding``, ``per_rank``,
``cudagraph_capture_sizes``, ``kv_cache``, ``patches`` and the resolved ``plan``.
"""
from __future__ import annotations

from . import cudagraph, kvcache, memory
from .builds import resolve_build
from .errors import PlanInputError
from .model import parse_model, read_draft
from .padding import SERVED_BY, divisors, plan_dims, vllm_overrides
from .request import (PlanRequest, SPARK_DEFAULT_MAX_NUM_BATCHED_TOKENS,
                      SPARK_DEFAULT_MAX_NUM_SEQS)
from .rules import run_rules, v1_async_incompatibility


class Context(object):
    """Everything the rules look at, derived once."""

    def __init__(self, req, model, build):
        self.req = req
        self.model = model
        self.build = build
        self.tp = req.tensor_parallel_size
        self.pp = req.pipeline_parallel_size
        self.dcp = req.decode_context_parallel_size
        self.gpus_per_node = req.gpus_per_node
        self.nodes = req.nodes if req.nodes is not None else -(-self.tp * self.pp //
                                                               self.gpus_per_node)
        self.gpus = self.nodes * self.gpus_per_node
        self.uses_mtp = req.uses_mtp
        self.n_spec = req.num_speculative_tokens
        self.max_model_len = req.max_model_len or model.max_position_embeddings
        if not self.max_model_len:
            raise PlanInputError("max_model_len", None,
                                 "is required: the model's config.json has no "
                                 "max_position_embeddings",
                                 "set max_model_len to the context length you want to serve")
        self.max_num_seqs = req.max_num_seqs or SPARK_DEFAULT_MAX_NUM_SEQS
        if req.max_num_batched_tokens:
            self.max_num_batched_tokens = req.max_num_batched_tokens
        else:
            # vllm/engine/arg_utils.py _set_default_max_num_seqs_and_batched_tokens_args
            default = SPARK_DEFAULT_MAX_NUM_BATCHED_TOKENS
            if not req.enable_chunked_prefill:
                default = max(self.max_model_len, default)
            self.max_num_batched_tokens = min(self.max_num_seqs * self.max_model_len, default)
        self.kv_cache_dtype = kvcache.resolve_kv_cache_dtype(model, req.kv_cache_dtype)
        self.block_size = kvcache.block_size(model, req.block_size, build.default_block_size)
        self.dtype_bytes = kvcache.model_dtype_bytes(req.dtype, model.dtype)
        # vLLM's CPU platform has no CUDA graphs: plans there run eager.
        self.eager = req.enforce_eager or build.platform != "cuda"
        self.dims = plan_dims(model, build, self.tp, req.virtual_heads)
        self.image_patches = set(req.vllm_patches) | set(build.builtin_patches)
        self.draft = read_draft(req.speculative_config)
        # Some model classes set their own capture cap when the user sets neither the cap
        # nor the list (archs.CUDAGRAPH_MAX_DEFAULT); vLLM treats it as a configured cap.
        max_capture = req.max_cudagraph_capture_size
        model_cap = (model.cudagraph_max_default if max_capture is None and
                     req.cudagraph_capture_sizes is None else None)
        if model_cap:
            max_capture = model_cap
        self.capture = cudagraph.resolve(
            build,
            max_cudagraph_capture_size=max_capture,
            cudagraph_capture_sizes=req.cudagraph_capture_sizes,
            max_num_seqs=self.max_num_seqs,
            max_num_batched_tokens=self.max_num_batched_tokens,
            num_speculative_tokens=self.n_spec,
            tensor_parallel_size=self.tp,
            sequence_parallelism=req.sequence_parallelism,
            enforce_eager=self.eager)
        if model_cap:
            self.capture.truncated = None  # the model's own cap, not one the user gave
        # vllm/config/vllm.py: async scheduling is on by default; Model Runner V1 drops it
        # with some speculative methods and with pipeline parallelism.
        if req.async_scheduling is None:
            self.async_scheduling = build.async_scheduling_default and \
                v1_async_incompatibility(build, req.speculative_config, self.pp) is None
        else:
            self.async_scheduling = req.async_scheduling
        self.kv = self.estimate_kv(self.dcp)
        self.memory = self.estimate_memory()

    def estimate_memory(self):
        """Weights, runtime overhead and KV budget of one rank against a Spark's memory
        (memory.fit); None off a Spark (vLLM's CPU build, several GPUs a node)."""
        if self.build.platform != "cuda" or self.gpus_per_node != 1 or \
                not self.model.hidden_size:
            return None
        return memory.fit(self.model, self.dims, self.tp, self.pp,
                          mtp_layers=(self.model.mtp_layers if self.uses_mtp else 0),
                          max_num_batched_tokens=self.max_num_batched_tokens,
                          kv_cache_memory_bytes=self.req.kv_cache_memory_bytes)

    def estimate_kv(self, dcp):
        """The KV-cache estimate of this plan at a decode_context_parallel_size (the plan's,
        or another one a fix text considers)."""
        model = self.model
        multi_module_mtp = self.uses_mtp and min(model.mtp_layers, self.n_spec) > 1
        return kvcache.estimate(
            model, self.dims, tp=self.tp, pp=self.pp, dcp=dcp,
            kv_cache_dtype=self.kv_cache_dtype, block_size=self.block_size,
            max_model_len=self.max_model_len,
            max_num_batched_tokens=self.max_num_batched_tokens,
            kv_cache_memory_bytes=self.req.kv_cache_memory_bytes,
            mtp_layers=(model.mtp_layers if self.uses_mtp else 0),
            in_flight=kvcache.in_flight_tokens(self.max_num_batched_tokens, self.pp,
                                               self.async_scheduling, self.build.model_runner),
            extra_tokens=(self.n_spec - 1) if multi_module_mtp else 0,
            auto_bytes=self.dtype_bytes)


def _per_rank(ctx):
    model, dims, tp = ctx.model, ctx.dims, ctx.tp
    out = {"tensor_parallel_size": tp, "pipeline_parallel_size": ctx.pp,
           "decode_context_parallel_size": ctx.dcp}
    if model.use_mla:
        q = dims.mla_q_heads[1]
        out["attention"] = [{
            "layer_type": "mla", "layers": model.num_layers,
            "q_heads": q // tp if q % tp == 0 else q / float(tp),
            "kv_heads": 1, "kv_replicas": tp,
            "note": "one latent KV head (kv_lora_rank + qk_rope_head_dim), replicated on every "
                    "TP rank; DCP shards tokens instead"}]
    else:
        out["attention"] = []
        for entry in dims.attention:
            q, kv = entry["q_heads"][1], entry["kv_heads"][1]
            item = {"layer_type": entry["layer_type"], "layers": entry["layers"],
                    "q_heads": q // tp if q % tp == 0 else q / float(tp),
                    "kv_heads": max(1, kv // tp) if (kv % tp == 0 or tp % kv == 0)
                    else kv / float(tp),
                    "kv_replicas": tp // kv if kv and tp % kv == 0 and tp > kv else 1}
            if entry["sinks"]:
                item["sink_len"] = q // tp if q % tp == 0 else q / float(tp)
            out["attention"].append(item)
    vocab = dims.vocab[1]
    out["vocab"] = vocab // tp if vocab % tp == 0 else vocab / float(tp)
    if dims.moe:
        width = dims.moe[1]
        out["moe_intermediate"] = width // tp if width % tp == 0 else width / float(tp)
    if dims.dense:
        width = dims.dense[1]
        out["dense_intermediate"] = width // tp if width % tp == 0 else width / float(tp)
    out["layers_per_pp_stage"] = kvcache.pp_partition(model.num_layers, ctx.pp)
    return out


def _padding(ctx):
    dims = ctx.dims
    if not dims.applied:
        return {"applied": False, "needed": kvcache_needs_padding(ctx), "patches": []}
    parts = list(dims.padded) + (["sinks"] if "sink-padding" in dims.patches else [])
    out = {"applied": True, "padded": list(dims.padded), "patches": list(dims.patches),
           "served_by": dict((part, SERVED_BY[part]) for part in parts),
           "tensor_parallel_size": ctx.tp,
           "hf_overrides": vllm_overrides(dims, ctx.tp)}
    if dims.mla_q_heads:
        out["attention"] = [{"layer_type": "mla", "q_heads": list(dims.mla_q_heads)}]
    else:
        out["attention"] = []
        for entry in dims.attention:
            item = {"layer_type": entry["layer_type"], "q_heads": list(entry["q_heads"]),
                    "kv_heads": list(entry["kv_heads"]),
                    "q_per_rank": entry["q_heads"][1] // ctx.tp,
                    "kv_per_rank": max(1, entry["kv_heads"][1] // ctx.tp),
                    "pad_kv_heads": entry["kv_heads"][1] - entry["kv_heads"][0]}
            if entry["sinks"]:
                item["sink_len_per_rank"] = entry["q_heads"][1] // ctx.tp
            out["attention"].append(item)
    out["vocab"] = list(dims.vocab)
    if dims.moe:
        out["moe_intermediate"] = list(dims.moe)
    if dims.dense:
        out["dense_intermediate"] = list(dims.dense)
    if ctx.kv and ctx.kv.get("pad_bytes_per_token") is not None:
        out["kv_pad_bytes_per_token"] = ctx.kv["pad_bytes_per_token"]
        out["kv_pad_fraction"] = ctx.kv["pad_fraction"]
    return out


def kvcache_needs_padding(ctx):
    """Whether virtual heads would change anything at this TP (for the report)."""
    probe = plan_dims(ctx.model, ctx.build, ctx.tp, True)
    return probe.applied


def _required_patches(ctx):
    need = list(ctx.dims.patches)
    # MTP1 under DCP serves without the draft fix (rule dcp_mtp_draft_inherit warns);
    # more draft tokens need it
    if ctx.dcp > 1 and ctx.uses_mtp and ctx.n_spec > 1 and not ctx.build.draft_inherits_dcp:
        need.append("draft-dcp-inherit")
    if ctx.pp > 1 and ctx.build.platform == "cpu":
        need.append("cpu-eager-pp")
    return need


def evaluate_request(req, model, build):
    ctx = Context(req, model, build)
    findings = run_rules(ctx)
    violations = [f.as_dict() for f in findings if f.severity == "error"]
    warnings = [f.as_dict() for f in findings if f.severity == "warning"]
    needed = _required_patches(ctx)
    capture = ctx.capture
    plan = req.as_dict()
    plan.update({
        "nodes": ctx.nodes,
        "max_model_len": ctx.max_model_len,
        "max_num_seqs": ctx.max_num_seqs,
        "max_num_batched_tokens": ctx.max_num_batched_tokens,
        "block_size": ctx.block_size,
        "num_speculative_tokens": ctx.n_spec,
        "async_scheduling": ctx.async_scheduling,
        "kv_cache_dtype": ctx.kv_cache_dtype,
        "vllm_build": build.name,
    })
    return {
        "satisfiable": not violations,
        "violations": violations,
        "warnings": warnings,
        "plan": plan,
        "build": dict((k, v) for k, v in build.as_dict().items() if k != "kv_cache_dtypes"),
        "model": model.summary(),
        "padding": _padding(ctx),
        "per_rank": _per_rank(ctx),
        "cudagraph_capture_sizes": capture.sizes,
        "cudagraph": {
            "enabled": capture.enabled,
            "config_sizes": capture.config_sizes,
            "config_max": capture.config_max,
            "sizes": capture.sizes,
            "max_size": capture.max_size,
            "truncated": list(capture.truncated) if capture.truncated else None,
            "rounded_to": capture.rounded_to,
            "decode_full_sizes": capture.decode_full_sizes,
            "draft_decode_sizes": capture.draft_decode_sizes,
            "model_runner": build.model_runner,
        },
        "kv_cache": ctx.kv,
        "memory": ctx.memory,
        "patches": {
            "required": needed,
            "declared": sorted(req.vllm_patches),
            "builtin": sorted(build.builtin_patches),
            "missing": sorted(p for p in needed if p not in ctx.image_patches),
        },
    }


def evaluate(options, model=None):
    """Validate ``options`` (module/plan option names) and evaluate the plan.

    ``model`` may be a pre-parsed ModelSpec (the suggestion sweep reuses one).
    Raises PlanInputError / ModelConfigError for malformed input.
    """
    req = PlanRequest(options)
    build = resolve_build(req.vllm_build)
    if model is None:
        model = parse_model(req.model_config)
    return evaluate_request(req, model, build)


def suggest(options, max_spec_tokens=4):
    """Every satisfiable (TP, PP, DCP, MTP tokens, capture cap) plan on the given nodes.

    The sweep keeps the caller's other options (model, build, patches, KV budget,
    max_model_len, batch limits, virtual_heads) and varies TP x PP over the GPUs, DCP over
    the divisors of TP, MTP tokens over 0..``max_spec_tokens`` when the model has MTP
    layers, and the capture cap over the smallest cap that survives the build's rules.
    Each row carries its KV capacity and warnings count, best capacity first.
    """
    base = dict(options)
    req = PlanRequest(base)
    build = resolve_build(req.vllm_build)
    model = parse_model(req.model_config)
    gpus = (req.nodes or 1) * req.gpus_per_node
    spec_choices = [0]
    if model.mtp_layers:
        spec_choices += list(range(1, max_spec_tokens + 1))
    seqs = req.max_num_seqs or SPARK_DEFAULT_MAX_NUM_SEQS
    tokens = req.max_num_batched_tokens or SPARK_DEFAULT_MAX_NUM_BATCHED_TOKENS
    caps = dict((n, cudagraph.suggest_cap(build, n, seqs, tokens)) for n in spec_choices)
    rows = []
    for tp in divisors(gpus):
        pp = gpus // tp
        if pp > model.num_layers:
            continue  # a stage without layers (rule pp_layers): never a suggestion
        for dcp in divisors(tp):
            for n in spec_choices:
                trial = dict(base)
                trial.update({"tensor_parallel_size": tp, "pipeline_parallel_size": pp,
                              "decode_context_parallel_size": dcp,
                              "cudagraph_capture_sizes": None,
                              "max_cudagraph_capture_size": caps[n]})
                if n:
                    spec = dict(req.speculative_config or {})
                    spec.pop("is_mtp", None)
                    spec.update({"method": "mtp", "num_speculative_tokens": n})
                    trial["speculative_config"] = spec
                else:
                    trial["speculative_config"] = None
                result = evaluate(trial, model=model)
                if not result["satisfiable"]:
                    continue
                kv = result["kv_cache"] or {}
                rows.append({
                    "tensor_parallel_size": tp,
                    "pipeline_parallel_size": pp,
                    "decode_context_parallel_size": dcp,
                    "num_speculative_tokens": n,
                    "max_cudagraph_capture_size": caps[n],
                    "cudagraph_capture_sizes": result["cudagraph_capture_sizes"],
                    "virtual_heads": result["padding"]["applied"],
                    "patches": result["patches"]["required"],
                    "kv_tokens": kv.get("tokens"),
                    "max_concurrency": kv.get("max_concurrency"),
                    "bytes_per_token": kv.get("bytes_per_token"),
                    "warnings": len(result["warnings"]),
                })
    rows.sort(key=lambda r: (-(r["kv_tokens"] or 0), r["warnings"],
                             r["pipeline_parallel_size"], r["num_speculative_tokens"]))
    return rows
