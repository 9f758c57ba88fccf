# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""The catalog of vLLM image patches that plans can require.

A patch id names one fix carried by the cluster's vLLM image (the image declares the
ids it carries in its ``dgxspark.patches`` label; the ``vllm_image`` role builds them). The
plan engine decides which ids a plan needs; a plan that needs a patch the image does not
declare is not satisfiable.

``shipped`` patches come with the collection as ``roles/vllm_image/files/patches/<id>/
<vLLM release>.patch`` (unified diffs against that release's ``vllm/`` package) for the
``releases`` listed; the others must be supplied for the base image in use
(``vllm_image_extra_patches``).
"""
from __future__ import annotations

PATCHES = {
    "draft-dcp-inherit": {
        "summary": "The MTP draft inherits decode_context_parallel_size from the target.",
        "fixes": (
            "A draft built from SpeculativeConfig.create_draft_parallel_config runs with "
            "dcp=1 against a DCP-sharded KV cache: 3 of 4 DCP ranks see an all -1 top-k row "
            "and emit zero attention, and MTP acceptance collapses without any error."
        ),
        "evidence": "local-inference-lab/vllm PR #72; vLLM PR #55472; vLLM RFC #53673",
        "required_when": "decode_context_parallel_size > 1 with MTP of more than one "
                         "speculative token on a build whose draft does not inherit DCP "
                         "(with one token the plan serves at lower acceptance: a warning)",
        "required_by_rule": "dcp_mtp_draft_inherit",
        "lets_pass": ["dcp_mtp_draft_inherit"],
        "shipped": True,
        "releases": ["0.32.0", "0.33.0"],
    },
    "virtual-heads": {
        "summary": "Virtual TP: pads attention heads, KV heads, vocab and dense widths with "
                   "zero-filled tails so that TP need not divide them.",
        "fixes": (
            "Upstream vLLM refuses TP sizes that do not divide the attention heads "
            "(vLLM #414, #596, #5003). The patch pads the config fields the plan engine lists "
            "in --hf-overrides '{\"virtual_heads\": ...}' (refusing a config that differs from "
            "the plan or another TP), passes the padding on to the MTP draft, pads the "
            "vocabulary to lcm(64, TP), and makes the linear-layer loaders zero-fill what lies "
            "past the checkpoint's end: the pad heads' q/k/v rows and o_proj columns, the pad "
            "columns and rows of dense MLPs. Generic for GQA models (fused QKV checkpoints "
            "split by the checkpoint's heads); MiMo V2's draft loader is routed through it."
        ),
        "evidence": "our own patch (facts from tonyd2wild mods/mimo-v2-tp3-virtual-heads and "
                    "local-inference-lab/vllm vllm/config/virtual_tp.py); equivalence proven on "
                    "vLLM 0.32.0's CPU build (tests/lab/test_virtual_heads.py)",
        "required_when": "virtual_heads pads any head, vocab or dense width",
        "required_by_rule": "virtual_heads_patches",
        "lets_pass": ["attention_heads_tp", "kv_heads_tp", "vocab_tp", "dense_mlp_tp"],
        "shipped": True,
        "releases": ["0.32.0", "0.33.0"],
    },
    "moe-zero-fill": {
        "summary": "FusedMoE pads the per-rank expert width with true zeros "
                   "(weights and block scales).",
        "fixes": (
            "With NVFP4 experts a non-zero pad (uninitialised codes or scales) in the padded "
            "intermediate dimension produces gibberish output at TP3. With virtual heads "
            "(it builds on the virtual-heads patch) each rank loads its slice at the padded "
            "per-rank stride and the tail past the checkpoint's width is zeroed."
        ),
        "evidence": "tonyd2wild mods/mimo-v2-tp3-virtual-heads (fused_moe/layer.py); "
                    "local-inference-lab/vllm PR #601; without it the lab's tiny MiMo returns NaN "
                    "at TP3 (tests/lab/test_virtual_heads.py)",
        "required_when": "virtual_heads pads the MoE intermediate width",
        "required_by_rule": "virtual_heads_patches",
        "lets_pass": ["moe_width_tp"],
        "shipped": True,
        "releases": ["0.32.0", "0.33.0"],
    },
    "sink-padding": {
        "summary": "Attention-sink vectors are padded to the padded per-rank head count.",
        "fixes": (
            "MiMo's loader narrows attention_sink_bias with total_heads // tp (64 // 3 = 21) "
            "while padded ranks hold 32 heads: the sink/head mismatch breaks MTP and decode. "
            "vLLM 0.33.0: the generic sink loader (weight_utils.load_attention_sink); 0.32.0: "
            "MiMo V2's target and MTP draft loaders."
        ),
        "evidence": "tonyd2wild mods/mimo-v2-tp3-virtual-heads (mimo_v2_mtp.py); sinks sized "
                    "21-style change the lab's tiny MiMo's logprobs (tests/lab/"
                    "test_virtual_heads.py)",
        "required_when": "virtual_heads pads the heads of a model with attention sinks",
        "required_by_rule": "virtual_heads_patches",
        "lets_pass": [],
        "shipped": True,
        "releases": ["0.32.0", "0.33.0"],
    },
    "post-load-trim": {
        "summary": "After the weights load and before the memory profile, the worker runs "
                   "gc.collect(), empties the CUDA caching allocator and calls "
                   "malloc_trim(0).",
        "fixes": (
            "On a Spark the GPU and the OS share one pool of memory: what the weight loader "
            "freed (safetensors read buffers, NVFP4 repacking temporaries) stays in glibc's "
            "malloc arenas and in the caching allocator, and counts as used when vLLM derives "
            "the KV budget or when the OS needs room for the KV cache the plan fixed "
            "(kv_cache_memory_bytes): fewer KV blocks at a given gpu_memory_utilization, or "
            "swapping and OOM at the memory edge. The published GLM-5.2 build carries the same "
            "hook (VLLM_KZ_TRIM_AFTER_LOAD=1); it logs 'dgxspark post-load-trim completed ... "
            "malloc_trim=1' on every rank (DGXSPARK_TRIM_AFTER_LOAD=0 turns it off)."
        ),
        "evidence": "m9e/blackwell-llm-docker FREEZE_MTP1_128K_PRODUCTION_20260625 (the "
                    "VLLM_KZ_TRIM_AFTER_LOAD hook and its validator); the GLM-5.2 follow-up "
                    "post's 5-file overlay (reference spark-clusters.md sections 7 and 14); "
                    "hook point vllm 0.33.0 vllm/v1/worker/gpu_worker.py Worker.load_model, "
                    "before determine_available_memory",
        "required_when": "never required: recommended for plans at the memory edge (the "
                         "memory_fit rule's headroom); the GLM-5.2 recipes ship it",
        "required_by_rule": "memory_fit",
        "lets_pass": [],
        "shipped": True,
        "releases": ["0.33.0"],
    },
    "cpu-eager-pp": {
        "summary": "vLLM's CPU runner allocates the buffers a later pipeline stage receives into "
                   "when it runs eager.",
        "fixes": (
            "vLLM 0.32.0's CPUModelRunner never warms up in eager mode (CompilationMode.NONE), "
            "and the warm-up is where the GPU runner allocates intermediate_tensors: with "
            "pipeline parallelism every stage after the first fails its first request "
            "(AssertionError in sync_and_gather_intermediate_tensors; the engine dies with "
            "KeyError on the request). Found by the lab's TP2 x PP2 scenario on the CPU engine."
        ),
        "evidence": "vllm 0.32.0 vllm/v1/worker/cpu_model_runner.py load_model and "
                    "warming_up_model; vllm/v1/worker/gpu_model_runner.py _dummy_run",
        "required_when": "pipeline_parallel_size > 1 on vLLM's CPU build (the lab's engine)",
        "required_by_rule": "pp_cpu_eager",
        "lets_pass": ["pp_cpu_eager"],
        "shipped": True,
        "releases": ["0.32.0"],
    },
}


def patch_ids():
    return sorted(PATCHES)
