"""Every rule has a plan that passes it and a plan that breaks it.

CASES maps each rule id to (passing case, failing case). A case is (model, config
overrides, plan options). The failing case must produce a finding of that rule with the
rule's severity; the passing case must produce no finding of that rule at all.
"""
from __future__ import annotations

import pytest

from ansible_collections.dgxspark.cluster.plugins.module_utils.plan import engine
from ansible_collections.dgxspark.cluster.plugins.module_utils.plan.rules import RULES

from conftest import ROOT

MTP1 = {"method": "mtp", "num_speculative_tokens": 1}
MTP2 = {"method": "mtp", "num_speculative_tokens": 2}
MTP3 = {"method": "mtp", "num_speculative_tokens": 3}
MTP4 = {"method": "mtp", "num_speculative_tokens": 4}
GLM_BUILD = "glm52-b12x-eldritch"
MIMO_PATCHES = ["virtual-heads", "moe-zero-fill", "sink-padding"]
CPU = {"vllm_build": "vllm-0.32-cpu", "dtype": "float32", "max_model_len": 256,
       "kv_cache_memory_bytes": 67108864}
GLM_OK = {"tensor_parallel_size": 4, "nodes": 4, "decode_context_parallel_size": 4,
          "kv_cache_dtype": "fp8", "max_model_len": 131072,
          "kv_cache_memory_bytes": 1810000000, "max_num_seqs": 1,
          "max_num_batched_tokens": 1024, "max_cudagraph_capture_size": 4}

EAGLE3_DRAFT = str(ROOT / "tests/fixtures/differential/models/draft-llama3-70b-eagle3")
EAGLE3 = {"method": "eagle3", "model": EAGLE3_DRAFT, "num_speculative_tokens": 3}

# rule id: (severity, passing case, failing case); a case is (base, config overrides, options)
CASES = {
    "architecture_known": ("warning",
                           ("gqa", {}, {"tensor_parallel_size": 4, "nodes": 4}),
                           ("gqa", {"architectures": ["FancyNewForCausalLM"]},
                            {"tensor_parallel_size": 4, "nodes": 4})),
    "spec_draft_model": ("error",
                         ("gqa", {}, {"tensor_parallel_size": 4, "nodes": 4,
                                      "speculative_config": EAGLE3}),
                         ("gqa", {}, {"tensor_parallel_size": 4, "nodes": 4,
                                      "speculative_config": dict(EAGLE3, method="eagle")})),
    "spec_draft_readable": ("warning",
                            ("gqa", {}, {"tensor_parallel_size": 4, "nodes": 4,
                                         "speculative_config": EAGLE3}),
                            ("gqa", {}, {"tensor_parallel_size": 4, "nodes": 4,
                                         "speculative_config": dict(
                                             EAGLE3, model="yuhuili/EAGLE3-LLaMA3.3-70B")})),
    "ngram_lookup": ("error",
                     ("gqa", {}, {"speculative_config": {
                         "method": "ngram", "num_speculative_tokens": 3,
                         "prompt_lookup_max": 4}}),
                     ("gqa", {}, {"speculative_config": {
                         "method": "ngram", "num_speculative_tokens": 3,
                         "prompt_lookup_min": 5, "prompt_lookup_max": 2}})),
    "world_size": ("error",
                   ("gqa", {}, {"tensor_parallel_size": 4, "nodes": 4}),
                   ("gqa", {}, {"tensor_parallel_size": 4, "nodes": 2})),
    "executor_platform": ("error",
                          ("gqa", {}, dict(CPU, tensor_parallel_size=4, nodes=4,
                                           distributed_executor_backend="mp")),
                          ("gqa", {}, dict(CPU, tensor_parallel_size=4, nodes=4,
                                           distributed_executor_backend="ray"))),
    "mp_multi_node": ("error",
                      ("gqa", {}, {"tensor_parallel_size": 2, "pipeline_parallel_size": 2,
                                   "nodes": 4, "distributed_executor_backend": "mp"}),
                      ("gqa", {}, {"tensor_parallel_size": 2, "nodes": 3,
                                   "distributed_executor_backend": "mp"})),
    "pp_cpu_eager": ("error",
                     ("gqa", {}, dict(CPU, tensor_parallel_size=2, pipeline_parallel_size=2,
                                      nodes=4, vllm_patches=["cpu-eager-pp"])),
                     ("gqa", {}, dict(CPU, tensor_parallel_size=2, pipeline_parallel_size=2,
                                      nodes=4))),
    "attention_head_size": ("error",
                            ("gqa", {}, dict(CPU, tensor_parallel_size=4, nodes=4)),
                            ("gqa", {"head_dim": 16}, dict(CPU, tensor_parallel_size=4,
                                                           nodes=4))),
    "block_size_backend": ("error",
                           ("gqa", {}, dict(CPU, tensor_parallel_size=4, nodes=4,
                                            block_size=64)),
                           ("gqa", {}, dict(CPU, tensor_parallel_size=4, nodes=4,
                                            block_size=16))),
    "attention_heads_tp": ("error",
                           ("gqa", {}, {"tensor_parallel_size": 4, "nodes": 4}),
                           ("gqa", {}, {"tensor_parallel_size": 3, "nodes": 3})),
    "kv_heads_tp": ("error",
                    ("gqa", {}, {"tensor_parallel_size": 8, "nodes": 8}),
                    ("gqa", {"num_attention_heads": 48, "num_key_value_heads": 8},
                     {"tensor_parallel_size": 6, "nodes": 6})),
    # vLLM asserts num_heads % num_kv_heads == 0 per rank: 64 q / 48 KV heads never group.
    "gqa_group_per_rank": ("error",
                           ("gqa", {"num_key_value_heads": 16}, {}),
                           ("gqa", {"num_key_value_heads": 48}, {})),
    "vocab_tp": ("error",
                 ("gqa", {}, {"tensor_parallel_size": 4, "nodes": 4}),
                 ("gqa", {"num_attention_heads": 48, "num_key_value_heads": 6,
                          "vocab_size": 128000}, {"tensor_parallel_size": 6, "nodes": 6})),
    "moe_width_tp": ("error",
                     ("mla", {}, {"tensor_parallel_size": 4, "nodes": 4}),
                     ("mla", {"moe_intermediate_size": 2050},
                      {"tensor_parallel_size": 4, "nodes": 4})),
    "dense_mlp_tp": ("error",
                     ("gqa", {}, {"tensor_parallel_size": 4, "nodes": 4}),
                     ("gqa", {"intermediate_size": 14338}, {"tensor_parallel_size": 4,
                                                            "nodes": 4})),
    "virtual_heads_grouping": ("error",
                               ("mimo", {}, {"tensor_parallel_size": 3, "nodes": 3,
                                             "virtual_heads": True,
                                             "vllm_patches": MIMO_PATCHES}),
                               ("gqa", {"num_attention_heads": 60, "num_key_value_heads": 8},
                                {"tensor_parallel_size": 3, "nodes": 3,
                                 "virtual_heads": True})),
    "virtual_heads_patches": ("error",
                              ("mimo", {}, {"tensor_parallel_size": 3, "nodes": 3,
                                            "virtual_heads": True,
                                            "vllm_patches": MIMO_PATCHES}),
                              ("mimo", {}, {"tensor_parallel_size": 3, "nodes": 3,
                                            "virtual_heads": True})),
    "dcp_divides_tp": ("error",
                       ("mla", {}, {"tensor_parallel_size": 4, "nodes": 4,
                                    "decode_context_parallel_size": 2}),
                       ("mla", {}, {"tensor_parallel_size": 4, "nodes": 4,
                                    "decode_context_parallel_size": 3})),
    "dcp_gqa_kv_heads": ("error",
                         ("gqa", {}, {"tensor_parallel_size": 8, "nodes": 8,
                                      "decode_context_parallel_size": 2}),
                         ("gqa", {}, {"tensor_parallel_size": 4, "nodes": 4,
                                      "decode_context_parallel_size": 2})),
    "dcp_sliding_window": ("error",
                           ("hybrid", {}, {"tensor_parallel_size": 8, "nodes": 8}),
                           ("hybrid", {}, {"tensor_parallel_size": 8, "nodes": 8,
                                           "decode_context_parallel_size": 2})),
    "dcp_interleave": ("error",
                       ("glm", {}, dict(GLM_OK, cp_kv_cache_interleave_size=32)),
                       ("glm", {}, dict(GLM_OK, cp_kv_cache_interleave_size=128))),
    "dcp_mtp_draft_inherit": ("error",
                              ("glm", {}, dict(GLM_OK, speculative_config=MTP1,
                                               vllm_build=GLM_BUILD,
                                               vllm_patches=["draft-dcp-inherit"])),
                              ("glm", {}, dict(GLM_OK, speculative_config=MTP3,
                                               vllm_build=GLM_BUILD))),
    "dcp_indexer_topk": ("error",
                         ("glm", {}, GLM_OK),
                         ("glm", {"index_topk": 256}, GLM_OK)),
    "mtp_layers": ("error",
                   ("mla", {}, {"tensor_parallel_size": 4, "nodes": 4,
                                "speculative_config": MTP1}),
                   ("mla", {"num_nextn_predict_layers": 0},
                    {"tensor_parallel_size": 4, "nodes": 4, "speculative_config": MTP1})),
    "draft_tp": ("error",
                 ("mla", {}, {"tensor_parallel_size": 4, "nodes": 4, "speculative_config":
                              dict(MTP1, draft_tensor_parallel_size=1)}),
                 ("mla", {}, {"tensor_parallel_size": 4, "nodes": 4, "speculative_config":
                              dict(MTP1, draft_tensor_parallel_size=2)})),
    "pp_mtp": ("error",
               ("glm", {}, dict(GLM_OK, speculative_config=MTP1, vllm_build=GLM_BUILD,
                                vllm_patches=["draft-dcp-inherit"])),
               ("glm", {}, {"tensor_parallel_size": 1, "pipeline_parallel_size": 3,
                            "nodes": 4, "speculative_config": MTP1, "vllm_build": GLM_BUILD,
                            "max_model_len": 8192})),
    "async_scheduling_pp": ("error",
                            ("mla", {}, {"pipeline_parallel_size": 2, "nodes": 2,
                                         "vllm_build": GLM_BUILD}),
                            ("mla", {}, {"pipeline_parallel_size": 2, "nodes": 2,
                                         "async_scheduling": True, "vllm_build": GLM_BUILD})),
    "async_scheduling_spec": ("error",
                              ("gqa", {}, {"async_scheduling": True, "vllm_build": GLM_BUILD,
                                           "speculative_config": dict(EAGLE3)}),
                              ("gqa", {}, {"async_scheduling": True, "vllm_build": GLM_BUILD,
                                           "speculative_config": {
                                               "method": "ngram",
                                               "num_speculative_tokens": 3}})),
    "pp_layers": ("error",
                  ("gqa", {}, {"pipeline_parallel_size": 4, "nodes": 4}),
                  ("gqa", {}, {"pipeline_parallel_size": 8, "nodes": 8})),
    "cudagraph_no_valid_sizes": ("error",
                                 ("mla", {}, {"tensor_parallel_size": 4, "nodes": 4,
                                              "speculative_config": MTP4,
                                              "max_cudagraph_capture_size": 10,
                                              "vllm_build": GLM_BUILD}),
                                 ("mla", {}, {"tensor_parallel_size": 4, "nodes": 4,
                                              "speculative_config": MTP4,
                                              "max_cudagraph_capture_size": 5,
                                              "vllm_build": GLM_BUILD})),
    "cudagraph_sp_divisibility": ("error",
                                  ("mla", {}, {"tensor_parallel_size": 4, "nodes": 4,
                                               "speculative_config": MTP3,
                                               "sequence_parallelism": True,
                                               "vllm_build": GLM_BUILD}),
                                  ("mla", {}, {"tensor_parallel_size": 4, "nodes": 4,
                                               "speculative_config": MTP2,
                                               "sequence_parallelism": True,
                                               "vllm_build": GLM_BUILD})),
    "cudagraph_sequence_parallelism": ("error",
                                       ("mla", {}, {"tensor_parallel_size": 4, "nodes": 4,
                                                    "sequence_parallelism": True,
                                                    "vllm_build": GLM_BUILD}),
                                       ("mla", {}, {"tensor_parallel_size": 4, "nodes": 4,
                                                    "sequence_parallelism": True})),
    "cudagraph_explicit_consistency": ("error",
                                       ("mla", {}, {"tensor_parallel_size": 4, "nodes": 4,
                                                    "cudagraph_capture_sizes": [1, 2, 4],
                                                    "max_cudagraph_capture_size": 4}),
                                       ("mla", {}, {"tensor_parallel_size": 4, "nodes": 4,
                                                    "cudagraph_capture_sizes": [4, 8],
                                                    "max_cudagraph_capture_size": 16})),
    "cudagraph_truncated": ("warning",
                            ("mla", {}, {"tensor_parallel_size": 4, "nodes": 4,
                                         "max_cudagraph_capture_size": 8}),
                            ("mla", {}, {"tensor_parallel_size": 4, "nodes": 4,
                                         "max_cudagraph_capture_size": 6})),
    "cudagraph_decode_coverage": ("warning",
                                  ("mla", {}, {"tensor_parallel_size": 4, "nodes": 4,
                                               "speculative_config": MTP1, "max_num_seqs": 1,
                                               "max_cudagraph_capture_size": 4}),
                                  ("mla", {}, {"tensor_parallel_size": 4, "nodes": 4,
                                               "speculative_config": MTP1, "max_num_seqs": 64,
                                               "max_cudagraph_capture_size": 8})),
    "kv_cache_dtype": ("error",
                       ("mla", {}, {"tensor_parallel_size": 4, "nodes": 4,
                                    "kv_cache_dtype": "fp8"}),
                       ("mla", {}, {"tensor_parallel_size": 4, "nodes": 4,
                                    "kv_cache_dtype": "int3"})),
    "sparse_mla_backend": ("error",
                           ("glm", {}, GLM_OK),
                           ("glm", {}, dict(GLM_OK, kv_cache_dtype="bfloat16"))),
    "max_model_len": ("error",
                      ("gqa", {}, {"max_model_len": 8192}),
                      ("gqa", {}, {"max_model_len": 16384})),
    "scheduler_batch": ("error",
                        ("gqa", {}, {"max_num_seqs": 256, "max_num_batched_tokens": 2048}),
                        ("gqa", {}, {"max_num_seqs": 256, "max_num_batched_tokens": 128})),
    "kv_cache_fits": ("error",
                      ("glm", {}, GLM_OK),
                      ("glm", {}, dict(GLM_OK, decode_context_parallel_size=1))),
    "memory_fit": ("error",
                   ("glm", {}, GLM_OK),
                   ("glm", {}, {"tensor_parallel_size": 1, "nodes": 1, "kv_cache_dtype": "fp8",
                                "max_model_len": 8192})),
    "kv_cache_budget": ("warning",
                        ("glm", {}, GLM_OK),
                        ("glm", {}, dict(GLM_OK, kv_cache_memory_bytes=None))),
    "image_patches_known": ("warning",
                            ("glm", {}, dict(GLM_OK, vllm_patches=["draft-dcp-inherit"])),
                            ("glm", {}, dict(GLM_OK, vllm_patches=["draft-dcp-inheirt"]))),
}


def _run(write_config, case):
    base, overrides, options = case
    opts = dict(options)
    opts["model_config"] = write_config(base, **overrides)
    result = engine.evaluate(opts)
    return result


def _rules_in(result, severity):
    key = "violations" if severity == "error" else "warnings"
    return [f["rule"] for f in result[key]]


def test_every_rule_has_cases():
    assert sorted(CASES) == sorted(r.id for r in RULES)


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_fails(write_config, rule_id):
    severity, dummy, failing = CASES[rule_id]
    result = _run(write_config, failing)
    assert rule_id in _rules_in(result, severity), result["violations"] + result["warnings"]
    finding = [f for f in result["violations"] + result["warnings"] if f["rule"] == rule_id][0]
    assert finding["message"] and finding["fix"] and finding["source"]
    if severity == "error":
        assert result["satisfiable"] is False


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_passes(write_config, rule_id):
    dummy, passing, dummy = CASES[rule_id]
    result = _run(write_config, passing)
    found = [f["rule"] for f in result["violations"] + result["warnings"]]
    assert rule_id not in found, result["violations"] + result["warnings"]
