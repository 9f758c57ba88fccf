"""Unit tests of the plan engine's parts: config parsing, capture sizes, padding, KV cache."""
from __future__ import annotations

import pytest

from ansible_collections.dgxspark.cluster.plugins.module_utils.plan import cudagraph, kvcache
from ansible_collections.dgxspark.cluster.plugins.module_utils.plan.builds import resolve_build
from ansible_collections.dgxspark.cluster.plugins.module_utils.plan.errors import PlanInputError
from ansible_collections.dgxspark.cluster.plugins.module_utils.plan.model import parse_model
from ansible_collections.dgxspark.cluster.plugins.module_utils.plan.padding import (
    plan_dims, vllm_overrides)

from conftest import GLM, MIMO

V033 = resolve_build("vllm-0.33")
V1 = resolve_build({"model_runner": "v1", "draft_inherits_dcp": True, "pp_with_mtp": True})


# --- config.json ------------------------------------------------------------------------

def test_glm_profile_parses():
    model = parse_model(GLM)
    assert model.use_mla and model.mla["kv_lora_rank"] == 512
    assert model.indexer["cache_layers"] == 21  # index_topk_freq 4, offset 3
    assert model.mtp_layers == 1 and model.quant == {
        "method": "nvfp4", "group_size": 16, "block": None, "kv_cache": None,
        "quant_method": "modelopt"}
    assert model.moe["intermediate_size"] == 2048 and model.dense_intermediate_size == 12288


def test_mimo_profile_parses():
    model = parse_model(MIMO)
    full, swa = model.attention
    assert (full.num_layers, full.q_heads, full.kv_heads, full.sinks) == (9, 64, 4, False)
    assert (swa.num_layers, swa.kv_heads, swa.sliding_window, swa.sinks) == (39, 8, 128, True)
    assert (full.head_dim, full.v_head_dim) == (192, 128)
    assert model.mtp_layers == 1 and model.mtp_attention == "sliding_window"
    assert model.quant["method"] == "nvfp4" and model.is_hybrid


def test_index_sharing_follows_what_vllm_reads(write_config):
    model = parse_model(write_config("glm", index_topk_pattern="F" * 10 + "S" * 68))
    assert model.indexer["cache_layers"] == 10
    # transformers' indexer_types is not read by vLLM: the freq/offset schedule decides
    model = parse_model(write_config("glm", indexer_types=["full"] * 78))
    assert model.indexer["cache_layers"] == 21
    model = parse_model(write_config("glm", index_topk_freq=None, index_skip_topk_offset=None))
    assert model.indexer["cache_layers"] == 78


@pytest.mark.parametrize("qc,method,extra", [
    ({"quant_method": "fp8", "weight_block_size": [128, 128]}, "fp8_block", {"block": [128, 128]}),
    ({"quant_method": "compressed-tensors", "format": "nvfp4-pack-quantized"}, "nvfp4",
     {"group_size": 16}),
    ({"quant_method": "modelopt", "quant_algo": "FP8"}, "fp8", {}),
])
def test_quantization_formats(write_config, qc, method, extra):
    model = parse_model(write_config("mla", quantization_config=qc))
    assert model.quant["method"] == method
    for key, value in extra.items():
        assert model.quant[key] == value


def test_text_config_and_layer_types(write_config):
    inner = {"model_type": "gpt_oss", "num_hidden_layers": 4, "num_attention_heads": 64,
             "num_key_value_heads": 8, "head_dim": 64, "vocab_size": 201088,
             "max_position_embeddings": 131072, "sliding_window": 128,
             "layer_types": ["sliding_attention", "full_attention"] * 2}
    model = parse_model(write_config("gqa", text_config=inner, num_attention_heads=None,
                                     model_type=None, num_hidden_layers=None, vocab_size=None))
    assert [t.name for t in model.attention] == ["full", "sliding_window"]
    assert all(t.sinks for t in model.attention)


# --- CUDA-graph capture sizes (recorded from real vLLM 0.33.0) ---------------------------

def test_default_sizes_with_mtp2_add_uniform_decode_sizes():
    out = cudagraph.resolve(V033, max_num_seqs=1024, max_num_batched_tokens=8192,
                            num_speculative_tokens=2)
    # oracle row dsv3-tp4-pp2-dcp2-mtp2: 60 sizes 1,2,3,4,6,...,512
    assert len(out.config_sizes) == 60 and out.config_sizes[:5] == [1, 2, 3, 4, 6]
    assert out.config_sizes[-1] == 512


def test_default_sizes_small_batch():
    out = cudagraph.resolve(V033, max_num_seqs=8, max_num_batched_tokens=2048,
                            num_speculative_tokens=2)
    assert out.config_sizes == [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 40, 48]
    assert out.decode_full_sizes == [3, 6, 9, 12, 18, 24]


def test_runner_v2_decode_and_draft_graphs():
    out = cudagraph.resolve(V033, max_cudagraph_capture_size=10, max_num_seqs=4,
                            max_num_batched_tokens=2048, num_speculative_tokens=3)
    assert out.config_sizes == [1, 2, 4, 8] and out.truncated == (10, 8)
    assert out.decode_full_sizes == [4, 8] and out.draft_decode_sizes == [1, 2, 4]


def test_no_full_decode_graph_when_query_exceeds_cap_on_v2():
    out = cudagraph.resolve(V033, max_cudagraph_capture_size=6, max_num_seqs=1,
                            max_num_batched_tokens=2048, num_speculative_tokens=5)
    assert out.no_valid_sizes is None and out.decode_full_sizes == []


def test_explicit_list_drops_sizes_above_batched_tokens():
    out = cudagraph.resolve(V033, cudagraph_capture_sizes=[1, 2, 4, 4096],
                            max_num_batched_tokens=2048)
    assert out.config_sizes == [1, 2, 4] and out.dropped == [4096]


def test_enforce_eager_disables_graphs():
    out = cudagraph.resolve(V1, num_speculative_tokens=4, max_cudagraph_capture_size=5,
                            enforce_eager=True)
    assert not out.enabled and out.no_valid_sizes is None


def test_suggest_cap_survives_both_stages():
    assert cudagraph.suggest_cap(V1, 4, 1, 1024) == 8
    assert cudagraph.suggest_cap(V1, 1, 1, 1024) == 2
    assert cudagraph.suggest_cap(V033, 3, 4, 2048) == 16


# --- padding ---------------------------------------------------------------------------

def test_glm_tp6_pads_heads_to_66():
    dims = plan_dims(parse_model(GLM), V033, 6, True)
    assert dims.mla_q_heads == (64, 66)  # local-inference-lab PR #64: "GLM TP6 64 -> 66"


def test_minimax_m3_like_64_4_at_tp3_pads_to_96_6(write_config):
    dims = plan_dims(parse_model(write_config("gqa")), V033, 3, True)
    assert dims.attention[0]["q_heads"] == (64, 96) and dims.attention[0]["kv_heads"] == (4, 6)


def test_no_padding_when_tp_divides():
    dims = plan_dims(parse_model(MIMO), V033, 4, True)
    assert not dims.applied and dims.patches == []


def test_kv_replication_allowed_without_padding(write_config):
    dims = plan_dims(parse_model(write_config("gqa")), V033, 8, True)
    assert not dims.applied  # 4 KV heads replicated twice at TP 8


def test_padding_reaches_vllm_as_the_config_fields_it_pads():
    dims = plan_dims(parse_model(MIMO), V033, 3, True)
    assert vllm_overrides(dims, 3) == {"virtual_heads": {"tensor_parallel_size": 3, "padding": {
        "num_attention_heads": [64, 96], "num_key_value_heads": [4, 6],
        "swa_num_attention_heads": [64, 96], "swa_num_key_value_heads": [8, 12],
        "moe_intermediate_size": [2048, 2304], "intermediate_size": [16384, 16416]}}}


def test_padding_overrides_name_only_the_fields_that_change(write_config):
    # layer_types model: both layer kinds share num_attention_heads / num_key_value_heads.
    path = write_config("gqa", num_hidden_layers=2, sliding_window=128,
                        layer_types=["sliding_attention", "full_attention"])
    dims = plan_dims(parse_model(path), V033, 3, True)
    assert vllm_overrides(dims, 3)["virtual_heads"]["padding"] == {
        "num_attention_heads": [64, 96], "num_key_value_heads": [4, 6],
        "intermediate_size": [14336, 14337]}
    # MLA: the q heads; MiniMax-style MoE width in intermediate_size.
    glm = plan_dims(parse_model(GLM), V033, 6, True)
    assert vllm_overrides(glm, 6)["virtual_heads"]["padding"]["num_attention_heads"] == [64, 66]
    minimax = write_config("gqa", n_routed_experts=8, num_experts_per_tok=2,
                           intermediate_size=1000)
    padded = vllm_overrides(plan_dims(parse_model(minimax), V033, 3, True), 3)
    assert padded["virtual_heads"]["padding"]["intermediate_size"][0] == 1000
    assert "moe_intermediate_size" not in padded["virtual_heads"]["padding"]


def test_no_overrides_when_nothing_is_padded():
    assert vllm_overrides(plan_dims(parse_model(MIMO), V033, 4, True), 4) is None
    assert vllm_overrides(plan_dims(parse_model(MIMO), V033, 3, False), 3) is None


# --- KV cache --------------------------------------------------------------------------

def _kv(model, dims, **kw):
    args = dict(tp=4, pp=1, dcp=1, kv_cache_dtype="auto", block_size=16, max_model_len=8192,
                max_num_batched_tokens=2048, kv_cache_memory_bytes=2 ** 30, mtp_layers=0)
    args.update(kw)
    return kvcache.estimate(model, dims, **args)


def test_mimo_published_pool_is_reproduced():
    model = parse_model(MIMO)
    dims = plan_dims(model, resolve_build("mimo-v25-tp3"), 3, True)
    kv = _kv(model, dims, tp=3, kv_cache_dtype="fp8_e4m3", block_size=32,
             max_model_len=1000000, max_num_batched_tokens=8192,
             kv_cache_memory_bytes=52956 * 368640, mtp_layers=1)
    # tonyd2wild MiMo V2.5 TP3 MTP2 fp8: "KV 3,127,938 tok"
    assert kv["tokens"] == 3127938
    groups = kv["groups"]
    assert [g["groups"] for g in groups] == [1, 5]          # 9 full, 40 SWA (+MTP) in groups of 9
    assert [g["block_size"] for g in groups] == [64, 32]     # full pages unified to SWA pages


@pytest.mark.parametrize("async_scheduling,tokens,blocks", [
    # vLLM 0.33's own planning functions on MiMo-shaped layer specs (TP4, bf16, block 16,
    # 10 GiB, 131,072 tokens, 8,192 batched tokens): 824,475 tokens (6.29x) with async
    # scheduling, 1,139,452 (8.69x) without.
    (True, 824475, 9261), (False, 1139452, 6701),
])
def test_hybrid_capacity_with_and_without_async(async_scheduling, tokens, blocks):
    model = parse_model(MIMO)
    dims = plan_dims(model, V033, 4, False)
    kv = _kv(model, dims, tp=4, block_size=16, max_model_len=131072,
             max_num_batched_tokens=8192, kv_cache_memory_bytes=10 * 2 ** 30, mtp_layers=1,
             in_flight=kvcache.in_flight_tokens(8192, 1, async_scheduling, "v2"))
    assert kv["num_blocks"] == 58254 and kv["bytes_per_block"] == 184320
    assert kv["blocks_per_request"] == blocks and kv["tokens"] == tokens


def test_gqa_bytes_per_token_by_dtype(write_config):
    model = parse_model(write_config("gqa"))
    dims = plan_dims(model, V033, 4, False)
    bf16 = _kv(model, dims)["bytes_per_token"]
    fp8 = _kv(model, dims, kv_cache_dtype="fp8")["bytes_per_token"]
    nvfp4 = _kv(model, dims, kv_cache_dtype="nvfp4")["bytes_per_token"]
    assert bf16 == 4 * 1 * (64 + 64) * 2 and fp8 == bf16 // 2
    assert nvfp4 == 4 * (2 * (32 + 4))


def test_dcp_multiplies_capacity():
    model = parse_model(GLM)
    dims = plan_dims(model, V033, 4, False)
    one = _kv(model, dims, kv_cache_dtype="fp8", block_size=64, max_model_len=131072)
    four = _kv(model, dims, kv_cache_dtype="fp8", block_size=64, max_model_len=131072, dcp=4)
    assert four["tokens"] == 4 * one["tokens"]


def test_pp_splits_layers():
    assert kvcache.pp_partition(78, 3) == [26, 26, 26]
    # vllm/distributed/utils.py get_pp_indices: the remainder goes to the middle stages
    assert kvcache.pp_partition(48, 5) == [9, 10, 10, 10, 9]


def test_unknown_dtype_gives_no_estimate():
    model = parse_model(GLM)
    kv = _kv(model, plan_dims(model, V033, 4, False), kv_cache_dtype="turboquant_k8v4")
    assert kv["unknown_dtype"] and kv["tokens"] is None


def test_build_dict_needs_core_capabilities():
    with pytest.raises(PlanInputError) as err:
        resolve_build({"model_runner": "v2", "pp_with_mtp": True})
    assert "draft_inherits_dcp" in str(err.value)
    custom = resolve_build({"model_runner": "v1", "draft_inherits_dcp": False,
                            "pp_with_mtp": False, "base": "glm52-b12x-eldritch",
                            "name": "my-build"})
    assert custom.name == "my-build" and custom.cudagraph_sizes == "legacy"
