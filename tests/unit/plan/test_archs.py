"""What vLLM 0.33 does per architecture (plan/archs.py), on the suite's real configs."""
from __future__ import annotations

from ansible_collections.dgxspark.cluster.plugins.module_utils.plan import engine
from ansible_collections.dgxspark.cluster.plugins.module_utils.plan.archs import (
    eagle_architecture, mtp_support)
from ansible_collections.dgxspark.cluster.plugins.module_utils.plan.model import parse_model

from conftest import ROOT

MODELS = ROOT / "tests/fixtures/differential/models"


def _plan(model, **options):
    base = {"model_config": str(MODELS / model), "gpus_per_node": 1}
    base.update(options)
    return engine.evaluate(base)


def _rules(result, key="violations"):
    return [f["rule"] for f in result[key]]


def test_mtp_draft_by_architecture():
    assert mtp_support("Qwen3ForCausalLM", "qwen3", {}).supported is False
    qwen_next = mtp_support("Qwen3NextForCausalLM", "qwen3_next", {})
    assert qwen_next.supported and qwen_next.layers is None and not qwen_next.declared
    assert mtp_support("DeepseekV3ForCausalLM", "deepseek_v3",
                       {"num_nextn_predict_layers": 1}).layers == 1
    # Nemotron-H maps to an MTP draft only when the checkpoint declares MTP layers
    assert mtp_support("NemotronHForCausalLM", "nemotron_h", {}).supported is False
    assert mtp_support("NemotronHForCausalLM", "nemotron_h",
                       {"num_nextn_predict_layers": 1}).layers == 1
    assert mtp_support("MiMoV2FlashForCausalLM", "mimo_v2_flash", {}).layers == 1


def test_mtp_on_a_model_without_mtp_draft_is_vllms_unsupported_method():
    result = _plan("qwen3-32b", tensor_parallel_size=2, nodes=2,
                   speculative_config={"method": "mtp", "num_speculative_tokens": 1})
    found = [v for v in result["violations"] if v["rule"] == "mtp_layers"]
    assert found and found[0]["message"].startswith("Unsupported speculative method: 'mtp'")


def test_mtp_without_a_declared_layer_count_is_accepted_with_a_warning():
    result = _plan("qwen3-next-80b-a3b", tensor_parallel_size=2, nodes=2,
                   speculative_config={"method": "qwen3_next_mtp",
                                       "num_speculative_tokens": 2})
    assert result["satisfiable"], result["violations"]
    assert "mtp_layers" in _rules(result, "warnings")
    assert result["plan"]["speculative_config"]["method"] == "qwen3_next_mtp"


def test_gpt_oss_sets_its_own_capture_cap_unless_the_user_does():
    result = _plan("gpt-oss-120b", tensor_parallel_size=2, nodes=2)
    assert result["cudagraph_capture_sizes"][-1] == 1024
    assert "cudagraph_truncated" not in _rules(result, "warnings")
    small = _plan("gpt-oss-120b", tensor_parallel_size=2, nodes=2, max_num_batched_tokens=1000)
    assert small["cudagraph_capture_sizes"][-2:] == [992, 1000]
    assert "cudagraph_truncated" not in _rules(small, "warnings")
    user = _plan("gpt-oss-120b", tensor_parallel_size=2, nodes=2, max_cudagraph_capture_size=64)
    assert user["cudagraph_capture_sizes"][-1] == 64
    other = _plan("qwen3-32b", tensor_parallel_size=2, nodes=2)
    assert other["cudagraph_capture_sizes"][-1] == 512


def test_dcp_gqa_check_reads_the_configs_own_heads_only():
    # MiMo-V2-Flash: full layers 64 q / 4 kv pass vLLM's DCP check at TP8/DCP2; its
    # sliding-window layers (8 kv) fail later, at the worker, as sliding-window layers.
    result = _plan("mimo-v2-flash", tensor_parallel_size=8, nodes=8,
                   decode_context_parallel_size=2)
    assert "dcp_gqa_kv_heads" not in _rules(result)
    assert "dcp_sliding_window" in _rules(result)


def test_eagle_draft_architectures_follow_vllms_renaming():
    assert eagle_architecture("eagle3", "LlamaForCausalLMEagle3") == (
        "LlamaForCausalLMEagle3", True)
    assert eagle_architecture("eagle3", "Qwen3ForCausalLM") == ("Eagle3Qwen3ForCausalLM", True)
    assert eagle_architecture("eagle", "LlamaForCausalLM") == ("EagleLlamaForCausalLM", True)
    assert eagle_architecture("eagle", "LlamaForCausalLMEagle3") == (
        "EagleLlamaForCausalLMEagle3", False)


def test_a_draft_method_needs_a_draft():
    result = _plan("llama-3.1-70b", tensor_parallel_size=2, nodes=2,
                   speculative_config={"method": "eagle3", "num_speculative_tokens": 3})
    assert "spec_draft_model" in _rules(result)


def test_unmodelled_parts_are_named_in_warnings():
    warnings = [w["message"] for w in _plan("qwen3-next-80b-a3b", tensor_parallel_size=2,
                                            nodes=2)["warnings"]
                if w["rule"] == "architecture_known"]
    assert any("linear-attention" in w for w in warnings)
    nemotron = parse_model(str(MODELS / "nemotron-3-nano-30b-a3b"))
    assert any("Mamba" in note for note in nemotron.notes)
    assert parse_model(str(MODELS / "qwen3-32b")).notes == []


def test_unknown_architecture_is_never_a_silent_satisfiable(write_config):
    path = write_config("gqa", architectures=["FancyNewForCausalLM"])
    result = engine.evaluate({"model_config": path, "tensor_parallel_size": 4, "nodes": 4})
    assert result["satisfiable"]
    found = [w for w in result["warnings"] if w["rule"] == "architecture_known"]
    assert found and "only the generic rules" in found[0]["message"]


def test_modelopt_hf_quant_config_is_read_and_sets_the_auto_kv_dtype():
    # DeepSeek-V3.1-NVFP4 keeps its quantization in hf_quant_config.json (ModelOpt 0.29 layout)
    model = parse_model(str(MODELS / "deepseek-v3.1-nvfp4"))
    assert model.quant["method"] == "nvfp4" and model.quant["group_size"] == 16
    assert model.auto_kv_cache_dtype == "fp8_e4m3"
    auto = _plan("deepseek-v3.1-nvfp4", tensor_parallel_size=4, nodes=4,
                 kv_cache_memory_bytes=2 ** 30)
    bf16 = _plan("deepseek-v3.1-nvfp4", tensor_parallel_size=4, nodes=4,
                 kv_cache_dtype="bfloat16", kv_cache_memory_bytes=2 ** 30)
    assert auto["plan"]["kv_cache_dtype"] == "fp8_e4m3"
    assert auto["kv_cache"]["bytes_per_token"] * 2 == bf16["kv_cache"]["bytes_per_token"]


def test_a_modelopt_config_without_producer_keeps_auto():
    # vLLM sets quant_method modelopt only for producer "modelopt" (or the legacy layout);
    # without it the KV format stays auto although the weights are ModelOpt FP8.
    model = parse_model(str(MODELS / "nemotron-3-super-120b-a12b-fp8"))
    assert model.quant["method"] == "fp8" and model.auto_kv_cache_dtype is None
    result = _plan("nemotron-3-super-120b-a12b-fp8", tensor_parallel_size=2, nodes=2)
    assert result["plan"]["kv_cache_dtype"] == "auto"


def test_deepseek_v32_turns_bfloat16_kv_into_auto():
    result = _plan("deepseek-v3.2-nvfp4", tensor_parallel_size=4, nodes=4,
                   kv_cache_dtype="bfloat16")
    assert result["plan"]["kv_cache_dtype"] == "auto"
    assert "sparse_mla_backend" not in _rules(result)
