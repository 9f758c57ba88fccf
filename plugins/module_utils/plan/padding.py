# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Virtual-head padding: the dimensions a plan runs with when TP does not divide them.

Upstream vLLM refuses a TP size that does not divide the attention heads. Virtual TP
(local-inference-lab/vllm ``vllm/config/virtual_tp.py``; tonyd2wild's
``mimo-v2-tp3-virtual-heads`` mod) rewrites the HF config to padded counts before
vLLM's checks and zero-fills the padded tails of every weight, so pad heads contribute
nothing. The padded counts must:

* keep the GQA grouping (q heads per KV head) of every layer kind, so q and KV are padded
  together; layer kinds that share a q-head count get one padded q-head count (the
  attention projections and o_proj keep one shape, as in the published MiMo mod, which
  ends with 32 q / 2 KV heads per rank on full layers and 32 q / 4 KV on SWA layers);
* satisfy vLLM's QKVParallelLinear rule for the padded KV heads (KV % TP == 0, or
  TP % KV == 0 with replicas);
* pad the vocabulary to a multiple of lcm(64, TP), the MoE expert width per rank to the
  quantization group / kernel alignment, and dense MLP widths to TP;
* give attention-sink vectors the padded per-rank head count (32, not 64 // 3 = 21).

How the padding reaches vLLM: ``vllm_overrides`` turns it into ``--hf-overrides
'{"virtual_heads": {"tensor_parallel_size": 3, "padding": {"num_attention_heads": [64, 96],
...}}}'``, the input of the shipped ``virtual-heads`` patch (vLLM pads the config fields to
these values, refusing a config whose fields differ from the checkpoint values listed, and
its weight loaders zero-fill what lies past the checkpoint's end). The vocabulary is no
config field: the patched vLLM pads it to a multiple of lcm(64, TP), as ``padded_vocab``.
Which shipped patch serves which padded part is ``SERVED_BY``.
"""
from __future__ import annotations

from .cudagraph import lcm, round_up

VOCAB_PADDING = 64  # vLLM DEFAULT_VOCAB_PADDING_SIZE (vocab_parallel_embedding.py)

# Padded part -> the image patch that makes vLLM run it (roles/vllm_image/files/patches/):
# virtual-heads pads the config and zero-fills the pad heads' q/k/v rows and o_proj columns,
# the vocabulary and the dense widths; moe-zero-fill loads the padded expert width with a
# true-zero tail; sink-padding sizes the sink vectors to the padded heads per rank.
SERVED_BY = {"heads": "virtual-heads", "vocab": "virtual-heads", "dense": "virtual-heads",
             "moe": "moe-zero-fill", "sinks": "sink-padding"}


def cdiv(a, b):
    return -(-a // b)


def divisors(n):
    """The divisors of ``n`` in ascending order (O(sqrt n))."""
    small, large = [], []
    d = 1
    while d * d <= n:
        if n % d == 0:
            small.append(d)
            if d * d != n:
                large.append(n // d)
        d += 1
    return small + large[::-1]


def gqa_ok(kv, tp):
    """vLLM QKVParallelLinear: KV heads divide over TP, or TP is a multiple of them."""
    return kv % tp == 0 or tp % kv == 0


def quant_alignment(model):
    """Per-rank alignment the checkpoint's quantization needs on split weight dims."""
    method = model.quant["method"]
    if method == "nvfp4":
        return model.quant.get("group_size") or 16
    if method == "fp8_block":
        return model.quant["block"][0]
    return 1


def moe_alignment(model, build):
    align = quant_alignment(model)
    if model.quant["method"] in ("nvfp4", "fp8_block", "fp8"):
        align = lcm(align, build.moe_kernel_alignment)
    return align


def padded_vocab(vocab, tp):
    return round_up(vocab, lcm(VOCAB_PADDING, tp))


def vocab_ok(vocab, tp):
    return round_up(vocab, VOCAB_PADDING) % tp == 0


def moe_ok(width, tp, align):
    return width % tp == 0 and (width // tp) % align == 0


def _pad_heads_group(types, tp):
    """Smallest common padded q-head count for layer kinds that share a q-head count."""
    q = types[0].q_heads
    ratios = []
    for t in types:
        if t.q_heads % t.kv_heads:
            return None  # no padding keeps a fractional grouping
        ratios.append(t.q_heads // t.kv_heads)
    step = tp
    for ratio in ratios:
        step = lcm(step, ratio)
    candidate = round_up(q, step)
    for dummy in range(64):
        if all(gqa_ok(candidate // r, tp) for r in ratios):
            return candidate
        candidate += step
    return None


def heads_need_padding(model, tp):
    if model.use_mla:
        return model.mla["q_heads"] % tp != 0
    return any(t.q_heads % tp or not gqa_ok(t.kv_heads, tp) for t in model.attention)


class Dims(object):
    """The dimensions a plan runs with (padded where virtual heads apply)."""

    def __init__(self):
        self.attention = []      # per layer kind: dict with original and effective heads
        self.mla_q_heads = None  # (original, effective)
        self.vocab = None        # (original, effective)
        self.moe = None          # (original, effective) expert width
        self.dense = None        # (original, effective) dense MLP width
        self.padded = []         # which of heads / vocab / moe / dense were padded
        self.fields = {}         # config.json field -> (original, effective), what vLLM pads
        self.unpaddable = []     # layer kinds whose grouping cannot be kept
        self.patches = []        # patch ids the padding needs

    @property
    def applied(self):
        return bool(self.padded)


def plan_dims(model, build, tp, virtual_heads):
    """Effective dims at TP ``tp``; padded only when ``virtual_heads`` and needed."""
    dims = Dims()
    pad = bool(virtual_heads)
    # Attention heads.
    if model.use_mla:
        q = model.mla["q_heads"]
        eff = round_up(q, tp) if (pad and q % tp) else q
        dims.mla_q_heads = (q, eff)
        if eff != q:
            dims.padded.append("heads")
            dims.fields["num_attention_heads"] = (q, eff)
    else:
        by_q = {}
        for t in model.attention:
            by_q.setdefault(t.q_heads, []).append(t)
        for t in model.attention:
            entry = {"layer_type": t.name, "layers": t.num_layers,
                     "q_heads": (t.q_heads, t.q_heads), "kv_heads": (t.kv_heads, t.kv_heads),
                     "head_dim": t.head_dim, "v_head_dim": t.v_head_dim,
                     "sliding_window": t.sliding_window, "sinks": t.sinks}
            dims.attention.append(entry)
        if pad and heads_need_padding(model, tp):
            for q, group in by_q.items():
                target = _pad_heads_group(group, tp)
                if target is None:
                    dims.unpaddable.extend(t.name for t in group)
                    continue
                for entry, kind in zip(dims.attention, model.attention):
                    if entry["q_heads"][0] == q:
                        ratio = q // entry["kv_heads"][0]
                        entry["q_heads"] = (q, target)
                        entry["kv_heads"] = (entry["kv_heads"][0], target // ratio)
                        dims.fields[kind.fields[0]] = entry["q_heads"]
                        dims.fields[kind.fields[1]] = entry["kv_heads"]
            if any(e["q_heads"][0] != e["q_heads"][1] for e in dims.attention):
                dims.padded.append("heads")
    # Vocabulary.
    vocab = model.vocab_size
    eff_vocab = round_up(vocab, VOCAB_PADDING)
    if pad and not vocab_ok(vocab, tp):
        eff_vocab = padded_vocab(vocab, tp)
        dims.padded.append("vocab")
    dims.vocab = (vocab, eff_vocab)
    # MoE expert width.
    if model.moe:
        width = model.moe["intermediate_size"]
        align = moe_alignment(model, build)
        eff = width
        if pad and not moe_ok(width, tp, align):
            eff = round_up(cdiv(width, tp), align) * tp
            dims.padded.append("moe")
            dims.fields[model.moe["field"]] = (width, eff)
        dims.moe = (width, eff)
    # Dense MLP width (dense layers and shared experts use column-parallel linears).
    if model.dense_intermediate_size:
        width = model.dense_intermediate_size
        align = quant_alignment(model)
        eff = width
        if pad and (width % tp or (width // tp) % align):
            eff = round_up(cdiv(width, tp), align) * tp
            dims.padded.append("dense")
            dims.fields["intermediate_size"] = (width, eff)
        dims.dense = (width, eff)
    # Patches the padding needs.
    if dims.padded:
        dims.patches.append("virtual-heads")
    if "moe" in dims.padded:
        dims.patches.append("moe-zero-fill")
    if "heads" in dims.padded and model.has_sinks:
        dims.patches.append("sink-padding")
    return dims


def vllm_overrides(dims, tp):
    """The padding as the patched vLLM takes it: ``hf_overrides`` (a dict for
    ``--hf-overrides``), or None when nothing is padded.

    ``{"virtual_heads": {"tensor_parallel_size": TP, "padding": {field: [original,
    padded]}}}`` lists every padded config.json field; the shipped ``virtual-heads`` patch
    (vllm/config/model.py ``_apply_virtual_heads``) pads them, refuses a model whose fields
    hold other values than ``original`` or a TP other than ``TP``, passes the marker on to
    the MTP draft, and pads the vocabulary to lcm(64, TP) (no field: ``padded_vocab``).
    """
    if not dims.applied:
        return None
    padding = dict((field, [pair[0], pair[1]]) for field, pair in sorted(dims.fields.items())
                   if pair[0] != pair[1])
    return {"virtual_heads": {"tensor_parallel_size": tp, "padding": padding}}
