"""Regression tests for the plan engine's tracebacks, hangs and wrong verdicts (issue 11).

Each input once crashed vllm_plan (ansible-core showed `Module failed: <python message>`),
ran for hours, or gave a wrong verdict. Now each gives the planner's own error naming the
option or config field, the value and the fix, or the right verdict.
"""
from __future__ import annotations

import json
import os

import pytest
import yaml

from ansible_collections.dgxspark.cluster.plugins.module_utils.plan import engine, kvcache, request
from ansible_collections.dgxspark.cluster.plugins.module_utils.plan.errors import (
    ModelConfigError, PlanInputError, returned, shown)
from ansible_collections.dgxspark.cluster.plugins.module_utils.plan.model import (
    MAX_CONFIG_BYTES)

from conftest import GLM, MIMO, ROOT


def refused(options, option):
    with pytest.raises(PlanInputError) as err:
        engine.evaluate(dict({"model_config": GLM}, **options))
    assert err.value.option == option, str(err.value)
    assert option in str(err.value) and "Fix:" in str(err.value)
    return err.value


def config_refused(path, field=None):
    with pytest.raises(ModelConfigError) as err:
        engine.evaluate({"model_config": path})
    assert err.value.field == field, str(err.value)
    return err.value


# --- pipeline parallelism beyond the layers -------------------------------------------------

def test_pp_50_on_mimo_is_the_pp_layers_violation_not_a_crash():
    # MiMo's 48 layers over 50 stages: a stage without layers once crashed the KV estimate
    # ("max() arg is an empty sequence").
    result = engine.evaluate({"model_config": MIMO, "pipeline_parallel_size": 50,
                              "kv_cache_memory_bytes": 10 ** 9})
    assert not result["satisfiable"]
    assert "pp_layers" in [v["rule"] for v in result["violations"]]


@pytest.mark.parametrize("total, parts, split", [
    (1, [3, 3], [1, 0]),          # one full layer of six, PP2: it is not rounded away
    (9, [16, 16, 16], [3, 3, 3]),
    (5, [2, 2, 2], [2, 2, 1]),
    (0, [4, 4], [0, 0]),
    (48, [1] * 48 + [0, 0], [1] * 48 + [0, 0]),
])
def test_layers_of_a_kind_are_split_over_stages_without_loss(total, parts, split):
    assert kvcache.apportion(total, parts) == split


def test_a_hybrid_model_at_pp2_keeps_its_full_attention_layer(write_config):
    # 1 full + 5 sliding-window layers: rounding each stage's share (0.5) lost the full layer
    # and gave 0 KV bytes per token
    result = engine.evaluate({"model_config": write_config("hybrid"), "pipeline_parallel_size": 2,
                              "kv_cache_memory_bytes": 10 ** 9})
    assert result["kv_cache"]["bytes_per_token"] > 0


def test_suggest_on_50_nodes_skips_stages_without_layers():
    rows = engine.suggest({"model_config": MIMO, "nodes": 50})
    assert rows and all(r["pipeline_parallel_size"] <= 48 for r in rows)


# --- bounds ---------------------------------------------------------------------------------

@pytest.mark.parametrize("options, option", [
    ({"tensor_parallel_size": 10 ** 9, "decode_context_parallel_size": 3},
     "tensor_parallel_size"),
    ({"pipeline_parallel_size": 10 ** 7}, "pipeline_parallel_size"),
    ({"max_cudagraph_capture_size": 10 ** 9, "max_num_batched_tokens": 10 ** 7},
     "max_cudagraph_capture_size"),
    ({"cudagraph_capture_sizes": [1, 10 ** 12]}, "cudagraph_capture_sizes"),
    ({"max_num_batched_tokens": 10 ** 12}, "max_num_batched_tokens"),
    ({"nodes": 10 ** 6}, "nodes"),
    ({"kv_cache_memory_bytes": 10 ** 400}, "kv_cache_memory_bytes"),
    ({"kv_cache_memory_bytes": "1" + "0" * 400}, "kv_cache_memory_bytes"),
    ({"max_model_len": 10 ** 5000}, "max_model_len"),  # beyond repr's 4300-digit limit
])
def test_out_of_bounds_values_are_refused_naming_the_bound(options, option):
    err = refused(options, option)
    bound = request.OPTIONS[option].bounds_text()
    assert bound in err.problem


def test_a_capture_list_longer_than_the_bound_is_refused():
    err = refused({"cudagraph_capture_sizes": list(range(1, request.MAX_CAPTURE_SIZES + 2))},
                  "cudagraph_capture_sizes")
    assert "more than %d" % request.MAX_CAPTURE_SIZES in err.problem


@pytest.mark.parametrize("recipe", sorted(p.name for p in (ROOT / "recipes/vars").glob("*.yml")))
def test_the_bounds_let_every_shipped_recipe_plan_through(recipe):
    data = yaml.safe_load((ROOT / "recipes/vars" / recipe).read_text())
    if "recipe_plan" not in data:
        pytest.skip("no plan")
    plan = request.PlanRequest(dict(data["recipe_plan"], model_config="x"))
    assert plan.tensor_parallel_size >= 1


def test_suggest_with_a_million_nodes_is_refused_at_once():
    with pytest.raises(PlanInputError) as err:
        engine.suggest({"model_config": GLM, "nodes": 10 ** 6})
    assert err.value.option == "nodes"


def test_config_with_1e10_layers_is_refused_naming_the_field(write_config):
    err = config_refused(write_config("gqa", num_hidden_layers=10 ** 10), "num_hidden_layers")
    assert "10000000000" in str(err)


def test_dcp_fix_lists_a_few_divisors_not_a_range():
    result = engine.evaluate({"model_config": GLM, "tensor_parallel_size": 512, "nodes": 64,
                              "gpus_per_node": 8, "decode_context_parallel_size": 3})
    fix = [v["fix"] for v in result["violations"] if v["rule"] == "dcp_divides_tp"][0]
    assert fix == ("use a decode_context_parallel_size that divides 512 "
                   "(1, 2, 4, 8, 16, 32, 64, 128 and 2 more)")


# --- malformed option values ----------------------------------------------------------------

@pytest.mark.parametrize("options, option", [
    ({"max_model_len": "--1"}, "max_model_len"),
    ({"max_model_len": "-1"}, "max_model_len"),
    ({"tensor_parallel_size": "4x"}, "tensor_parallel_size"),
    ({"block_size": 0}, "block_size"),
    ({"kv_cache_memory_bytes": -5}, "kv_cache_memory_bytes"),
    ({"model_config": ["a", "list"]}, "model_config"),
    ({"model_config": "a\0b"}, "model_config"),
    ({"dtype": "bfloat"}, "dtype"),
    ({"speculative_config": {"method": ["mtp"], "num_speculative_tokens": 1}},
     "speculative_config.method"),
    ({"speculative_config": {"method": "eagle3", "num_speculative_tokens": 1,
                             "model": {"a": 1}}}, "speculative_config.model"),
    ({"speculative_config": {"method": "ngram", "num_speculative_tokens": 1,
                             "prompt_lookup_min": "x"}}, "speculative_config.prompt_lookup_min"),
    ({"speculative_config": {"method": "mtp", "num_speculative_tokens": 10 ** 6}},
     "speculative_config.num_speculative_tokens"),
    ({"vllm_build": {"base": ["vllm-0.33"], "model_runner": "v1",
                     "draft_inherits_dcp": False, "pp_with_mtp": False}}, "vllm_build.base"),
    ({"vllm_build": {"name": ["x"], "model_runner": "v1", "draft_inherits_dcp": False,
                     "pp_with_mtp": False}}, "vllm_build.name"),
    ({"vllm_build": {"model_runner": "v1", "draft_inherits_dcp": False, "pp_with_mtp": False,
                     "cudagraph_ceiling": 10 ** 9}}, "vllm_build.cudagraph_ceiling"),
])
def test_malformed_values_are_refused_naming_the_option(options, option):
    refused(options, option)


def test_a_typo_names_the_closest_option():
    err = refused({"tensor_paralel_size": 3}, "tensor_paralel_size")
    assert "did you mean tensor_parallel_size?" in err.fix


def test_a_typo_in_speculative_config_names_the_closest_key():
    err = refused({"speculative_config": {"method": "mtp", "num_speculative_token": 1}},
                  "speculative_config.num_speculative_token")
    assert "did you mean num_speculative_tokens?" in err.fix


def test_a_plan_with_non_string_keys_is_refused_not_a_type_error():
    with pytest.raises(PlanInputError) as err:
        engine.evaluate({"model_config": GLM, 3: "x"})
    assert err.value.option == 3


def test_integral_floats_and_digit_strings_are_integers():
    result = engine.evaluate({"model_config": GLM, "tensor_parallel_size": "4", "nodes": 4.0})
    assert result["plan"]["tensor_parallel_size"] == 4 and result["plan"]["nodes"] == 4


def test_shown_never_raises_and_stays_short():
    assert shown(10 ** 5000).startswith("<an integer of")
    assert len(shown("x" * 10 ** 6)) < 200


# --- config.json: the file ------------------------------------------------------------------

def test_a_directory_named_config_json(tmp_path):
    (tmp_path / "config.json").mkdir()
    err = config_refused(str(tmp_path))
    assert "is a directory" in err.problem


def test_a_fifo(tmp_path):
    fifo = tmp_path / "config.json"
    os.mkfifo(fifo)
    err = config_refused(str(fifo))
    assert "FIFO" in err.problem


def test_a_symlink_loop(tmp_path):
    loop = tmp_path / "config.json"
    os.symlink(loop, loop)
    err = config_refused(str(tmp_path / "config.json"))
    assert "symbolic link loop" in err.problem


def test_a_character_device():
    err = config_refused("/dev/zero")
    assert "character device" in err.problem


def test_a_missing_file(tmp_path):
    err = config_refused(str(tmp_path / "nope" / "config.json"))
    assert "does not exist" in err.problem


def test_proc_self_mem_cannot_be_read():
    err = config_refused("/proc/self/mem")
    assert "cannot be read" in err.problem


def test_a_huge_file_is_refused_by_its_size_before_it_is_read(tmp_path):
    big = tmp_path / "config.json"
    with open(big, "wb") as handle:
        handle.truncate(2 ** 30)  # a sparse 1 GiB file
    err = config_refused(str(big))
    assert str(2 ** 30) in err.problem and str(MAX_CONFIG_BYTES) in err.problem


def test_a_100k_deep_json(tmp_path):
    (tmp_path / "config.json").write_text("[" * 100000 + "]" * 100000)
    err = config_refused(str(tmp_path))
    assert "too deeply" in err.problem


def test_not_utf8(tmp_path):
    (tmp_path / "config.json").write_bytes(b"{\"model_type\": \"\xff\xfe\"}")
    err = config_refused(str(tmp_path))
    assert "not valid JSON" in err.problem


def test_a_broken_hf_quant_config_is_named(write_config):
    path = write_config("gqa")
    with open(os.path.join(path, "hf_quant_config.json"), "w") as handle:
        handle.write("[1, 2]")
    err = config_refused(path)
    assert "hf_quant_config.json is not a JSON object" in err.problem


# --- config.json: its fields ----------------------------------------------------------------

@pytest.mark.parametrize("overrides, field", [
    ({"head_dim": "64"}, "head_dim"),
    ({"head_dim": 0}, "head_dim"),
    ({"head_dim": -64}, "head_dim"),
    ({"intermediate_size": "14336"}, "intermediate_size"),
    ({"architectures": {"LlamaForCausalLM": 1}}, "architectures"),
    ({"architectures": "LlamaForCausalLM"}, "architectures"),
    ({"model_type": ["llama"]}, "model_type"),
    ({"num_key_value_heads": 4.5}, "num_key_value_heads"),
    ({"max_position_embeddings": True}, "max_position_embeddings"),
    ({"num_nextn_predict_layers": "one"}, "num_nextn_predict_layers"),
    ({"vocab_size": 1e400}, "vocab_size"),
])
def test_malformed_config_fields_are_named(write_config, overrides, field):
    err = config_refused(write_config("gqa", **overrides), field)
    assert "correct the field '%s'" % field in err.fix


@pytest.mark.parametrize("base, overrides, field", [
    ("hybrid", {"sliding_window_size": "128"}, "sliding_window_size"),
    ("hybrid", {"hybrid_layer_pattern": [0, 1, 1, 1, 1, [1]]}, "hybrid_layer_pattern"),
    ("hybrid", {"moe_intermediate_size": "2048"}, "moe_intermediate_size"),
    ("mla", {"q_lora_rank": "1536"}, "q_lora_rank"),
    ("mla", {"quantization_config": {"quant_method": "modelopt", "quant_algo": "NVFP4",
                                     "group_size": "16"}}, "quantization_config.group_size"),
])
def test_malformed_fields_of_other_attention_kinds_are_named(write_config, base, overrides,
                                                             field):
    config_refused(write_config(base, **overrides), field)


def test_nemotron_mtp_count_that_is_not_a_number(write_config):
    path = write_config("gqa", model_type="nemotron_h", num_nextn_predict_layers="x")
    config_refused(path, "num_nextn_predict_layers")


def test_a_draft_with_a_dict_architectures_is_a_warning_not_a_crash(write_config):
    draft = write_config("gqa", architectures={"x": 1})
    result = engine.evaluate({"model_config": GLM, "tensor_parallel_size": 4, "nodes": 4,
                              "speculative_config": {"method": "eagle3", "model": draft,
                                                     "num_speculative_tokens": 2}})
    assert "spec_draft_readable" in [w["rule"] for w in result["warnings"]]


def test_nvfp4_kv_of_one_byte_heads_gives_no_capacity_not_a_division_by_zero(write_config):
    path = write_config("gqa", head_dim=1)
    result = engine.evaluate({"model_config": path, "kv_cache_dtype": "nvfp4",
                              "kv_cache_memory_bytes": 10 ** 9})
    assert result["kv_cache"]["tokens"] is None
    assert "kv_cache_budget" in [w["rule"] for w in result["warnings"]]


# --- wrong verdicts ---------------------------------------------------------------------------

def test_64_q_over_48_kv_heads_is_refused(write_config):
    result = engine.evaluate({"model_config": write_config("gqa", num_key_value_heads=48)})
    assert not result["satisfiable"]
    assert [v["rule"] for v in result["violations"]] == ["gqa_group_per_rank"]


def test_eagle_without_a_draft_model_is_refused():
    # fixed by the differential-suite work (rule spec_draft_model); kept as a regression test
    result = engine.evaluate({"model_config": GLM, "tensor_parallel_size": 4, "nodes": 4,
                              "speculative_config": {"method": "eagle",
                                                     "num_speculative_tokens": 2}})
    assert "spec_draft_model" in [v["rule"] for v in result["violations"]]


def _fits_fix(options):
    result = engine.evaluate(options)
    return [v["fix"] for v in result["violations"] if v["rule"] == "kv_cache_fits"][0]


GLM_128K = {"model_config": GLM, "tensor_parallel_size": 4, "nodes": 4, "kv_cache_dtype": "fp8",
            "max_model_len": 131072, "max_num_seqs": 1, "max_num_batched_tokens": 1024}


def test_kv_fix_never_says_lower_max_model_len_to_about_0():
    fix = _fits_fix(dict(GLM_128K, kv_cache_memory_bytes=1000))
    assert "max_model_len" not in fix and "raise kv_cache_memory_bytes" in fix


def test_kv_fix_raises_dcp_only_where_the_dcp_rules_allow_it():
    # TP4 on GLM: DCP4 is allowed and makes one 128K request fit.
    fix = _fits_fix(dict(GLM_128K, kv_cache_memory_bytes=1810000000))
    assert "raise decode_context_parallel_size to 4" in fix
    # the same plan on the fork without the draft-DCP patch: MTP3 forbids DCP there
    fix = _fits_fix(dict(GLM_128K, kv_cache_memory_bytes=1810000000,
                         vllm_build="glm52-b12x-eldritch",
                         speculative_config={"method": "mtp", "num_speculative_tokens": 3}))
    assert "decode_context_parallel_size" not in fix
    # ... while MTP1 only warns there (lower acceptance), so DCP4 remains a fix
    fix = _fits_fix(dict(GLM_128K, kv_cache_memory_bytes=1810000000,
                         vllm_build="glm52-b12x-eldritch",
                         speculative_config={"method": "mtp", "num_speculative_tokens": 1}))
    assert "raise decode_context_parallel_size to 4" in fix
    # MiMo has sliding-window layers: DCP is never allowed
    fix = _fits_fix({"model_config": MIMO, "tensor_parallel_size": 4, "nodes": 4,
                     "kv_cache_memory_bytes": 10 ** 9})
    assert "decode_context_parallel_size" not in fix and "lower max_model_len" in fix


def test_satisfiable_plans_have_positive_sizes():
    result = engine.evaluate(dict(GLM_128K, decode_context_parallel_size=4,
                                  kv_cache_memory_bytes=1810000000))
    assert result["satisfiable"] and result["kv_cache"]["bytes_per_token"] > 0


def test_error_values_survive_json():
    # the module returns the value: an integer beyond repr's limit would fail the JSON result
    err = refused({"max_model_len": 10 ** 5000}, "max_model_len")
    assert json.loads(json.dumps(returned(err.value))).startswith("<an integer of")
    assert returned(4) == 4 and returned("fp8") == "fp8"
