"""The plans the preflight must get right (issue #3, "Must come out right")."""
from __future__ import annotations

import pytest

from ansible_collections.dgxspark.cluster.plugins.module_utils.plan import engine
from ansible_collections.dgxspark.cluster.plugins.module_utils.plan.errors import (
    ModelConfigError, PlanInputError)

from conftest import GLM, MIMO

MIMO_PLAN = {"model_config": MIMO, "tensor_parallel_size": 3, "nodes": 3,
             "speculative_config": {"method": "mtp", "num_speculative_tokens": 2},
             "kv_cache_dtype": "fp8_e4m3", "max_model_len": 1000000, "max_num_seqs": 6,
             "max_num_batched_tokens": 8192, "block_size": 32, "async_scheduling": False,
             "vllm_build": "mimo-v25-tp3"}
GLM_PLAN = {"model_config": GLM, "nodes": 4, "tensor_parallel_size": 4,
            "decode_context_parallel_size": 4,
            "speculative_config": {"method": "mtp", "num_speculative_tokens": 1},
            "max_cudagraph_capture_size": 4, "kv_cache_dtype": "fp8",
            "kv_cache_memory_bytes": 1810000000, "max_model_len": 131072, "max_num_seqs": 1,
            "max_num_batched_tokens": 1024, "vllm_build": "glm52-b12x-eldritch",
            "vllm_patches": ["draft-dcp-inherit"]}


def rules(result):
    return [v["rule"] for v in result["violations"]]


def test_mimo_tp3_needs_virtual_heads():
    result = engine.evaluate(MIMO_PLAN)
    assert not result["satisfiable"]
    assert {"attention_heads_tp", "kv_heads_tp", "vocab_tp", "moe_width_tp"} <= set(rules(result))
    assert result["padding"]["applied"] is False and result["padding"]["needed"] is True


def test_mimo_tp3_virtual_heads_padding():
    plan = dict(MIMO_PLAN, virtual_heads=True,
                vllm_patches=["virtual-heads", "moe-zero-fill", "sink-padding"])
    result = engine.evaluate(plan)
    assert result["satisfiable"], result["violations"]
    pad = result["padding"]
    full, swa = pad["attention"]
    assert (full["layer_type"], full["q_heads"], full["kv_heads"]) == ("full", [64, 96], [4, 6])
    assert (full["q_per_rank"], full["kv_per_rank"]) == (32, 2)
    # SWA layers are padded too; the published mod ends with 4 KV heads per rank there.
    assert (swa["layer_type"], swa["q_heads"], swa["kv_heads"]) == ("sliding_window", [64, 96],
                                                                    [8, 12])
    assert swa["kv_per_rank"] == 4
    assert swa["sink_len_per_rank"] == 32  # the 96 padded heads over 3 ranks, not 64 // 3 = 21
    assert pad["vocab"] == [152576, 152640]
    # as the published mod pads it (config/model.py: 2048 -> 2112, 704 per rank)
    assert pad["moe_intermediate"] == [2048, 2112]
    assert pad["patches"] == ["virtual-heads", "moe-zero-fill", "sink-padding"]
    assert pad["served_by"] == {"heads": "virtual-heads", "vocab": "virtual-heads",
                                "moe": "moe-zero-fill", "dense": "virtual-heads",
                                "sinks": "sink-padding"}
    assert pad["hf_overrides"]["virtual_heads"]["tensor_parallel_size"] == 3
    per = result["per_rank"]["attention"]
    assert [(a["q_heads"], a["kv_heads"]) for a in per] == [(32, 2), (32, 4)]
    assert pad["kv_pad_bytes_per_token"] > 0


def test_mimo_tp3_virtual_heads_names_missing_patches():
    result = engine.evaluate(dict(MIMO_PLAN, virtual_heads=True))
    assert not result["satisfiable"]
    assert result["patches"]["missing"] == ["moe-zero-fill", "sink-padding", "virtual-heads"]
    text = " ".join(v["message"] for v in result["violations"])
    for patch in ("virtual-heads", "moe-zero-fill", "sink-padding"):
        assert "'%s'" % patch in text


def test_glm_published_plan_matches_vllm_log():
    result = engine.evaluate(GLM_PLAN)
    assert result["satisfiable"], result["violations"]
    kv = result["kv_cache"]
    # vLLM logged: GPU KV cache size: 132,096 tokens; Maximum concurrency ... 1.01x
    assert kv["tokens"] == 132096
    assert round(kv["max_concurrency"], 2) == 1.01
    assert kv["cache_dtype"] == "fp8_ds_mla" and kv["block_size"] == 64
    # 79 MLA layers (78 + MTP) x 656 B + 22 indexer caches (21 + MTP) x 132 B
    assert kv["bytes_per_token"] == 79 * 656 + 22 * 132
    assert result["cudagraph_capture_sizes"] == [2, 4]


@pytest.mark.parametrize("n,cap,sizes", [
    # Recorded from real vLLM 0.33.0 with --model-runner v1 (vllm-oracle verdicts table).
    (1, 2, [2]), (1, 3, [2]), (1, 4, [2, 4]), (1, 10, [2, 4, 8]),
    (2, 3, None), (2, 4, [3]), (2, 10, [3, 6]),
    (3, 4, [4]), (3, 5, [4]), (3, 10, [4, 8]),
    (4, 4, None), (4, 5, None), (4, 6, None), (4, 10, [5]),
])
def test_mtp_capture_rounding_on_runner_v1(write_config, n, cap, sizes):
    plan = {"model_config": write_config("mla"), "tensor_parallel_size": 4, "nodes": 4,
            "speculative_config": {"method": "mtp", "num_speculative_tokens": n},
            "max_cudagraph_capture_size": cap, "max_model_len": 8192,
            "max_num_seqs": 1024, "max_num_batched_tokens": 8192,
            "vllm_build": {"model_runner": "v1", "draft_inherits_dcp": True,
                           "pp_with_mtp": True}}
    result = engine.evaluate(plan)
    if sizes is None:
        assert rules(result) == ["cudagraph_no_valid_sizes"]
        assert "No valid cudagraph sizes after rounding to multiple of %d" % (n + 1) in \
            result["violations"][0]["message"]
    else:
        assert result["satisfiable"], result["violations"]
        assert result["cudagraph_capture_sizes"] == sizes


@pytest.mark.parametrize("n,cap,sizes", [
    # vLLM 0.33.0 (runner V2, auto): the cap is snapped to the ladder, no rounding.
    (1, 2, [1, 2]), (2, 3, [1, 2]), (4, 5, [1, 2, 4]), (4, 6, [1, 2, 4]), (4, 10, [1, 2, 4, 8]),
])
def test_mtp_capture_on_vllm_033(write_config, n, cap, sizes):
    plan = {"model_config": write_config("mla"), "tensor_parallel_size": 4, "nodes": 4,
            "speculative_config": {"method": "mtp", "num_speculative_tokens": n},
            "max_cudagraph_capture_size": cap, "max_model_len": 8192,
            "max_num_seqs": 1024, "max_num_batched_tokens": 8192}
    result = engine.evaluate(plan)
    assert result["satisfiable"], result["violations"]
    assert result["cudagraph_capture_sizes"] == sizes


def test_mtp4_cap5_on_the_glm_build_fails_and_says_why():
    result = engine.evaluate(dict(GLM_PLAN, max_num_seqs=1, max_cudagraph_capture_size=5,
                                  speculative_config={"method": "mtp",
                                                      "num_speculative_tokens": 4}))
    assert "cudagraph_no_valid_sizes" in rules(result)
    violation = [v for v in result["violations"] if v["rule"] == "cudagraph_no_valid_sizes"][0]
    assert "multiple of 5" in violation["message"] and "8" in violation["fix"]
    ok = engine.evaluate(dict(GLM_PLAN, max_cudagraph_capture_size=10,
                              speculative_config={"method": "mtp",
                                                  "num_speculative_tokens": 4}))
    assert "cudagraph_no_valid_sizes" not in rules(ok)
    assert ok["cudagraph_capture_sizes"] == [5]


def test_dcp4_mtp3_without_draft_fix_names_the_patch():
    plan = dict(GLM_PLAN, vllm_patches=[],
                speculative_config={"method": "mtp", "num_speculative_tokens": 3})
    result = engine.evaluate(plan)
    assert not result["satisfiable"]
    assert "dcp_mtp_draft_inherit" in rules(result)
    assert "draft-dcp-inherit" in result["patches"]["missing"]
    # On upstream 0.33 the draft inherits DCP: no patch needed.
    upstream = engine.evaluate(dict(plan, vllm_build="vllm-0.33"))
    assert "dcp_mtp_draft_inherit" not in rules(upstream)


def test_dcp4_mtp1_without_draft_fix_serves_with_a_warning():
    """The June production plan (TP4/DCP4/MTP1 on the fork without the fix) boots and serves
    at lower acceptance: a warning naming the patch, not a violation, and no patch missing."""
    plan = dict(GLM_PLAN, vllm_patches=[])
    result = engine.evaluate(plan)
    assert result["satisfiable"], result["violations"]
    warning = [w for w in result["warnings"] if w["rule"] == "dcp_mtp_draft_inherit"]
    assert len(warning) == 1 and warning[0]["severity"] == "warning"
    assert "0.74" in warning[0]["message"] and "draft-dcp-inherit" in warning[0]["fix"]
    assert "num_speculative_tokens 1" in warning[0]["message"]
    assert result["patches"]["missing"] == [] and result["patches"]["required"] == []
    # with the patch: no finding at all
    fixed = engine.evaluate(GLM_PLAN)
    assert "dcp_mtp_draft_inherit" not in [f["rule"] for f in fixed["warnings"] +
                                           fixed["violations"]]


@pytest.mark.parametrize("tokens", [2, 3, 4])
def test_dcp4_mtp_above_1_without_draft_fix_is_an_error_naming_the_patch(tokens):
    plan = dict(GLM_PLAN, vllm_patches=[], max_cudagraph_capture_size=10,
                speculative_config={"method": "mtp", "num_speculative_tokens": tokens})
    result = engine.evaluate(plan)
    found = [v for v in result["violations"] if v["rule"] == "dcp_mtp_draft_inherit"]
    assert not result["satisfiable"] and len(found) == 1
    assert "num_speculative_tokens %d" % tokens in found[0]["message"]
    assert "'draft-dcp-inherit'" in found[0]["fix"]
    assert result["patches"]["missing"] == ["draft-dcp-inherit"]
    assert "dcp_mtp_draft_inherit" not in [w["rule"] for w in result["warnings"]]


def test_pp3_with_mtp_on_a_build_without_support():
    plan = dict(GLM_PLAN, tensor_parallel_size=1, pipeline_parallel_size=3,
                decode_context_parallel_size=1, nodes=3)
    result = engine.evaluate(plan)
    assert "pp_mtp" in rules(result)
    upstream = engine.evaluate(dict(plan, vllm_build="vllm-0.33"))
    assert "pp_mtp" not in rules(upstream)


def test_glm_tp3_without_padding_lists_heads_and_vocab():
    result = engine.evaluate({"model_config": GLM, "tensor_parallel_size": 3, "nodes": 3})
    found = rules(result)
    assert "attention_heads_tp" in found and "vocab_tp" in found
    padded = engine.evaluate({"model_config": GLM, "tensor_parallel_size": 3, "nodes": 3,
                              "virtual_heads": True,
                              "vllm_patches": ["virtual-heads", "moe-zero-fill"]})
    # the padding passes every shape rule; GLM-5.2 (about 440 GB) just does not fit 3 Sparks
    assert rules(padded) == ["memory_fit"], padded["violations"]
    assert "at least 4 Sparks" in padded["violations"][0]["fix"]
    assert padded["padding"]["attention"][0]["q_heads"] == [64, 66]
    assert padded["padding"]["vocab"] == [154880, 154944]


@pytest.mark.parametrize("options,option", [
    ({"tensor_parallel_size": -2}, "tensor_parallel_size"),
    ({"max_model_len": 0}, "max_model_len"),
    ({"kv_cache_memory_bytes": -1}, "kv_cache_memory_bytes"),
    ({"cudagraph_capture_sizes": [1, -4]}, "cudagraph_capture_sizes"),
    ({"speculative_config": {"method": "mtp", "num_speculative_tokens": 0}},
     "speculative_config.num_speculative_tokens"),
    ({"speculative_config": {"method": "mtp"}}, "speculative_config.num_speculative_tokens"),
    ({"speculative_config": {"method": "mtp", "num_speculative_tokens": 1,
                             "tensor_parallel_size": 4}},
     "speculative_config.tensor_parallel_size"),
    ({"speculative_config": {"method": "medusa2", "num_speculative_tokens": 1}},
     "speculative_config.method"),
    ({"vllm_build": "vllm-9.9"}, "vllm_build"),
    ({"vllm_build": {"model_runner": "v3", "draft_inherits_dcp": True, "pp_with_mtp": True}},
     "vllm_build.model_runner"),
    ({"vllm_build": {"model_runner": "v1"}}, "vllm_build"),
    ({"virtual_heads": "maybe"}, "virtual_heads"),
    ({"tensor_parallel_szie": 4}, "tensor_parallel_szie"),
])
def test_malformed_options_name_the_option(options, option):
    plan = dict({"model_config": GLM}, **options)
    with pytest.raises(PlanInputError) as err:
        engine.evaluate(plan)
    assert err.value.option == option
    assert option in str(err.value) and "Fix:" in str(err.value)


def test_tp_larger_than_nodes_is_a_violation_naming_the_options():
    result = engine.evaluate({"model_config": GLM, "tensor_parallel_size": 8, "nodes": 4})
    violation = [v for v in result["violations"] if v["rule"] == "world_size"][0]
    assert "tensor_parallel_size 8" in violation["message"] and "nodes 4" in violation["message"]


def test_unknown_kv_cache_dtype_is_a_violation():
    result = engine.evaluate({"model_config": GLM, "tensor_parallel_size": 4, "nodes": 4,
                              "kv_cache_dtype": "fp7"})
    violation = [v for v in result["violations"] if v["rule"] == "kv_cache_dtype"][0]
    assert "'fp7'" in violation["message"] and "fp8" in violation["message"]
    # one finding for one mistake: the sparse-MLA rule does not repeat it
    assert [v["rule"] for v in result["violations"]] == ["kv_cache_dtype"]


@pytest.mark.parametrize("drop,field", [
    ("num_attention_heads", "num_attention_heads"),
    ("vocab_size", "vocab_size"),
    ("kv_lora_rank", "kv_lora_rank"),
    ("index_head_dim", "index_head_dim"),
])
def test_missing_config_field_is_named(write_config, drop, field):
    path = write_config("glm", **{drop: None})
    with pytest.raises(ModelConfigError) as err:
        engine.evaluate({"model_config": path, "tensor_parallel_size": 4})
    assert err.value.field == field and field in str(err.value)


def test_missing_hybrid_field_is_named(write_config):
    path = write_config("mimo", swa_num_key_value_heads=None)
    with pytest.raises(ModelConfigError) as err:
        engine.evaluate({"model_config": path, "tensor_parallel_size": 4})
    assert err.value.field == "swa_num_key_value_heads"


def test_broken_json_is_named(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelConfigError) as err:
        engine.evaluate({"model_config": str(tmp_path)})
    assert "not valid JSON" in str(err.value)


def test_suggestions_for_glm_on_four_nodes():
    rows = engine.suggest({"model_config": GLM, "nodes": 4, "kv_cache_dtype": "fp8",
                           "kv_cache_memory_bytes": 1810000000, "max_model_len": 131072,
                           "max_num_seqs": 1, "max_num_batched_tokens": 1024})
    plans = {(r["tensor_parallel_size"], r["pipeline_parallel_size"],
              r["decode_context_parallel_size"], r["num_speculative_tokens"]) for r in rows}
    assert (4, 1, 4, 1) in plans
    # TP4 without DCP cannot hold one 128K request in 1.81 GB: not suggested.
    assert not any(p[0] == 4 and p[2] == 1 for p in plans)
    # every suggestion is satisfiable when evaluated on its own
    for row in rows[:5]:
        options = {"model_config": GLM, "nodes": 4, "kv_cache_dtype": "fp8",
                   "kv_cache_memory_bytes": 1810000000, "max_model_len": 131072,
                   "max_num_seqs": 1, "max_num_batched_tokens": 1024,
                   "tensor_parallel_size": row["tensor_parallel_size"],
                   "pipeline_parallel_size": row["pipeline_parallel_size"],
                   "decode_context_parallel_size": row["decode_context_parallel_size"],
                   "max_cudagraph_capture_size": row["max_cudagraph_capture_size"]}
        if row["num_speculative_tokens"]:
            options["speculative_config"] = {"method": "mtp",
                                             "num_speculative_tokens":
                                             row["num_speculative_tokens"]}
        assert engine.evaluate(options)["satisfiable"]
    assert rows[0]["kv_tokens"] >= rows[-1]["kv_tokens"]
