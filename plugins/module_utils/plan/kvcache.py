# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""KV-cache size and capacity, computed the way vLLM 0.33 sizes its cache.

Per layer and token (vllm/v1/kv_cache_interface.py, mla_attention.py):

* GQA/MQA: ``kv_heads_per_rank * (head_dim + v_head_dim) * dtype_bytes``; NVFP4 KV stores
  ``head // 2 + head // 16`` bytes per K and per V head; ``*_per_token_head`` dtypes add
  one fp32 scale per token and head for K and for V.
* MLA: one latent head of ``kv_lora_rank + qk_rope_head_dim`` (576) elements replicated
  on every TP rank; ``fp8_ds_mla`` packs it in 656 bytes (512 fp8 + 16 scale bytes + 64
  bf16 RoPE), ``nvfp4_ds_mla`` in 352. DeepSeek-V3.2 / GLM-5 sparse MLA layers store the
  cache as ``fp8_ds_mla`` for ``auto``/``fp8``/``fp8_e4m3`` (the GB10 sparse backend
  canonicalises them). DSA indexer caches add ``index_head_dim + index_head_dim // 128 * 4``
  bytes (132) on each layer that runs its own indexer and on the MTP layer.
* Sliding-window layers hold at most ``cdiv(min(window - 1 + extra + in_flight,
  max_model_len), block) + 1`` blocks per request, where ``in_flight`` is
  ``max_num_batched_tokens`` times the batches in flight (2 with async scheduling at PP 1,
  PP + 1 on Model Runner V2 with PP, else PP) and ``extra`` is ``N - 1`` for multi-module MTP.

Capacity (vllm/v1/core/kv_cache_planning.py, kv_cache_utils.py): layers are put in KV-cache
groups (one group when every layer is full attention; for hybrid models pages are unified
by scaling block sizes and layers are split into groups of ``min layers per type``);
``num_blocks = memory // bytes_per_block`` with bytes_per_block the largest group's
pages; a request at ``max_model_len`` needs ``cdiv(max_memory_usage, page)`` blocks per
group (full attention over ``block_size * dcp`` tokens per block), and it fits when the
memory holds those blocks plus the null block;
``max_concurrency = num_blocks / blocks_per_request`` and the logged token count is
``int(max_concurrency * max_model_len)``.
"""
from __future__ import annotations

from .archs import KV_CACHE_DTYPE_ALIASES
from .padding import cdiv

SPARSE_MLA_BLOCK = 64   # FLASHMLA_SPARSE / FlashInfer sparse MLA / DSA indexer kernels
DEFAULT_BLOCK = 16      # CacheConfig.DEFAULT_BLOCK_SIZE

_ELEMENT_BYTES = {"auto": 2, "bfloat16": 2, "float16": 2, "fp8": 1, "fp8_e4m3": 1,
                  "fp8_e5m2": 1, "fp8_inc": 1}
_SPARSE_MLA_CANONICAL = ("auto", "fp8", "fp8_e4m3", "fp8_ds_mla")


def block_size(model, requested, default=DEFAULT_BLOCK):
    """The block size vLLM ends up with (explicit, or the backend's preference; ``default``
    is the platform's, 16 on CUDA and 128 on vLLM's CPU build)."""
    if requested:
        return requested
    if model.use_mla and model.indexer:
        return SPARSE_MLA_BLOCK
    return default


_DTYPE_BYTES = {"float32": 4, "float": 4, "bfloat16": 2, "float16": 2, "half": 2}


def model_dtype_bytes(dtype, config_dtype=None):
    """Bytes per element of the dtype vLLM runs the model in (``--dtype``). ``auto`` takes the
    checkpoint's ``torch_dtype`` (16-bit for the models a Spark serves) and downcasts float32
    checkpoints to the platform's preferred 16-bit type (vllm/config/model.py
    ``_resolve_auto_dtype``), so it is always 2 bytes; only an explicit float32 is 4."""
    if dtype and dtype != "auto":
        return _DTYPE_BYTES[dtype]
    return 2


def resolve_kv_cache_dtype(model, requested):
    """The kv_cache_dtype vLLM 0.33 validates and sizes with, for the requested one.

    ``auto`` becomes the KV format a ModelOpt checkpoint declares
    (vllm/engine/arg_utils.py create_engine_config -> resolve_kv_cache_dtype_string); then
    some model classes rename a dtype (archs.KV_CACHE_DTYPE_ALIASES, applied later by
    vLLM, so a renamed dtype is not resolved again).
    """
    dtype = requested
    if dtype == "auto" and model.auto_kv_cache_dtype:
        dtype = model.auto_kv_cache_dtype
    return KV_CACHE_DTYPE_ALIASES.get(model.architecture, {}).get(dtype, dtype)


def cache_dtype(model, kv_cache_dtype):
    """The storage format the attention layers use for ``kv_cache_dtype``."""
    if model.use_mla and model.indexer and kv_cache_dtype in _SPARSE_MLA_CANONICAL:
        return "fp8_ds_mla"
    return kv_cache_dtype


def pp_partition(num_layers, pp):
    """Layers per pipeline stage (vllm/distributed/utils.py get_pp_indices)."""
    per = num_layers // pp
    parts = [per] * pp
    for i in range(2, num_layers % pp + 2):
        parts[-i] += 1
    return parts


def _mla_bytes(model, dtype, auto_bytes=2):
    if dtype == "fp8_ds_mla":
        return 656
    if dtype == "nvfp4_ds_mla":
        return 352
    elem = auto_bytes if dtype == "auto" else _ELEMENT_BYTES.get(dtype)
    if elem is None:
        return None
    return (model.mla["kv_lora_rank"] + model.mla["qk_rope_head_dim"]) * elem


def _head_bytes(head, dtype, auto_bytes=2):
    """Bytes of one head of one token for K or V (``auto``: the model dtype's bytes)."""
    if dtype in ("nvfp4", "nvfp4_4over6"):
        return head // 2 + head // 16
    if dtype in ("int8_per_token_head", "fp8_per_token_head"):
        return head + 4
    if dtype == "int4_per_token_head":
        return head // 2 + 4
    elem = auto_bytes if dtype == "auto" else _ELEMENT_BYTES.get(dtype)
    if elem is None:
        return None
    return head * elem


def _gqa_bytes(kv_heads_rank, head_dim, v_head_dim, dtype, auto_bytes=2):
    k = _head_bytes(head_dim, dtype, auto_bytes)
    v = _head_bytes(v_head_dim, dtype, auto_bytes)
    if k is None or v is None:
        return None
    return kv_heads_rank * (k + v)


def _kv_heads_rank(kv, tp):
    return max(1, kv // tp)


def apportion(total, parts):
    """Split ``total`` layers of one kind over stages of ``parts`` layers in proportion, whole
    numbers that add up to ``total`` (largest remainder; ties to the earlier stage, where an
    interleaved pattern's first layer sits)."""
    layers = sum(parts)
    shares = [total * count for count in parts]
    out = [share // layers for share in shares]
    order = sorted(range(len(parts)), key=lambda i: (-(shares[i] % layers), i))
    for i in order[:total - sum(out)]:
        out[i] += 1
    return out


def _stage_layers(model, pp, mtp_layers):
    """Layer counts per kind on each pipeline stage (the MTP layers sit last); each kind's
    layers add up to the model's over the stages."""
    parts = pp_partition(model.num_layers, pp)
    stages = [{} for dummy in parts]
    if model.use_mla:
        kinds = [("mla", model.num_layers)]
        if model.indexer:
            kinds.append(("indexer", model.indexer["cache_layers"]))
    else:
        kinds = [(t.name, t.num_layers) for t in model.attention]
    for name, total in kinds:
        for stage, count in zip(stages, apportion(total, parts)):
            stage[name] = count
    if mtp_layers:
        last = stages[-1]
        if model.use_mla:
            last["mla"] += mtp_layers
            if model.indexer:
                last["indexer"] += mtp_layers
        else:
            last[model.mtp_attention] = last.get(model.mtp_attention, 0) + mtp_layers
    return stages


def in_flight_tokens(max_num_batched_tokens, pp, async_scheduling, model_runner):
    """vllm/config/vllm.py max_in_flight_tokens: batches in flight x batched tokens."""
    if pp == 1:
        batches = 2 if async_scheduling else 1
    else:
        batches = pp + 1 if model_runner == "v2" else pp
    return batches * max_num_batched_tokens


def estimate(model, dims, tp, pp, dcp, kv_cache_dtype, block_size, max_model_len,
             max_num_batched_tokens, kv_cache_memory_bytes, mtp_layers, in_flight=None,
             extra_tokens=0, auto_bytes=2):
    """KV-cache figures for one GPU (the most loaded pipeline stage).

    ``in_flight`` is the scheduler's in-flight token bound (``in_flight_tokens``); it bounds
    the sliding-window layers' blocks per request (default: ``max_num_batched_tokens``).
    ``auto_bytes`` is the element size of the ``auto`` KV dtype (the model dtype's).
    """
    if in_flight is None:
        in_flight = max_num_batched_tokens
    window_extra = in_flight + extra_tokens
    dtype = cache_dtype(model, kv_cache_dtype)
    out = {"cache_dtype": dtype, "block_size": block_size, "dcp": dcp,
           "memory_bytes": kv_cache_memory_bytes, "bytes_per_token": None, "tokens": None,
           "max_concurrency": None, "num_blocks": None, "fits_one_request": None,
           "groups": [], "unknown_dtype": False, "pad_bytes_per_token": None,
           "pad_fraction": None}
    stages = _stage_layers(model, pp, mtp_layers)

    # Per-token bytes of each layer kind on one rank, and layer specs.
    specs = []  # (kind, layers, bytes per token per layer, window)
    pad_bytes = 0
    worst = None
    for kinds in stages:
        stage_specs = []
        if model.use_mla:
            per = _mla_bytes(model, dtype, auto_bytes)
            if not per or per < 0:
                out["unknown_dtype"] = True
                return out
            stage_specs.append(("mla", kinds["mla"], per, None))
            if model.indexer and kinds.get("indexer"):
                head = model.indexer["head_dim"]
                stage_specs.append(("indexer", kinds["indexer"], head + head // 128 * 4, None))
        else:
            for entry in dims.attention:
                count = kinds.get(entry["layer_type"], 0)
                if not count:
                    continue
                kv_rank = _kv_heads_rank(entry["kv_heads"][1], tp)
                per = _gqa_bytes(kv_rank, entry["head_dim"], entry["v_head_dim"], dtype,
                                 auto_bytes)
                if not per or per < 0:  # no size model (or none for such small heads)
                    out["unknown_dtype"] = True
                    return out
                stage_specs.append((entry["layer_type"], count, per, entry["sliding_window"]))
        full = sum(c * b for dummy, c, b, w in stage_specs if not w)
        if stage_specs and (worst is None or full > sum(c * b for dummy, c, b, w in worst if not w)):
            worst = stage_specs
    if not worst:
        # More pipeline stages than layers (rule pp_layers): no stage to size.
        return out
    specs = worst

    # Extra bytes the pad KV heads cost (virtual heads), per token on the average rank.
    if not model.use_mla and any(e["kv_heads"][0] != e["kv_heads"][1] for e in dims.attention):
        total = 0
        for entry in dims.attention:
            kind = [s for s in specs if s[0] == entry["layer_type"]]
            if not kind or kind[0][3]:
                continue  # sliding-window layers are bounded per request, counted below
            layers = kind[0][1]
            unit = _gqa_bytes(1, entry["head_dim"], entry["v_head_dim"], dtype, auto_bytes)
            pad_heads = entry["kv_heads"][1] - entry["kv_heads"][0]
            pad_bytes += layers * unit * pad_heads / float(tp)
            total += layers * unit * entry["kv_heads"][1] / float(tp)
        out["pad_bytes_per_token"] = int(round(pad_bytes))
        out["pad_fraction"] = round(pad_bytes / total, 4) if total else None

    full_per_token = sum(c * b for dummy, c, b, w in specs if not w)
    out["bytes_per_token"] = full_per_token
    swa_per_request = 0
    for kind, count, per, window in specs:
        if window:
            tokens = min(window - 1 + window_extra, max_model_len)
            swa_per_request += count * (cdiv(tokens, block_size) + 1) * block_size * per
    out["sliding_window_bytes_per_request"] = swa_per_request

    groups = _groups(specs, block_size, dcp, max_model_len, window_extra)
    out["groups"] = [dict(g) for g in groups]
    bytes_per_block = max(g["bytes_per_block"] for g in groups)
    blocks_per_request = sum(g["blocks_per_request"] for g in groups)
    out["bytes_per_block"] = bytes_per_block
    out["blocks_per_request"] = blocks_per_request
    out["bytes_one_request"] = bytes_per_block * (blocks_per_request + 1)
    if kv_cache_memory_bytes is None:
        return out
    num_blocks = kv_cache_memory_bytes // bytes_per_block
    concurrency = float(num_blocks) / blocks_per_request
    out["num_blocks"] = num_blocks
    out["max_concurrency"] = round(concurrency, 4)
    out["tokens"] = int(concurrency * max_model_len)
    # kv_cache_planning._check_enough_kv_cache_memory: the null block is not usable
    out["fits_one_request"] = kv_cache_memory_bytes - bytes_per_block >= \
        bytes_per_block * blocks_per_request
    out["bytes_one_request"] = bytes_per_block * (blocks_per_request + 1)
    # Longest context one request could have with this memory (for the fix hint).
    per_token_full = sum(g["bytes_per_token"] for g in groups if not g["window"])
    fixed = sum(g["bytes_one_request"] for g in groups if g["window"])
    if per_token_full:
        out["max_model_len_fit"] = max(0, int((kv_cache_memory_bytes - fixed) * dcp //
                                              per_token_full))
    else:
        out["max_model_len_fit"] = max_model_len
    return out


def _groups(specs, block_size, dcp, max_model_len, window_extra):
    """vLLM's KV-cache groups for the layer specs of one rank."""
    windows = set(w for dummy, dummy, dummy, w in specs)
    if len(windows) == 1:
        # One group (uniform spec or UniformTypeKVCacheSpecs: same token slots per layer).
        window = specs[0][3]
        per_token = sum(c * b for dummy, c, b, dummy in specs)
        page = block_size * per_token
        blocks = _blocks_per_request(window, block_size, dcp, max_model_len, window_extra)
        return [{"kinds": [s[0] for s in specs], "layers": sum(s[1] for s in specs),
                 "window": window, "block_size": block_size, "bytes_per_token": per_token,
                 "bytes_per_block": page, "blocks_per_request": blocks,
                 "bytes_one_request": blocks * page}]
    # Hybrid: unify page sizes by scaling block sizes, then equal-size groups.
    pages = dict((kind, per * block_size) for kind, dummy, per, dummy in specs)
    top = max(pages.values())
    counts = [c for dummy, c, dummy, dummy in specs]
    group_size = min(counts)
    if max(counts) < group_size * 1.5:
        group_size = max(counts)
    groups = []
    for kind, count, per, window in specs:
        ratio = top // pages[kind] if top % pages[kind] == 0 else 1
        kind_block = block_size * ratio
        blocks = _blocks_per_request(window, kind_block, dcp, max_model_len, window_extra)
        n_groups = cdiv(count, group_size)
        page = per * kind_block if top % pages[kind] == 0 else top
        groups.append({"kinds": [kind], "layers": count, "groups": n_groups,
                       "window": window, "block_size": kind_block,
                       "bytes_per_token": count * per,
                       "bytes_per_block": group_size * page,
                       "blocks_per_request": blocks * n_groups,
                       "bytes_one_request": blocks * page * count})
    return groups


def _blocks_per_request(window, block, dcp, max_model_len, window_extra):
    if window:
        tokens = min(window - 1 + window_extra, max_model_len)
        return cdiv(tokens, block) + 1
    return cdiv(max_model_len, block * dcp)
