"""Memory fit (plan/memory.py, rule memory_fit) against the published ledgers.

GLM-5.2 NVFP4 TP4 with its MTP layer: "Model loading took 106.93 GiB" per rank (m9e
prepare-glm52-mtp-hybrid snapshot, reference spark-clusters.md section 14). MiMo V2.5 NVFP4 TP3
at gpu_memory_utilization 0.89: a KV pool of 52,956 blocks x 368,640 bytes = 19.52 GB.
"""
from __future__ import annotations

import pytest

from ansible_collections.dgxspark.cluster.plugins.module_utils.plan import engine, kvcache, memory
from ansible_collections.dgxspark.cluster.plugins.module_utils.plan.builds import resolve_build
from ansible_collections.dgxspark.cluster.plugins.module_utils.plan.model import parse_model
from ansible_collections.dgxspark.cluster.plugins.module_utils.plan.padding import plan_dims

from conftest import GLM, MIMO

GIB = 2 ** 30
GLM_LEDGER = 106.93 * GIB
MIMO_POOL = 52956 * 368640  # 19,521,699,840 bytes
MTP = {"method": "mtp", "num_speculative_tokens": 3}


def glm_fit(tp=4, mtp=1, **kw):
    model = parse_model(GLM)
    return memory.fit(model, plan_dims(model, resolve_build("vllm-0.33"), tp, False), tp,
                      mtp_layers=mtp, **kw)


def test_glm_tp4_weights_per_rank_within_2_percent_of_the_published_ledger():
    fit = glm_fit()
    gap = fit["weights_bytes"] / GLM_LEDGER - 1
    assert abs(gap) < 0.02, (fit["weights_bytes"] / GIB, gap)
    assert fit["weights_source"] == "config" and fit["fits_weights"]
    # the routed experts are the bulk; embedding and lm_head are split over TP
    parts = fit["weights_parts"]
    assert max(parts, key=parts.get) == "MoE routed experts (TP-split)"
    assert parts["embedding (TP-split)"] == parts["lm_head (TP-split)"]


def test_glm_mtp_layer_matches_its_checkpoint_shard():
    """sant1an's layer-78 shard is 19,905,841,664 bytes (index total 459,748,734,800 -
    439,842,893,136) in BF16: the MTP layer at TP1 with BF16 experts estimates within 0.5 %
    (the estimate adds the absorbed W_UK/W_UV copy, 14.7 MB, which is no checkpoint tensor)."""
    model = parse_model(GLM)
    dims = plan_dims(model, resolve_build("vllm-0.33"), 1, False)
    model.quant_config = dict(model.quant_config, ignore=list(
        model.quant_config["ignore"]) + ["model.layers.78.*"])
    layer = memory.weights_per_rank(model, dims, 1, mtp_layers=1)["bytes"] - \
        memory.weights_per_rank(model, dims, 1, mtp_layers=0)["bytes"]
    assert abs(layer / 19905841664.0 - 1) < 0.005, layer


def test_exact_bytes_per_rank_replace_the_estimate():
    fit = glm_fit(weights_bytes_per_rank=100 * GIB, kv_cache_memory_bytes=1810000000)
    assert fit["weights_bytes"] == 100 * GIB and fit["weights_source"] == "given"
    assert fit["weights_estimate_bytes"] != fit["weights_bytes"]
    assert fit["fits_kv"] and 0.8 < fit["gmu_for_kv"] < 0.9


def test_kv_budget_at_a_gpu_memory_utilization_and_the_reverse():
    fit = glm_fit(gpu_memory_utilization=0.915, kv_cache_memory_bytes=1810000000)
    budget = fit["kv_budget_at_gmu"]
    assert budget == int(memory.SPARK_MEMORY_BYTES * 0.915) - fit["weights_bytes"] - \
        fit["overhead_bytes"]
    # the reverse: the utilization the KV budget needs gives that budget back
    back = glm_fit(gpu_memory_utilization=fit["gmu_for_kv"])["kv_budget_at_gmu"]
    assert abs(back - 1810000000) < memory.SPARK_MEMORY_BYTES * 0.0001


def test_glm_on_one_spark_is_unsatisfiable_with_the_fix():
    result = engine.evaluate({"model_config": GLM, "tensor_parallel_size": 1, "nodes": 1,
                              "kv_cache_dtype": "fp8", "max_model_len": 8192,
                              "kv_cache_memory_bytes": 10 ** 12, "speculative_config": MTP})
    assert not result["satisfiable"]
    found = [v for v in result["violations"] if v["rule"] == "memory_fit"]
    assert len(found) == 1
    assert "per rank" in found[0]["message"] and "GiB" in found[0]["message"]
    assert "at least 4 Sparks" in found[0]["fix"] and "tensor_parallel_size" in found[0]["fix"]
    assert result["memory"]["weights_bytes"] > 400 * GIB


def test_a_kv_budget_that_does_not_fit_beside_the_weights_fails_with_the_most_that_fits():
    result = engine.evaluate({"model_config": GLM, "tensor_parallel_size": 4, "nodes": 4,
                              "decode_context_parallel_size": 4, "kv_cache_dtype": "fp8",
                              "max_model_len": 131072, "max_num_seqs": 1,
                              "max_num_batched_tokens": 1024, "kv_cache_memory_bytes": 20 * GIB})
    found = [v for v in result["violations"] if v["rule"] == "memory_fit"]
    assert found and "lower kv_cache_memory_bytes to at most" in found[0]["fix"]
    assert "kv_cache_memory_bytes 21474836480" in found[0]["message"]


def test_off_a_spark_the_rule_stays_silent():
    result = engine.evaluate({"model_config": GLM, "tensor_parallel_size": 1, "nodes": 1,
                              "vllm_build": "vllm-0.32-cpu", "max_model_len": 256})
    assert result["memory"] is None
    assert "memory_fit" not in [v["rule"] for v in result["violations"]]


def mimo_fit():
    model = parse_model(MIMO)
    dims = plan_dims(model, resolve_build("vllm-0.33"), 3, True)
    return memory.fit(model, dims, 3, mtp_layers=1, max_num_batched_tokens=8192,
                      gpu_memory_utilization=0.89)


def test_mimo_tp3_weights_and_pool_are_computed():
    fit = mimo_fit()
    # 47 MoE layers of 256 experts, width padded 2048 -> 2304 for TP3, NVFP4
    assert 60 * GIB < fit["weights_bytes"] < 66 * GIB
    assert fit["kv_budget_at_gmu"] > MIMO_POOL


def mimo_published_tokens(kv_cache_dtype, pool_bytes):
    """The KV tokens vLLM logs for the published MiMo TP3 plan (1M context, 8,192 batched
    tokens, block 32, MTP layer) with ``pool_bytes`` of KV cache."""
    model = parse_model(MIMO)
    dims = plan_dims(model, resolve_build("mimo-v25-tp3"), 3, True)
    return kvcache.estimate(model, dims, tp=3, pp=1, dcp=1, kv_cache_dtype=kv_cache_dtype,
                            block_size=32, max_model_len=1000000, max_num_batched_tokens=8192,
                            kv_cache_memory_bytes=pool_bytes, mtp_layers=1)


NVFP4_RUN_POOL = 179336 * 207360  # 37,187,112,960 bytes


def test_the_authors_second_run_at_the_same_utilization_left_twice_the_pool():
    """tonyd2wild's NVFP4-KV successor ran the same model, cluster and plan at
    gpu_memory_utilization 0.89 with only the KV dtype changed (nvfp4; README: "the only
    material change") and logged "GPU KV cache size: 10,592,793 tokens". Exactly 179,336
    nvfp4 blocks give that count (one block fewer does not), as 52,956 fp8 blocks give the
    first run's 3,127,938: the block geometry is right for both runs, and the bytes the two
    profiles left for KV differ by 17.7 GB (x1.9). The pool at a fixed utilization is not a
    function of the plan, which is why the 2 % comparison below is an expected
    failure and the recipes set kv_cache_memory_bytes."""
    assert mimo_published_tokens("fp8_e4m3", MIMO_POOL)["tokens"] == 3127938
    assert mimo_published_tokens("fp8_e4m3", MIMO_POOL - 368640)["tokens"] < 3127938
    nvfp4 = mimo_published_tokens("nvfp4", NVFP4_RUN_POOL)
    assert nvfp4["bytes_per_block"] == 207360 and nvfp4["tokens"] == 10592793
    assert mimo_published_tokens("nvfp4", NVFP4_RUN_POOL - 207360)["tokens"] < 10592793
    assert NVFP4_RUN_POOL / MIMO_POOL > 1.9
    # the estimate (the same plan's weights and overhead at 0.89) sits above both runs
    assert mimo_fit()["kv_budget_at_gmu"] > NVFP4_RUN_POOL > MIMO_POOL


@pytest.mark.xfail(strict=True, reason=(
    "the published MiMo pool is not predictable from the plan: the author's two runs at "
    "gpu_memory_utilization 0.89 (fp8 KV, then nvfp4 KV, nothing else material) left 19.52 GB "
    "and 37.19 GB for KV (test above); the estimate leaves 45.4 GB. vLLM's profile counts as "
    "used whatever the Spark's unified memory holds beyond the weights when it measures: the "
    "Omni encoders (about 1 B parameters, replicated with mm_encoder_tp_mode data) and their "
    "profiling, and the page cache the instanttensor load left (cudaMemGetInfo does not count "
    "it as free), which varies run to run; see README 'Does it fit?'"))
def test_mimo_tp3_pool_at_gmu_089_within_2_percent_of_the_published_one():
    fit = mimo_fit()
    assert abs(fit["kv_budget_at_gmu"] / float(MIMO_POOL) - 1) < 0.02
