# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Does the model fit? Weights per rank, runtime overhead and the KV budget on a Spark.

``weights_per_rank`` estimates what one rank holds after loading, from config.json alone, the
way vLLM 0.33 builds the model:

* Sharded over TP: the vocabulary-parallel ``embed_tokens`` and ``lm_head`` (vocab padded to
  64 x TP), q/kv/o projections (MLA: ``q_b_proj``, ``kv_b_proj``, ``o_proj``; GQA: the fused
  qkv with KV heads replicated when TP exceeds them, and ``o_proj``), dense MLPs, shared
  experts and every routed expert (each expert split on its intermediate width; no expert
  parallelism). Virtual heads count with their padded sizes.
* Replicated on every rank: norms, the MoE router (``gate``, BF16, plus its score bias), the
  MLA down projections (``q_a_proj``, ``kv_a_proj_with_mqa``), the DSA indexer (``wq_b``,
  ``wk`` + ``weights_proj``; only on layers with their own indexer and the MTP layer) and the
  MTP layer's ``eh_proj``. MLA layers also keep the absorbed ``W_UK``/``W_UV`` copies of
  ``kv_b_proj`` in BF16 (vllm/model_executor/layers/attention/mla_attention.py
  process_weights_after_loading).
* Pipeline parallelism splits the layers as vLLM does (``kvcache.pp_partition``); the first
  stage holds the embedding, the last the ``lm_head`` and the MTP layer; the heaviest stage
  counts.
* The MTP layer (when the plan uses MTP): a full decoder layer of the model (MLA + MoE for
  DeepSeek/GLM, MiMo's sliding-window attention + dense MLP) plus ``enorm``/``hnorm``/
  ``eh_proj``; vLLM shares the target's embedding and ``lm_head`` with the draft.
* Formats: a module is quantized unless ``quantization_config.ignore`` matches it (ModelOpt;
  fnmatch or prefix, as vLLM's ``is_layer_excluded``); a ModelOpt ``MIXED_PRECISION`` config
  names the format per module in ``quantized_layers`` (matched with the layer numbers
  generalised). NVFP4: 4-bit values + one FP8 scale per 16 values + two FP32 per-tensor
  scales per linear; MXFP8: 1 byte + one E8M0 scale per 32; FP8: 1 byte (+ FP32 scales per
  128 x 128 block for block FP8); unquantized: the model dtype (2 bytes).

``fit`` puts the weights and the runtime overhead against the node's memory and derives the
KV budget a ``gpu_memory_utilization`` leaves (and the utilization a KV budget needs).
A caller that knows the exact bytes per rank (the safetensors headers of the checkpoint on
the head) passes ``weights_bytes_per_rank`` and the config estimate is not used.
"""
from __future__ import annotations

import fnmatch
import re

from .kvcache import pp_partition
from .padding import VOCAB_PADDING, cdiv

GIB = 2 ** 30

# The one statement of a Spark's memory: what CUDA reports as the GB10's total (cudaMemGetInfo;
# unified with the OS), about 121.69 GiB (reference spark-clusters.md section 1). vLLM's
# gpu_memory_utilization is a fraction of this.
SPARK_MEMORY_BYTES = int(121.69 * GIB)

# What a rank needs besides weights and KV cache, before activations: the CUDA context and
# kernel images, cuBLAS/cuDNN workspaces, NCCL communicators and buffers (4 channels, the
# recipes' NCCL_MIN/MAX_NCHANNELS), the sampler and the CUDA-graph pool of a small capture
# list. See ``runtime_overhead``.
BASE_OVERHEAD_BYTES = int(1.5 * GIB)

# The OS, the container runtime and a pruned desktop-less host: what the node needs outside
# vLLM (a pruned Spark idles at about 119 GiB MemAvailable of 121.69).
HOST_RESERVE_BYTES = int(2.5 * GIB)

_DTYPE = {"bfloat16": 2, "float16": 2, "float32": 4}


def _model_bytes(model):
    return _DTYPE.get(model.dtype, 2)


def _norm(name):
    """A module name with its layer / expert numbers generalised (model.layers.*.mlp...)."""
    return re.sub(r"\.[0-9]+(?=\.|$)", ".*", name)


def module_format(model, name):
    """The weight format of module ``name`` (a vLLM/checkpoint module path): bf16, nvfp4,
    mxfp8, fp8 or fp8_block (remembered per model: a plan sweep asks the same names)."""
    cache = model.__dict__.setdefault("_module_formats", {})
    if name not in cache:
        cache[name] = _module_format(model, name)
    return cache[name]


def _ignore_regex(model, ignore):
    key = "_ignore_regex"
    if key not in model.__dict__:
        parts = []
        for pattern in ignore:
            pattern = str(pattern)
            parts.append(fnmatch.translate(pattern))
            parts.append(re.escape(pattern.rstrip("*")) + r"\..*\Z")
        model.__dict__[key] = re.compile("|".join(parts)) if parts else None
    return model.__dict__[key]


def _module_format(model, name):
    method = model.quant["method"]
    if method == "none":
        return "bf16"
    qc = model.quant_config or {}
    inner = qc.get("quantization") if isinstance(qc.get("quantization"), dict) else qc
    layers = inner.get("quantized_layers")
    if isinstance(layers, dict) and layers:
        table = {}
        for key, entry in layers.items():
            algo = str((entry or {}).get("quant_algo", "")).lower() if isinstance(
                entry, dict) else ""
            table[_norm(key)] = algo
        algo = table.get(_norm(name))
        if algo is None:
            # a fused module (gate_up_proj) or a sibling the abbreviated list leaves out:
            # the modules of one parent (an expert, an attention block) share a format
            parent = _norm(name).rsplit(".", 1)[0]
            for key, value in sorted(table.items()):
                if key.rsplit(".", 1)[0] == parent:
                    algo = value
                    break
        return {"nvfp4": "nvfp4", "mxfp8": "mxfp8", "fp8": "fp8"}.get(algo or "", "bf16")
    ignore = inner.get("ignore") or inner.get("exclude_modules") or []
    regex = _ignore_regex(model, ignore if isinstance(ignore, list) else [])
    if regex is not None and regex.match(name):
        return "bf16"
    if method == "nvfp4":
        return "nvfp4"
    if method == "fp8_block":
        return "fp8_block"
    if method in ("fp8", "compressed-tensors"):
        return "fp8"
    return "bf16"


def linear_bytes(fmt, rows, cols, count=1, dtype_bytes=2):
    """Bytes of ``count`` linear weights of ``rows`` x ``cols`` in format ``fmt``."""
    n = rows * cols
    if fmt == "nvfp4":
        # packed 4-bit values, an FP8 (E4M3) scale per 16, weight_scale_2 + input_scale (FP32)
        return count * (n // 2 + cdiv(n, 16) + 8)
    if fmt == "mxfp8":
        return count * (n + cdiv(n, 32))
    if fmt == "fp8":
        return count * (n + 8)
    if fmt == "fp8_block":
        return count * (n + 4 * cdiv(rows, 128) * cdiv(cols, 128))
    return count * n * dtype_bytes


class _Ledger(object):
    def __init__(self, model):
        self.model = model
        self.dtype = _model_bytes(model)
        self.parts = {}

    def add(self, part, name, rows, cols, count=1, replicated=False):
        fmt = "bf16" if replicated == "bf16" else module_format(self.model, name)
        self.parts[part] = self.parts.get(part, 0) + linear_bytes(fmt, rows, cols, count,
                                                                  self.dtype)

    def raw(self, part, elements, dtype_bytes=None):
        self.parts[part] = self.parts.get(part, 0) + elements * (dtype_bytes or self.dtype)


def _attention(led, model, dims, tp, prefix, kind, own_indexer):
    hidden = model.hidden_size
    if model.use_mla:
        mla = model.mla
        heads = dims.mla_q_heads[1] // tp
        qk = mla["qk_nope_head_dim"] + mla["qk_rope_head_dim"]
        if mla["q_lora_rank"]:
            led.add("attention (replicated)", prefix + ".self_attn.q_a_proj", mla["q_lora_rank"],
                    hidden)
            led.raw("norms (replicated)", mla["q_lora_rank"])
            led.add("attention (TP-split)", prefix + ".self_attn.q_b_proj", heads * qk,
                    mla["q_lora_rank"])
        else:
            led.add("attention (TP-split)", prefix + ".self_attn.q_proj", heads * qk, hidden)
        led.add("attention (replicated)", prefix + ".self_attn.kv_a_proj_with_mqa",
                mla["kv_lora_rank"] + mla["qk_rope_head_dim"], hidden)
        led.raw("norms (replicated)", mla["kv_lora_rank"])
        kv_b = heads * (mla["qk_nope_head_dim"] + mla["v_head_dim"])
        led.add("attention (TP-split)", prefix + ".self_attn.kv_b_proj", kv_b, mla["kv_lora_rank"])
        # the absorbed W_UK / W_UV copies, in the activation dtype
        led.raw("MLA absorbed W_UK/W_UV", kv_b * mla["kv_lora_rank"])
        led.add("attention (TP-split)", prefix + ".self_attn.o_proj", hidden,
                heads * mla["v_head_dim"])
        idx = model.indexer
        if idx and own_indexer:
            q_rank = mla["q_lora_rank"] or hidden
            led.add("DSA indexer (replicated)", prefix + ".self_attn.indexer.wq_b",
                    idx["n_heads"] * idx["head_dim"], q_rank)
            led.raw("DSA indexer (replicated)", hidden * (idx["head_dim"] + idx["n_heads"]))
            led.raw("DSA indexer (replicated)", 2 * idx["head_dim"], 4)
        return
    entry = [e for e in dims.attention if e["layer_type"] == kind][0]
    q = entry["q_heads"][1] // tp
    kv = max(1, entry["kv_heads"][1] // tp)
    head, v_head = entry["head_dim"], entry["v_head_dim"]
    led.add("attention (TP-split)", prefix + ".self_attn.qkv_proj",
            q * head + kv * head + kv * v_head, hidden)
    led.add("attention (TP-split)", prefix + ".self_attn.o_proj", hidden, q * v_head)
    if entry["sinks"]:
        led.raw("attention (TP-split)", q, 4)


def _mlp(led, model, dims, tp, prefix, moe):
    hidden = model.hidden_size
    if moe and model.moe:
        width = dims.moe[1] // tp
        experts = model.moe["experts"]
        led.add("MoE routed experts (TP-split)", prefix + ".mlp.experts.0.gate_up_proj",
                2 * width, hidden, experts)
        led.add("MoE routed experts (TP-split)", prefix + ".mlp.experts.0.down_proj", hidden,
                width, experts)
        shared = model.moe["shared_experts"]
        if shared:
            sw = model.moe["intermediate_size"] * shared // tp
            led.add("shared experts (TP-split)", prefix + ".mlp.shared_experts.gate_up_proj",
                    2 * sw, hidden)
            led.add("shared experts (TP-split)", prefix + ".mlp.shared_experts.down_proj",
                    hidden, sw)
        led.raw("MoE router (replicated)", experts * hidden, 2)
        led.raw("MoE router (replicated)", experts, 4)
        return
    width = (dims.dense[1] if dims.dense else model.dense_intermediate_size or 0) // tp
    if width:
        led.add("dense MLP (TP-split)", prefix + ".mlp.gate_up_proj", 2 * width, hidden)
        led.add("dense MLP (TP-split)", prefix + ".mlp.down_proj", hidden, width)


def _layer_kinds(model):
    """Per decoder layer: (attention kind, is MoE, has its own DSA indexer)."""
    kinds = []
    if model.use_mla:
        att = ["mla"] * model.num_layers
    else:
        att = []
        for entry in model.attention:
            att += [entry.name] * entry.num_layers
        # MiMo interleaves full and sliding-window layers; the order does not change bytes
    moe_from = model.dense_layers if model.moe else model.num_layers
    own = _own_indexer_layers(model)
    for i in range(model.num_layers):
        kinds.append((att[i], i >= moe_from, i in own))
    return kinds


def _own_indexer_layers(model):
    if not model.indexer:
        return set()
    count = model.indexer["cache_layers"]
    # which layers does not matter for the bytes; the count does
    return set(range(count))


def weights_per_rank(model, dims, tp, pp=1, mtp_layers=0):
    """Estimated weight bytes on the heaviest rank, with a breakdown (see the module doc)."""
    hidden = model.hidden_size
    vocab = cdiv(dims.vocab[1], VOCAB_PADDING * tp) * VOCAB_PADDING * tp // tp
    kinds = _layer_kinds(model)
    parts = pp_partition(model.num_layers, pp)
    stages = []
    start = 0
    for index, count in enumerate(parts):
        led = _Ledger(model)
        for i in range(start, start + count):
            att, moe, own = kinds[i]
            prefix = "model.layers.%d" % i
            _attention(led, model, dims, tp, prefix, att, own)
            _mlp(led, model, dims, tp, prefix, moe)
            led.raw("norms (replicated)", 2 * hidden)
        start += count
        if index == 0:
            led.add("embedding (TP-split)", "model.embed_tokens", vocab, hidden)
        if index == len(parts) - 1:
            if not (model.tie_word_embeddings and len(parts) == 1):
                led.add("lm_head (TP-split)", "lm_head", vocab, hidden)
            led.raw("norms (replicated)", hidden)
            for m in range(mtp_layers):
                if model.use_mla:
                    prefix = "model.layers.%d" % (model.num_layers + m)
                    _attention(led, model, dims, tp, prefix, "mla", True)
                    _mlp(led, model, dims, tp, prefix, bool(model.moe))
                else:
                    prefix = "model.mtp.layers.%d" % m
                    _attention(led, model, dims, tp, prefix, model.mtp_attention or "full",
                               False)
                    _mlp(led, model, dims, tp, prefix, False)
                led.add("MTP eh_proj + norms (replicated)", prefix + ".eh_proj", hidden,
                        2 * hidden, replicated="bf16")
                led.raw("MTP eh_proj + norms (replicated)", 5 * hidden)
        stages.append(led.parts)
    totals = [sum(p.values()) for p in stages]
    worst = max(range(len(stages)), key=lambda i: totals[i])
    return {"bytes": totals[worst], "stage": worst, "stages": totals,
            "parts": dict(sorted(stages[worst].items(), key=lambda kv: -kv[1]))}


def runtime_overhead(model, max_num_batched_tokens, tp):
    """Non-KV, non-weight memory of a rank while serving: ``BASE_OVERHEAD_BYTES`` plus the
    activation peak of one scheduler step (vLLM's profile run at ``max_num_batched_tokens``):
    hidden states, the fused-MoE workspaces (top-k x the expert width per rank, gate and up)
    and the logits of the step's sampled tokens, in the model dtype, with a factor of 4 for
    the buffers alive at once."""
    dtype = _model_bytes(model)
    hidden = model.hidden_size or 0
    width = 0
    if model.moe:
        width = model.moe["experts_per_token"] * model.moe["intermediate_size"] * 2 // tp
    elif model.dense_intermediate_size:
        width = 2 * model.dense_intermediate_size // tp
    per_token = (4 * hidden + width) * dtype
    activations = 4 * max_num_batched_tokens * per_token
    return BASE_OVERHEAD_BYTES + activations


def fit(model, dims, tp, pp=1, mtp_layers=0, max_num_batched_tokens=2048,
        gpu_memory_utilization=None, kv_cache_memory_bytes=None, weights_bytes_per_rank=None,
        node_memory_bytes=SPARK_MEMORY_BYTES, overhead_bytes=None):
    """Weights + overhead + KV against a node's memory.

    ``weights_bytes_per_rank``: exact bytes (e.g. from the checkpoint's safetensors headers);
    None estimates them from the config. Returns a dict: ``weights_bytes`` (and
    ``weights_source``: config or given), ``weights_parts``, ``overhead_bytes``,
    ``node_memory_bytes``, ``usable_bytes`` (node minus the host's reserve),
    ``fits_weights`` (weights + overhead fit the usable memory), ``kv_budget_max`` (what is
    left for KV at most), ``kv_budget_at_gmu`` (vLLM's KV budget at ``gpu_memory_utilization``:
    total x gmu - weights - overhead), ``gmu_for_kv`` (the utilization the KV budget needs),
    ``fits_kv`` (the planned KV fits beside the weights)."""
    estimate = weights_per_rank(model, dims, tp, pp, mtp_layers)
    if weights_bytes_per_rank is None:
        weights, source = estimate["bytes"], "config"
    else:
        weights, source = int(weights_bytes_per_rank), "given"
    overhead = runtime_overhead(model, max_num_batched_tokens, tp) if overhead_bytes is None \
        else int(overhead_bytes)
    usable = node_memory_bytes - HOST_RESERVE_BYTES
    out = {"weights_bytes": weights, "weights_source": source,
           "weights_estimate_bytes": estimate["bytes"], "weights_parts": estimate["parts"],
           "weights_stages": estimate["stages"], "overhead_bytes": overhead,
           "node_memory_bytes": node_memory_bytes, "host_reserve_bytes": HOST_RESERVE_BYTES,
           "usable_bytes": usable, "fits_weights": weights + overhead <= usable,
           "kv_budget_max": max(0, usable - weights - overhead),
           "gpu_memory_utilization": gpu_memory_utilization, "kv_budget_at_gmu": None,
           "kv_cache_memory_bytes": kv_cache_memory_bytes, "gmu_for_kv": None, "fits_kv": None}
    if gpu_memory_utilization is not None:
        out["kv_budget_at_gmu"] = int(node_memory_bytes * gpu_memory_utilization) - weights - \
            overhead
    if kv_cache_memory_bytes is not None:
        out["gmu_for_kv"] = round(float(weights + overhead + kv_cache_memory_bytes) /
                                  node_memory_bytes, 4)
        out["fits_kv"] = weights + overhead + kv_cache_memory_bytes <= usable
    return out
