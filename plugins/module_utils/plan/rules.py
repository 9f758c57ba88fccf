# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""vLLM's launch-time rules, one named rule each.

Every rule states what vLLM checks, cites where (file and function in vLLM 0.33.0 unless
the rule says otherwise), and returns findings: an ``error`` makes the plan
unsatisfiable, a ``warning`` is reported but does not. Each finding carries the message
(what is wrong, with the numbers), the fix (what to change) and the source.

Rules judge the plan's effective dimensions: with ``virtual_heads`` the padded ones, and
the padding then shows up as patches the image must declare.
"""
from __future__ import annotations

from . import archs
from .cudagraph import round_up
from .padding import VOCAB_PADDING, divisors, gqa_ok, moe_alignment, quant_alignment
from .patches import PATCHES


class Finding(object):
    __slots__ = ("rule", "severity", "message", "fix", "source", "stage")

    def __init__(self, rule, severity, message, fix, source, stage):
        self.rule = rule
        self.severity = severity
        self.message = message
        self.fix = fix
        self.source = source
        self.stage = stage

    def as_dict(self):
        return {"rule": self.rule, "severity": self.severity, "message": self.message,
                "fix": self.fix, "source": self.source, "stage": self.stage}


# Where vLLM applies a rule, so a verdict can be compared stage by stage with vLLM's own.
STAGES = {
    "config": "vLLM `create_engine_config()` (EngineArgs and the config classes, before any "
              "process starts)",
    "runner": "model-runner start-up (CUDA-graph mode and capture sizes)",
    "worker": "on the GPU worker: model build, weight loading, kernels, KV-cache memory",
    "plan": "this planner's own check (patches, inputs it needs), not a vLLM rule",
}


class Rule(object):
    def __init__(self, rule_id, stage, title, source, check):
        if stage not in STAGES:
            raise ValueError("rule %s: unknown stage %r" % (rule_id, stage))
        self.id = rule_id
        self.stage = stage
        self.title = title
        self.source = source
        self.check = check

    def run(self, ctx):
        out = []
        for item in self.check(ctx) or ():
            severity, message, fix = item
            out.append(Finding(self.id, severity, message, fix, self.source, self.stage))
        return out


RULES = []


def rule(rule_id, stage, title, source):
    def register(fn):
        RULES.append(Rule(rule_id, stage, title, source, fn))
        return fn
    return register


def _error(message, fix):
    return ("error", message, fix)


def _warning(message, fix):
    return ("warning", message, fix)


# --- cluster shape ---------------------------------------------------------------------

@rule("world_size", "config", "TP x PP ranks fit the cluster's GPUs",
      "vllm/config/parallel.py ParallelConfig (world_size = pp * tp; Ray places one rank per GPU)")
def _world_size(ctx):
    need = ctx.tp * ctx.pp
    have = ctx.gpus
    if need > have:
        yield _error(
            "tensor_parallel_size %d x pipeline_parallel_size %d needs %d GPUs, but nodes %d x "
            "gpus_per_node %d gives %d" % (ctx.tp, ctx.pp, need, ctx.nodes, ctx.gpus_per_node,
                                           have),
            "lower tensor_parallel_size or pipeline_parallel_size so that their product is at "
            "most %d, or add Sparks (nodes)" % have)
    elif need < have:
        yield _warning(
            "the plan uses %d of %d GPUs; %d Spark(s) would stay idle" % (need, have, have - need),
            "use tensor_parallel_size x pipeline_parallel_size = %d to use every node" % have)


@rule("executor_platform", "config", "The platform runs the chosen distributed executor",
      "vllm/platforms/cpu.py CpuPlatform.check_and_update_config (the CPU platform refuses "
      "Ray); vllm/config/parallel.py DistributedExecutorBackend")
def _executor(ctx):
    backend = ctx.req.distributed_executor_backend
    if backend and backend in ("mp", "ray") and backend not in ctx.build.executors:
        yield _error(
            "distributed_executor_backend %s: build %s (platform %s) does not run it (vLLM: "
            "current platform %s does not support %s.)" % (backend, ctx.build.name,
                                                           ctx.build.platform,
                                                           ctx.build.platform, backend),
            "use distributed_executor_backend: %s" % " or ".join(ctx.build.executors))


@rule("mp_multi_node", "worker", "vLLM's multi-node mp launch splits the ranks evenly over the nodes",
      "vllm/v1/executor/multiproc_executor.py MultiprocExecutor._get_parallel_sizes (world "
      "size divisible by nnodes); vllm/config/parallel.py local_world_size")
def _mp_nodes(ctx):
    if ctx.req.distributed_executor_backend != "mp" or ctx.nodes < 2:
        return
    world = ctx.tp * ctx.pp
    if world % ctx.nodes:
        yield _error(
            "global world_size (%d = tensor_parallel_size %d x pipeline_parallel_size %d) must "
            "be divisible by nnodes (%d): the mp launch starts world_size / nnodes ranks on "
            "every node" % (world, ctx.tp, ctx.pp, ctx.nodes),
            "use tensor_parallel_size x pipeline_parallel_size = %d (one rank per Spark), or "
            "set nodes to a divisor of %d" % (ctx.nodes * ctx.gpus_per_node, world))
    elif world // ctx.nodes > ctx.gpus_per_node:
        yield _error(
            "the mp launch puts %d ranks on each of the %d nodes, but a node has "
            "gpus_per_node %d" % (world // ctx.nodes, ctx.nodes, ctx.gpus_per_node),
            "lower tensor_parallel_size x pipeline_parallel_size to %d"
            % (ctx.nodes * ctx.gpus_per_node))


# --- tensor parallelism ----------------------------------------------------------------

@rule("attention_heads_tp", "config", "Attention (query) heads divide over TP",
      "vllm/config/model.py ModelConfig.verify_with_parallel_config; "
      "vllm/model_executor/layers/linear.py QKVParallelLinear (divide)")
def _attention_heads(ctx):
    hint = ("set virtual_heads: true (pads the heads; needs the virtual-heads patch), or use a "
            "tensor_parallel_size that divides %d")
    if ctx.model.use_mla:
        q = ctx.dims.mla_q_heads[1]
        if q % ctx.tp:
            yield _error(
                "Total number of attention heads (%d) must be divisible by tensor parallel size "
                "(%d)." % (q, ctx.tp), hint % q)
        return
    for entry in ctx.dims.attention:
        q = entry["q_heads"][1]
        if q % ctx.tp:
            yield _error(
                "%s-attention layers: %d query heads are not divisible by tensor_parallel_size "
                "%d (vLLM: Total number of attention heads (%d) must be divisible by tensor "
                "parallel size (%d).)" % (entry["layer_type"], q, ctx.tp, q, ctx.tp), hint % q)


@rule("kv_heads_tp", "worker",
      "KV heads divide over TP, or TP is a multiple of them (every layer type)",
      "vllm/model_executor/layers/linear.py QKVParallelLinear: divide(total_num_kv_heads, tp) "
      "or divide(tp, total_num_kv_heads)")
def _kv_heads(ctx):
    for entry in ctx.dims.attention:
        kv = entry["kv_heads"][1]
        if not gqa_ok(kv, ctx.tp):
            yield _error(
                "%s-attention layers: %d KV heads and tensor_parallel_size %d: neither divides "
                "the other (vLLM asserts '%d is not divisible by %d' while building the model)"
                % (entry["layer_type"], kv, ctx.tp, kv, ctx.tp),
                "use a tensor_parallel_size that divides %d or is a multiple of it, or set "
                "virtual_heads: true to pad KV heads with the q heads" % kv)


@rule("gqa_group_per_rank", "worker",
      "Query heads per rank are a multiple of KV heads per rank (every layer type)",
      "vllm/model_executor/layers/attention/attention.py Attention.__init__ (assert num_heads "
      "% num_kv_heads == 0, per rank)")
def _gqa_group(ctx):
    for entry in ctx.dims.attention:
        q, kv = entry["q_heads"][1], entry["kv_heads"][1]
        if entry["layer_type"] in ctx.dims.unpaddable or q % ctx.tp or not gqa_ok(kv, ctx.tp):
            continue  # virtual_heads_grouping, attention_heads_tp or kv_heads_tp says why
        q_rank, kv_rank = q // ctx.tp, max(1, kv // ctx.tp)
        if q_rank % kv_rank:
            yield _error(
                "%s-attention layers: %d query heads per rank are not a multiple of %d KV heads "
                "per rank (vLLM asserts 'num_heads (%d) is not divisible by num_kv_heads (%d)' "
                "while building the model)" % (entry["layer_type"], q_rank, kv_rank, q_rank,
                                               kv_rank),
                "no tensor_parallel_size helps: %d query heads do not group over %d KV heads; "
                "use a checkpoint whose num_attention_heads is a multiple of its "
                "num_key_value_heads" % (q, kv))


@rule("vocab_tp", "worker", "Padded vocabulary divides over TP",
      "vllm/model_executor/layers/vocab_parallel_embedding.py pad_vocab_size (64) and "
      "vocab_range_from_global_vocab_size (divide)")
def _vocab(ctx):
    vocab = ctx.dims.vocab[1]
    padded = round_up(vocab, VOCAB_PADDING)
    if padded % ctx.tp:
        yield _error(
            "vocabulary %d pads to %d (a multiple of 64), which is not divisible by "
            "tensor_parallel_size %d ('%d is not divisible by %d')"
            % (ctx.model.vocab_size, padded, ctx.tp, padded, ctx.tp),
            "set virtual_heads: true (pads the vocabulary to a multiple of lcm(64, TP) = %d), "
            "or use a tensor_parallel_size that divides %d" % (round_up(vocab, _lcm64(ctx.tp)),
                                                               padded))


def _gcd(a, b):
    while b:
        a, b = b, a % b
    return a


def _lcm64(tp):
    a, b = VOCAB_PADDING, tp
    while b:
        a, b = b, a % b
    return VOCAB_PADDING * tp // a


@rule("moe_width_tp", "worker",
      "MoE expert width per rank fits TP, the quantization block and the kernels",
      "vllm/model_executor/layers/fused_moe/layer.py FusedMoE (intermediate_size % tp); "
      "quantization/modelopt.py NVFP4 group 16 / quantization/fp8.py block_n 128; FlashInfer "
      "TRTLLM MoE (intermediate_size % 128)")
def _moe(ctx):
    moe = ctx.model.moe
    if not moe:
        return
    if moe["experts"] < ctx.tp:
        yield _error(
            "tensor_parallel_size %d is greater than the number of experts %d"
            % (ctx.tp, moe["experts"]), "use at most %d ranks for this MoE" % moe["experts"])
    width = ctx.dims.moe[1]
    if width % ctx.tp:
        yield _error(
            "MoE expert width %d is not divisible by tensor_parallel_size %d (FusedMoE asserts "
            "intermediate_size %% tp_size == 0)" % (width, ctx.tp),
            "set virtual_heads: true (zero-pads the expert width; needs the moe-zero-fill patch) "
            "or use a tensor_parallel_size that divides %d" % width)
        return
    per_rank = width // ctx.tp
    qalign = quant_alignment(ctx.model)
    if per_rank % qalign and ctx.model.quant["method"] == "fp8_block" and \
            ctx.build.fp8_moe_block_refine and _gcd(per_rank, qalign) >= 32:
        yield _warning(
            "MoE expert width per rank %d is not a multiple of the FP8 block %d: build %s refines "
            "the scale blocks to %d (Triton MoE kernels only)" % (
                per_rank, qalign, ctx.build.name, _gcd(per_rank, qalign)),
            "prefer a tensor_parallel_size that keeps %d / TP a multiple of %d, or expert "
            "parallelism" % (width, qalign))
        return
    if per_rank % qalign:
        yield _error(
            "MoE expert width per rank %d (= %d / %d) is not a multiple of the %s quantization "
            "block %d" % (per_rank, width, ctx.tp, ctx.model.quant["method"], qalign),
            "use a tensor_parallel_size that keeps %d / TP a multiple of %d, or enable expert "
            "parallelism" % (width, qalign))
        return
    kalign = moe_alignment(ctx.model, ctx.build)
    if per_rank % kalign:
        yield _error(
            "MoE expert width per rank %d is not a multiple of %d, which the fused-MoE kernels "
            "of build %s need" % (per_rank, kalign, ctx.build.name),
            "use a tensor_parallel_size that keeps %d / TP a multiple of %d, or set "
            "virtual_heads: true to pad it" % (width, kalign))


@rule("dense_mlp_tp", "worker", "Dense MLP / shared-expert width divides over TP",
      "vllm/model_executor/layers/linear.py MergedColumnParallelLinear (divide); "
      "quantization/fp8.py validate_fp8_block_shape")
def _dense(ctx):
    if not ctx.dims.dense:
        return
    width = ctx.dims.dense[1]
    if width % ctx.tp:
        yield _error(
            "dense MLP width %d is not divisible by tensor_parallel_size %d" % (width, ctx.tp),
            "set virtual_heads: true (pads the dense width) or use a tensor_parallel_size that "
            "divides %d" % width)
        return
    if ctx.model.quant["method"] == "fp8_block":
        block = ctx.model.quant["block"][0]
        if (width // ctx.tp) % block:
            yield _error(
                "dense MLP width per rank %d is not divisible by the FP8 weight block %d (Weight "
                "output_partition_size = %d is not divisible by weight quantization block_n = %d.)"
                % (width // ctx.tp, block, width // ctx.tp, block),
                "use a tensor_parallel_size that keeps %d / TP a multiple of %d" % (width, block))


@rule("virtual_heads_grouping", "plan", "Virtual heads can keep every layer type's GQA grouping",
      "local-inference-lab/vllm vllm/config/virtual_tp.py _make_coupled_virtual_axes "
      "(requires q % kv == 0)")
def _grouping(ctx):
    for name in ctx.dims.unpaddable:
        yield _error(
            "%s-attention layers: the q-head count is not a multiple of the KV-head count, so "
            "no padding keeps the GQA grouping" % name,
            "use a tensor_parallel_size that divides the heads (virtual heads cannot help here)")


_PADDING_REASON = {
    "virtual-heads": "it pads %s",
    "moe-zero-fill": "it pads the MoE expert width %d -> %d, and NVFP4 experts give gibberish "
                     "unless the pad is true zeros",
    "sink-padding": "it pads the attention heads of a model with attention sinks: the loader "
                    "would narrow the %d-long sink vector to %d // %d = %d per rank while padded "
                    "ranks hold %d heads",
}


@rule("virtual_heads_patches", "plan", "The image carries the patches the padding needs",
      "patch catalog (plugins/module_utils/plan/patches.py); vllm/model_executor/models/"
      "mimo_v2.py load_weights (attention sinks); fused_moe/layer.py (MoE pad)")
def _padding_patches(ctx):
    dims = ctx.dims
    for patch in dims.patches:
        if patch in ctx.image_patches:
            continue
        if patch == "moe-zero-fill":
            why = _PADDING_REASON[patch] % dims.moe
        elif patch == "sink-padding":
            q_orig, q_eff = [e["q_heads"] for e in dims.attention if e["sinks"]][0]
            why = _PADDING_REASON[patch] % (q_orig, q_orig, ctx.tp, q_orig // ctx.tp,
                                            q_eff // ctx.tp)
        else:
            why = _PADDING_REASON[patch] % ", ".join(
                p for p in dims.padded if p != "moe")
        yield _error(
            "virtual heads at tensor_parallel_size %d need image patch '%s' (%s): %s; the image "
            "does not declare it" % (ctx.tp, patch, PATCHES[patch]["summary"].rstrip("."), why),
            "build the image with patch '%s' (vllm_image role) and list it in vllm_patches"
            % patch)


# --- decode context parallelism --------------------------------------------------------

@rule("dcp_divides_tp", "config", "DCP divides TP",
      "vllm/config/parallel.py ParallelConfig._validate_parallel_config "
      "('tp_size=.. must be divisible by dcp_size=..')")
def _dcp_tp(ctx):
    if ctx.tp % ctx.dcp:
        yield _error(
            "tp_size=%d must be divisible by dcp_size=%d." % (ctx.tp, ctx.dcp),
            "use a decode_context_parallel_size that divides %d (%s)"
            % (ctx.tp, _some(divisors(ctx.tp))))


def _some(values, limit=8):
    """A short list for a message: the first ``limit`` values, then how many more."""
    text = ", ".join(str(v) for v in values[:limit])
    if len(values) > limit:
        text += " and %d more" % (len(values) - limit)
    return text


@rule("dcp_gqa_kv_heads", "config", "DCP on GQA/MQA models uses only KV-head replicas",
      "vllm/config/model.py ModelConfig.verify_with_parallel_config (dcp > 1 and not use_mla; "
      "the config's num_attention_heads / num_key_value_heads only)")
def _dcp_gqa(ctx):
    if ctx.dcp <= 1 or ctx.model.use_mla:
        return
    # vLLM checks the heads of hf_text_config (get_total_num_kv_heads), i.e. the first layer
    # kind; other kinds (MiMo's sliding-window heads) fail DCP later (dcp_sliding_window).
    for entry in ctx.dims.attention[:1]:
        kv = entry["kv_heads"][1]
        q = entry["q_heads"][1]
        if ctx.tp <= kv:
            yield _error(
                "Decode context parallelism for GQA/MQA requires `--tensor-parallel-size` (%d) to "
                "be greater than the model's total number of KV heads (%d) [%s layers]."
                % (ctx.tp, kv, entry["layer_type"]),
                "increase tensor_parallel_size above %d or set decode_context_parallel_size: 1"
                % kv)
            continue
        if ctx.dcp > ctx.tp // kv:
            yield _error(
                "`--decode-context-parallel-size` (%d) exceeds the maximum supported value (%d) "
                "for `--tensor-parallel-size` (%d) and %d model KV heads [%s layers]."
                % (ctx.dcp, ctx.tp // kv, ctx.tp, kv, entry["layer_type"]),
                "use decode_context_parallel_size <= %d" % (ctx.tp // kv))
        if (q // kv) % ctx.dcp:
            yield _error(
                "The model's number of query heads per KV head (%d) must be divisible by "
                "`--decode-context-parallel-size` (%d) for GQA/MQA [%s layers]."
                % (q // kv, ctx.dcp, entry["layer_type"]),
                "use a decode_context_parallel_size that divides %d" % (q // kv))


@rule("dcp_sliding_window", "worker", "DCP is not supported with sliding-window / hybrid KV caches",
      "vllm/v1/kv_cache_interface.py SlidingWindowSpec ('DCP not support sliding window.'); "
      "vllm/v1/core/kv_cache_utils.py resolve_kv_cache_block_sizes")
def _dcp_swa(ctx):
    if ctx.dcp > 1 and ctx.model.is_hybrid:
        yield _error(
            "decode_context_parallel_size %d on a model with sliding-window layers: vLLM asserts "
            "'DCP not support sliding window.' (hybrid KV-cache groups do not support context "
            "parallelism)" % ctx.dcp,
            "set decode_context_parallel_size: 1 for this model")


@rule("dcp_interleave", "config", "cp_kv_cache_interleave_size fits the block size and MTP",
      "vllm/config/vllm.py (Block_size should be divisible by cp_kv_cache_interleave_size); "
      "vllm/v1/worker/cp_utils.py check_attention_cp_compatibility")
def _dcp_interleave(ctx):
    n = ctx.req.cp_kv_cache_interleave_size
    if n == 1 or ctx.dcp == 1:
        return
    if ctx.block_size < n or ctx.block_size % n:
        yield _error(
            "Block_size(%d) should be greater than or equal to and divisible by "
            "cp_kv_cache_interleave_size (%d)." % (ctx.block_size, n),
            "use cp_kv_cache_interleave_size 1 or a divisor of block_size %d" % ctx.block_size)
    if ctx.uses_mtp:
        yield _error(
            "MTP with cp_kv_cache_interleave_size > 1 (%d) is not supported by the MLA/GQA "
            "backends this cluster uses" % n,
            "set cp_kv_cache_interleave_size: 1 when DCP runs with MTP")


@rule("pp_cpu_eager", "worker",
      "Pipeline stages on vLLM's CPU build have their receive buffers",
      "vllm 0.32.0 vllm/v1/worker/cpu_model_runner.py (no warm-up in eager mode, so no "
      "intermediate_tensors); patch catalog cpu-eager-pp")
def _pp_cpu(ctx):
    if ctx.pp <= 1 or ctx.build.platform != "cpu" or "cpu-eager-pp" in ctx.image_patches:
        return
    yield _error(
        "pipeline_parallel_size %d on build %s: its CPU runner runs eager and never allocates "
        "the buffers a later stage receives hidden states into, so the first request kills the "
        "engine (AssertionError, then KeyError on the request)" % (ctx.pp, ctx.build.name),
        "build the image with patch 'cpu-eager-pp' and list it in the image's patches, or use "
        "pipeline_parallel_size: 1")


@rule("dcp_mtp_draft_inherit", "worker",
      "Under DCP the MTP draft inherits decode_context_parallel_size",
      "vllm/config/speculative.py create_draft_parallel_config (draft dcp=1); "
      "local-inference-lab/vllm PR #72; vLLM PR #55472")
def _dcp_draft(ctx):
    if ctx.dcp <= 1 or not ctx.uses_mtp or ctx.build.draft_inherits_dcp:
        return
    if "draft-dcp-inherit" in ctx.image_patches:
        return
    if ctx.n_spec <= 1:
        # The published GLM-5.2 production plan for weeks (TP4/DCP4/MTP1 on the fork without
        # the fix): it boots and serves, the single draft position just accepts less.
        yield _warning(
            "decode_context_parallel_size %d with MTP (num_speculative_tokens 1) on build %s: "
            "its draft runs with dcp=1 against a DCP-sharded KV cache, so the draft sees only "
            "this rank's shard of the context; the plan serves, but acceptance drops (about "
            "0.74 on GLM-5.2 TP4/DCP4, against 0.90 for position 1 with the fix); the image "
            "does not declare patch 'draft-dcp-inherit'" % (ctx.dcp, ctx.build.name),
            "build the image with patch 'draft-dcp-inherit' and list it in the image's patches "
            "(it also makes num_speculative_tokens 3 usable: 22-23 vs 14.5-15.2 tok/s on "
            "GLM-5.2)")
        return
    yield _error(
        "decode_context_parallel_size %d with MTP (num_speculative_tokens %d) on build %s: "
        "its draft runs with dcp=1 against a DCP-sharded KV cache, so acceptance of draft "
        "positions 2 and later collapses without an error (GLM-5.2 TP4/DCP4 MTP3: 12.70 "
        "tok/s, below MTP1's 15.18); the image does not declare patch 'draft-dcp-inherit'"
        % (ctx.dcp, ctx.n_spec, ctx.build.name),
        "build the image with patch 'draft-dcp-inherit' and list it in the image's patches, "
        "or set speculative_config.num_speculative_tokens: 1 (serves, lower acceptance), or "
        "decode_context_parallel_size: 1")


@rule("dcp_indexer_topk", "worker", "DSA sparse indexer under DCP needs a supported index_topk",
      "vllm/model_executor/layers/sparse_attn_indexer.py _assert_cutedsl_dcp_merge_supported")
def _dcp_indexer(ctx):
    idx = ctx.model.indexer
    if ctx.dcp > 1 and idx and idx["topk"] not in (512, 1024, 2048):
        yield _error(
            "DCP sparse-indexer merge requires index_topk in (512, 1024, 2048); got %d."
            % idx["topk"], "set decode_context_parallel_size: 1 for this model")


# --- speculative decoding --------------------------------------------------------------

@rule("mtp_layers", "config", "MTP exists for the architecture and the token count fits its layers",
      "vllm/config/speculative.py SpeculativeConfig.hf_config_override (the target's MTP "
      "draft and its n_predict) and __post_init__ ('Unsupported speculative method', "
      "num_speculative_tokens % n_predict)")
def _mtp_layers(ctx):
    if not ctx.uses_mtp:
        return
    mtp = ctx.model.mtp
    if not mtp.supported:
        yield _error(
            "Unsupported speculative method: 'mtp' (vLLM 0.33 has no MTP draft for %s: %s)"
            % (ctx.model.architecture, mtp.field),
            "drop speculative_config, or use a method that needs no MTP layers (ngram, or "
            "eagle3 / draft_model with a draft checkpoint)")
        return
    layers = ctx.model.mtp_layers
    if mtp.layers is None:
        yield _warning(
            "config.json does not give the MTP layer count (%s): vLLM 0.33 accepts any "
            "num_speculative_tokens and builds one MTP layer, whether or not the checkpoint "
            "has MTP weights" % mtp.field,
            "check that the checkpoint ships MTP weights (e.g. mtp.* tensors) before relying "
            "on MTP")
        return
    if not layers:
        yield _error(
            "speculative_config method mtp, but the model has no MTP layers (%s is %s)"
            % (ctx.model.mtp_layers_field, layers),
            "drop speculative_config, or use a checkpoint with MTP weights")
        return
    n = ctx.n_spec
    if n > layers and n % layers:
        yield _error("num_speculative_tokens:%d must be divisible by n_predict=%d" % (n, layers),
                     "use a multiple of %d speculative tokens" % layers)
    elif n > layers:
        yield _warning(
            "num_speculative_tokens %d > %d MTP layer(s): vLLM runs the same MTP layer %d times, "
            "so acceptance falls with each position (GLM-5.2 TP4/DCP4 MTP3 with the draft "
            "fix: 0.90 / 0.79 / 0.67, 22-23 tok/s against 14.5-15.2 with MTP1)"
            % (n, layers, n // layers),
            "measure acceptance per position (benchmark role) before keeping %d tokens" % n)


_DRAFT_METHODS = ("eagle", "eagle3", "draft_model", "dflash")


@rule("spec_draft_model", "config", "The speculative method has the draft it needs",
      "vllm/config/speculative.py SpeculativeConfig.__post_init__ ('num_speculative_tokens "
      "was provided but without speculative model'); " + archs.EAGLE_SOURCE)
def _spec_draft(ctx):
    spec = ctx.req.speculative_config
    if not spec or spec["is_mtp"]:
        return
    method = spec["method"]
    if method in _DRAFT_METHODS and not spec.get("model"):
        yield _error(
            "num_speculative_tokens was provided but without speculative model "
            "(method %s needs speculative_config.model)" % method,
            "give speculative_config.model (the draft checkpoint), or use method ngram")
        return
    draft = ctx.draft
    if draft is None or draft.get("architecture") is None:
        return
    if method in ("eagle", "eagle3"):
        name, known = archs.eagle_architecture(method, draft["architecture"])
        if not known:
            yield _error(
                "Model architectures ['%s'] are not supported for now (the %s draft %s "
                "becomes %s under method %s)" % (name, method, draft["architecture"], name,
                                                 method),
                "use method %s for this draft, or a draft trained for %s"
                % ("eagle3" if method == "eagle" else "eagle", method))


@rule("spec_draft_readable", "plan", "The draft checkpoint's config can be read",
      "dgxspark.cluster plan engine")
def _spec_draft_readable(ctx):
    draft = ctx.draft
    if draft is not None and draft.get("error"):
        yield _warning(
            "the draft's config.json cannot be read here (%s): the draft's architecture and "
            "length are not checked" % draft["error"],
            "point speculative_config.model at a local draft directory to check it")


@rule("ngram_lookup", "config", "ngram prompt-lookup bounds are ordered",
      "vllm/config/speculative.py SpeculativeConfig.__post_init__ (prompt_lookup_min <= "
      "prompt_lookup_max)")
def _ngram(ctx):
    spec = ctx.req.speculative_config
    if not spec or spec["method"] not in ("ngram", "ngram_gpu"):
        return
    low, high = spec.get("prompt_lookup_min"), spec.get("prompt_lookup_max")
    low = high if low is None else low
    high = low if high is None else high
    if low is not None and low > high:
        yield _error("prompt_lookup_min=%d must be <= prompt_lookup_max=%d" % (low, high),
                     "set prompt_lookup_min <= prompt_lookup_max (vLLM's default is 5 and 5)")


@rule("draft_tp", "config", "Draft TP is 1 or the target TP",
      "vllm/config/speculative.py _verify_and_get_draft_tp")
def _draft_tp(ctx):
    spec = ctx.req.speculative_config
    if not spec or spec.get("draft_tensor_parallel_size") is None:
        return
    dtp = spec["draft_tensor_parallel_size"]
    if dtp not in (1, ctx.tp):
        yield _error(
            "speculative_draft_tensor_parallel_size=%d cannot be other value than 1 or target "
            "model tensor_parallel_size" % dtp,
            "set speculative_config.draft_tensor_parallel_size to 1 or %d, or drop it" % ctx.tp)


@rule("pp_mtp", "worker", "Pipeline parallelism with MTP is supported by the build",
      "vLLM #52069 / recipes #875 (draft PP); #57755 (V1 PP broadcast assert); MRV2 PR #46994")
def _pp_mtp(ctx):
    if ctx.pp > 1 and ctx.uses_mtp and not ctx.build.pp_with_mtp:
        yield _error(
            "pipeline_parallel_size %d with MTP on build %s: this build cannot start (or "
            "corrupts output) with an MTP draft under pipeline parallelism" % (ctx.pp,
                                                                               ctx.build.name),
            "set pipeline_parallel_size: 1 (use TP across the nodes), or drop MTP, or use a "
            "build with pp_with_mtp (upstream vLLM 0.33, Model Runner V2)")
    elif ctx.pp > 1 and ctx.uses_mtp:
        yield _warning(
            "pipeline parallelism with MTP runs on this build (drafter on the last PP rank) but "
            "is young upstream; check acceptance per position after launch",
            "compare acceptance with a pipeline_parallel_size: 1 plan")


# Speculative methods Model Runner V1 runs with async scheduling: vLLM's EagleModelTypes
# (eagle, eagle3, dflash, extract_hidden_states and every MTP name), ngram_gpu, draft_model
# and dspark (vllm/config/vllm.py, VllmConfig.__post_init__ v1_async_sched_incompat).
_V1_ASYNC_SPEC_METHODS = ("mtp", "eagle", "eagle3", "dflash", "extract_hidden_states",
                          "ngram_gpu", "draft_model", "dspark")


def v1_async_incompatibility(build, spec, pp):
    """Why Model Runner V1 cannot schedule asynchronously here (vLLM's words), or None.

    vLLM checks the speculative method first, then pipeline parallelism; the V2 runner has
    neither restriction.
    """
    if build.model_runner != "v1":
        return None
    if spec:
        method = "mtp" if spec["is_mtp"] else spec["method"]
        if method not in _V1_ASYNC_SPEC_METHODS:
            return "%s-based speculative decoding" % method
    if pp > 1:
        return "pipeline parallelism"
    return None


_ASYNC_SOURCE = ("vllm/config/vllm.py VllmConfig.__post_init__ (v1_async_sched_incompat: 'Async "
                 "scheduling is not supported by the V1 model runner with ...')")


@rule("async_scheduling_pp", "config", "Async scheduling is possible with the runner and PP",
      _ASYNC_SOURCE)
def _async_pp(ctx):
    reason = v1_async_incompatibility(ctx.build, ctx.req.speculative_config, ctx.pp)
    if ctx.req.async_scheduling and reason == "pipeline parallelism":
        yield _error(
            "Async scheduling is not supported by the V1 model runner with pipeline "
            "parallelism (pipeline_parallel_size %d, build %s)." % (ctx.pp, ctx.build.name),
            "drop async_scheduling (vLLM turns it off by itself) or use pipeline_parallel_size 1")


@rule("async_scheduling_spec", "config",
      "Async scheduling is possible with the runner and the speculative method", _ASYNC_SOURCE)
def _async_spec(ctx):
    reason = v1_async_incompatibility(ctx.build, ctx.req.speculative_config, ctx.pp)
    if ctx.req.async_scheduling and reason and reason != "pipeline parallelism":
        yield _error(
            "Async scheduling is not supported by the V1 model runner with %s (build %s)."
            % (reason, ctx.build.name),
            "drop async_scheduling (vLLM turns it off by itself), use a speculative method the "
            "V1 runner schedules asynchronously (mtp, eagle, eagle3, draft_model, ngram_gpu), "
            "or a Model Runner V2 build")


@rule("pp_layers", "worker", "Pipeline stages have layers",
      "vllm/distributed/utils.py get_pp_indices")
def _pp_layers(ctx):
    if ctx.pp > ctx.model.num_layers:
        yield _error(
            "pipeline_parallel_size %d exceeds the model's %d layers" % (ctx.pp,
                                                                         ctx.model.num_layers),
            "use pipeline_parallel_size <= %d" % ctx.model.num_layers)


# --- CUDA graphs -----------------------------------------------------------------------

_CG_SOURCE = ("vllm/config/vllm.py VllmConfig._set_cudagraph_sizes; vllm/config/compilation.py "
              "resolve_cudagraph_mode_and_sizes / adjust_cudagraph_sizes_for_spec_decode")


@rule("cudagraph_no_valid_sizes", "runner", "Capture sizes survive the V1 runner's N+1 rounding",
      _CG_SOURCE)
def _cg_valid(ctx):
    cap = ctx.capture
    if cap.no_valid_sizes:
        n = ctx.n_spec
        yield _error(
            cap.no_valid_sizes + " [Model Runner V1 rounds capture sizes to multiples of "
            "num_speculative_tokens + 1 = %d; the cap was snapped to %d]" % (n + 1, cap.config_max),
            "set max_cudagraph_capture_size to a ladder size >= %d (e.g. %d), or give "
            "cudagraph_capture_sizes as multiples of %d (e.g. [%d])"
            % (n + 1, _ladder_at_least(n + 1), n + 1, n + 1))


def _ladder_at_least(n):
    for size in (1, 2, 4):
        if size >= n:
            return size
    return round_up(n, 8) if n < 256 else round_up(n, 16)


@rule("cudagraph_sp_divisibility", "runner",
      "Spec-decode and sequence-parallel capture shapes agree",
      _CG_SOURCE)
def _cg_sp(ctx):
    if ctx.capture.sp_conflict:
        yield _error(ctx.capture.sp_conflict,
                     "set sequence_parallelism: false, or choose num_speculative_tokens + 1 as a "
                     "multiple of tensor_parallel_size %d" % ctx.tp)


@rule("cudagraph_sequence_parallelism", "config", "Sequence parallelism exists in the build",
      "vllm/config/compilation.py PassConfig (0.33 has no enable_sp pass)")
def _cg_sp_exists(ctx):
    if ctx.req.sequence_parallelism and not ctx.build.sequence_parallelism:
        yield _error(
            "sequence_parallelism is set, but build %s has no compile-pass sequence parallelism "
            "(PassConfig rejects the field)" % ctx.build.name,
            "set sequence_parallelism: false")


@rule("cudagraph_explicit_consistency", "config", "An explicit cap matches an explicit size list",
      _CG_SOURCE)
def _cg_consistent(ctx):
    if ctx.capture.inconsistent:
        cap, top = ctx.capture.inconsistent
        yield _error(
            "customized max_cudagraph_capture_size(=%d) should be consistent with the max value "
            "of cudagraph_capture_sizes(=%d)" % (cap, top),
            "drop max_cudagraph_capture_size or set it to %d" % top)


@rule("cudagraph_truncated", "config", "An explicit cap lies on vLLM's capture ladder",
      _CG_SOURCE)
def _cg_truncated(ctx):
    if ctx.capture.truncated:
        asked, got = ctx.capture.truncated
        yield _warning(
            "Truncating max_cudagraph_capture_size to %d: %d is not on vLLM's 1, 2, 4, 8, 16.. "
            "ladder" % (got, asked),
            "set max_cudagraph_capture_size: %d (what vLLM will use) or a ladder size >= %d"
            % (got, asked))


@rule("cudagraph_decode_coverage", "runner", "Decode batches of max_num_seqs are captured",
      _CG_SOURCE)
def _cg_cover(ctx):
    cap = ctx.capture
    if not cap.enabled or not cap.sizes:
        return
    need = ctx.max_num_seqs * (ctx.n_spec + 1)
    covered = cap.decode_full_sizes[-1] if cap.decode_full_sizes else 0
    if covered == 0 and ctx.n_spec:
        yield _warning(
            "no full decode CUDA graph: num_speculative_tokens + 1 = %d exceeds the capture cap "
            "%d, so every decode step runs piecewise (slower, but vLLM starts)"
            % (ctx.n_spec + 1, cap.max_size),
            "raise max_cudagraph_capture_size to %d" % _ladder_at_least(ctx.n_spec + 1))
    elif covered < need:
        yield _warning(
            "largest full decode graph covers %d tokens < max_num_seqs %d x "
            "(num_speculative_tokens + 1) = %d: bigger decode batches run piecewise"
            % (covered, ctx.max_num_seqs, need),
            "raise max_cudagraph_capture_size to %d or lower max_num_seqs"
            % _ladder_at_least(need))


# --- KV cache and scheduler -----------------------------------------------------------

@rule("kv_cache_dtype", "config", "The KV-cache dtype exists in the build and suits the attention",
      "vllm/config/cache.py CacheConfig (valid kv_cache_dtype names); vllm/config/vllm.py "
      "(nvfp4 KV cache is not supported with MLA); vllm/utils/torch_utils.py "
      "resolve_kv_cache_dtype_string (auto -> a ModelOpt checkpoint's KV format)")
def _kv_dtype(ctx):
    dtype = ctx.kv_cache_dtype  # as vLLM resolves it (auto -> the checkpoint's KV format)
    if dtype not in ctx.build.kv_cache_dtypes:
        yield _error(
            "Invalid kv_cache_dtype: %r for build %s. Valid values are: %s"
            % (dtype, ctx.build.name, ", ".join(ctx.build.kv_cache_dtypes)),
            "use one of the valid values, e.g. fp8 or auto")
        return
    if ctx.model.use_mla and dtype in ("nvfp4", "nvfp4_4over6"):
        yield _error(
            "nvfp4 KV cache is not supported with MLA (Multi-head Latent Attention) backends.",
            "use kv_cache_dtype: fp8 (or auto) for this MLA model")


@rule("attention_head_size", "worker", "The attention backend supports the model's head size",
      "vllm/v1/attention/backends/cpu_attn.py CPUAttentionBackend.get_supported_head_sizes "
      "(build capability head_sizes)")
def _head_size(ctx):
    allowed = ctx.build.head_sizes
    if allowed is None or ctx.model.use_mla:
        return
    for entry in ctx.model.attention:
        if entry.head_dim not in allowed:
            yield _error(
                "head_dim %d of the %s layers: build %s's attention backend supports only %s "
                "(vLLM: Unsupported CPU attention configuration: head_dim=%d)"
                % (entry.head_dim, entry.name, ctx.build.name,
                   ", ".join(str(i) for i in allowed), entry.head_dim),
                "use a model whose head_dim is one of %s" % ", ".join(str(i) for i in allowed))


@rule("block_size_backend", "worker", "block_size is a multiple of the attention kernel's block",
      "vllm/v1/attention/backends/cpu_attn.py get_supported_kernel_block_sizes (MultipleOf(32); "
      "build capability block_size_multiple)")
def _block_multiple(ctx):
    multiple = ctx.build.block_size_multiple
    if multiple > 1 and ctx.block_size % multiple:
        yield _error(
            "block_size %d: build %s's attention kernels need a multiple of %d"
            % (ctx.block_size, ctx.build.name, multiple),
            "drop block_size (vLLM picks %d) or use a multiple of %d"
            % (ctx.build.default_block_size, multiple))


@rule("sparse_mla_backend", "worker",
      "A sparse-MLA (DSA) backend exists for the KV dtype and block size",
      "vllm/platforms/cuda.py (SM12x: FLASHINFER_MLA_SPARSE_SM120); "
      "vllm/v1/attention/backends/mla/flashinfer_mla_sparse_sm120.py; "
      "vllm/platforms/interface.py update_block_size_for_backend")
def _sparse_mla(ctx):
    if not (ctx.model.use_mla and ctx.model.indexer):
        return
    allowed = ctx.build.sparse_mla_kv_dtypes
    dtype = ctx.kv_cache_dtype
    # an unknown dtype is the kv_cache_dtype rule's finding; do not repeat it here
    if allowed is not None and dtype not in allowed and dtype in ctx.build.kv_cache_dtypes:
        yield _error(
            "kv_cache_dtype %s: build %s has no sparse-MLA attention backend for it on a GB10 "
            "(FLASHINFER_MLA_SPARSE_SM120 requires the packed fp8_ds_mla KV cache layout)"
            % (dtype, ctx.build.name),
            "use kv_cache_dtype: fp8 (stored as fp8_ds_mla; also the only way 128K fits)")
    if ctx.block_size % 64:
        yield _error(
            "block_size %d: the sparse-MLA and DSA-indexer kernels need a multiple of 64 (vLLM: "
            "No valid attention backend found ... block_size not supported)" % ctx.block_size,
            "drop block_size (vLLM then picks 64) or use a multiple of 64")


@rule("max_model_len", "config", "max_model_len fits the model's positions",
      "vllm/config/model.py _get_and_verify_max_len (VLLM_ALLOW_LONG_MAX_MODEL_LEN)")
def _max_len(ctx):
    limit = ctx.model.max_position_embeddings
    if limit and ctx.max_model_len > limit and not ctx.req.allow_long_max_model_len:
        yield _error(
            "User-specified max_model_len (%d) is greater than the derived max_model_len "
            "(max_position_embeddings=%d)" % (ctx.max_model_len, limit),
            "lower max_model_len to %d, or set allow_long_max_model_len: true "
            "(VLLM_ALLOW_LONG_MAX_MODEL_LEN=1, at your own risk)" % limit)


@rule("scheduler_batch", "config", "max_num_batched_tokens covers max_num_seqs (and max_model_len "
      "without chunked prefill)", "vllm/config/scheduler.py SchedulerConfig.verify_max_model_len")
def _scheduler(ctx):
    if ctx.max_num_batched_tokens < ctx.max_num_seqs:
        yield _error(
            "max_num_batched_tokens (%d) must be greater than or equal to max_num_seqs (%d)."
            % (ctx.max_num_batched_tokens, ctx.max_num_seqs),
            "raise max_num_batched_tokens to at least %d or lower max_num_seqs"
            % ctx.max_num_seqs)
    if ctx.n_spec and ctx.max_num_batched_tokens <= ctx.n_spec:
        yield _error(
            "VllmConfig does not have enough slots to schedule a token and support the "
            "speculative decoding settings (max_num_batched_tokens %d <= %d lookahead tokens)"
            % (ctx.max_num_batched_tokens, ctx.n_spec),
            "raise max_num_batched_tokens well above num_speculative_tokens")
    if not ctx.req.enable_chunked_prefill and ctx.max_num_batched_tokens < ctx.max_model_len:
        yield _error(
            "max_num_batched_tokens (%d) is smaller than max_model_len (%d) with chunked "
            "prefill disabled" % (ctx.max_num_batched_tokens, ctx.max_model_len),
            "enable chunked prefill or raise max_num_batched_tokens to %d" % ctx.max_model_len)


@rule("kv_cache_fits", "worker", "One request at max_model_len fits in the KV cache",
      "vllm/v1/core/kv_cache_planning.py _check_enough_kv_cache_memory")
def _kv_fits(ctx):
    kv = ctx.kv
    if kv is None or kv.get("tokens") is None:
        return
    if not kv["fits_one_request"]:
        fixes = ["raise kv_cache_memory_bytes to at least %d" % kv["bytes_one_request"]]
        if kv["max_model_len_fit"] >= 1:
            fixes.append("lower max_model_len to about %d" % kv["max_model_len_fit"])
        dcp = _dcp_that_fits(ctx)
        if dcp:
            fixes.append("raise decode_context_parallel_size to %d (the DCP rules allow it "
                         "here and one request then fits)" % dcp)
        yield _error(
            "To serve at least one request with the model's max seq len (%d), (%.2f GiB KV "
            "cache is needed, which is larger than the available KV cache memory (%.2f GiB)."
            % (ctx.max_model_len, kv["bytes_one_request"] / 2.0 ** 30,
               kv["memory_bytes"] / 2.0 ** 30),
            _alternatives(fixes))


def _alternatives(fixes):
    """"a, b or c" """
    return fixes[0] if len(fixes) == 1 else ", ".join(fixes[:-1]) + " or " + fixes[-1]


class _AtDcp(object):
    """The plan's context as it would be at another decode_context_parallel_size."""

    def __init__(self, ctx, dcp):
        self._ctx = ctx
        self.dcp = dcp

    def __getattr__(self, name):
        return getattr(self._ctx, name)


def _dcp_that_fits(ctx):
    """The smallest DCP above the plan's that every DCP rule allows and at which one request
    fits the KV cache, or None (then a fix never suggests raising DCP)."""
    dcp_rules = [r for r in RULES if r.id.startswith("dcp_")]
    for dcp in divisors(ctx.tp):
        if dcp <= ctx.dcp:
            continue
        trial = _AtDcp(ctx, dcp)
        if any(f.severity == "error" for r in dcp_rules for f in r.run(trial)):
            continue
        if ctx.estimate_kv(dcp).get("fits_one_request"):
            return dcp
    return None


def _gib(value):
    return "%.2f GiB" % (value / 2.0 ** 30)


@rule("memory_fit", "worker", "Weights, runtime overhead and the KV budget fit a Spark's memory",
      "plugins/module_utils/plan/memory.py (vLLM 0.33 model construction: TP/PP sharding, "
      "replicated parts, quantization formats); vllm/v1/worker/gpu_worker.py "
      "determine_available_memory")
def _memory_fit(ctx):
    mem = ctx.memory
    if mem is None:
        return
    weights, overhead, usable = mem["weights_bytes"], mem["overhead_bytes"], mem["usable_bytes"]
    ranks = ctx.tp * ctx.pp
    if not mem["fits_weights"]:
        # the ranks whose share of the weights fits beside the overhead (the sharded part
        # shrinks with more ranks; an estimate from this plan's per-rank bytes)
        need = -(-weights * ranks // max(1, usable - overhead))
        yield _error(
            "the weights need %s per rank (%s, tensor_parallel_size %d x "
            "pipeline_parallel_size %d) plus %s runtime overhead, more than the %s a Spark "
            "leaves vLLM (%s unified memory minus %s for the host)"
            % (_gib(weights), "estimated from config.json" if mem["weights_source"] == "config"
               else "as given", ctx.tp, ctx.pp, _gib(overhead), _gib(usable),
               _gib(mem["node_memory_bytes"]), _gib(mem["host_reserve_bytes"])),
            "spread the model over at least %d Sparks: raise nodes and tensor_parallel_size "
            "(or pipeline_parallel_size) so that tensor_parallel_size x "
            "pipeline_parallel_size >= %d, or use a smaller quantization of the model"
            % (need, need))
        return
    kv = ctx.req.kv_cache_memory_bytes
    if kv is not None and not mem["fits_kv"]:
        yield _error(
            "kv_cache_memory_bytes %d (%s) does not fit beside %s of weights and %s runtime "
            "overhead per rank: at most %s is left on a Spark (it would need "
            "gpu_memory_utilization %.3f)" % (kv, _gib(kv), _gib(weights), _gib(overhead),
                                              _gib(mem["kv_budget_max"]), mem["gmu_for_kv"]),
            "lower kv_cache_memory_bytes to at most %d, or add Sparks (more "
            "tensor_parallel_size shrinks the weights per rank)" % mem["kv_budget_max"])


@rule("kv_cache_budget", "plan", "A KV-cache budget is given so capacity can be checked",
      "dgxspark.cluster plan engine")
def _kv_budget(ctx):
    if ctx.req.kv_cache_memory_bytes is None:
        yield _warning(
            "kv_cache_memory_bytes is not set, so KV capacity and 'one request fits' are not "
            "checked (gpu_memory_utilization sizing varies at the memory edge on a Spark)",
            "set kv_cache_memory_bytes (bytes per GPU), e.g. 1810000000 as the GLM-5.2 recipe")
    elif ctx.kv and ctx.kv.get("unknown_dtype"):
        yield _warning(
            "the KV-cache dtype %s has no size model here; capacity is not estimated"
            % ctx.kv_cache_dtype, "use auto, bfloat16, fp8* or nvfp4 for an estimate")


@rule("image_patches_known", "plan", "Declared patches are in the catalog",
      "patch catalog (plugins/module_utils/plan/patches.py)")
def _patches_known(ctx):
    for patch in ctx.req.vllm_patches:
        if patch not in PATCHES:
            yield _warning(
                "vllm_patches lists '%s', which is not in the patch catalog (%s); the planner "
                "cannot use it" % (patch, ", ".join(sorted(PATCHES))),
                "check the spelling against the catalog")


@rule("architecture_known", "plan", "vLLM's per-architecture behaviour is modelled",
      "plugins/module_utils/plan/archs.py KNOWN (checked by the recorded differential suite)")
def _architecture_known(ctx):
    model = ctx.model
    if not model.known_architecture:
        yield _warning(
            "architecture %s is not one this planner models: the verdict covers only the "
            "generic rules (heads, DCP, MTP layer count, capture sizes, KV dtype, lengths), not "
            "the adjustments vLLM makes for this model class" % model.architecture,
            "treat a 'satisfiable' verdict as provisional; the architectures checked against "
            "vLLM are listed in docs/preflight-rules.md")
    for note in model.notes:
        yield _warning(
            "%s: the verdict covers only the generic rules for that part" % note,
            "treat a 'satisfiable' verdict as provisional for this model")


def run_rules(ctx):
    findings = []
    for item in RULES:
        findings.extend(item.run(ctx))
    return findings


def describe_rules():
    return [{"rule": r.id, "stage": r.stage, "title": r.title, "source": r.source}
            for r in RULES]
