"""Preflight speed: one plan check in-process, and the suggestion sweep for 4 nodes.

Targets (issue #3): a plan check well under 50 ms, the 4-node sweep under 1 s. This is a
benchmark that prints numbers; no test asserts on time.
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / ".collections"))

from ansible_collections.dgxspark.cluster.plugins.module_utils.plan import engine  # noqa: E402

GLM = str(ROOT / "recipes/models/glm-5.2-nvfp4")
MIMO = str(ROOT / "recipes/models/mimo-v2.5-nvfp4")
PLANS = {
    "glm52 TP4/DCP4/MTP1": {
        "model_config": GLM, "nodes": 4, "tensor_parallel_size": 4,
        "decode_context_parallel_size": 4,
        "speculative_config": {"method": "mtp", "num_speculative_tokens": 1},
        "max_cudagraph_capture_size": 4, "kv_cache_dtype": "fp8",
        "kv_cache_memory_bytes": 1810000000, "max_model_len": 131072, "max_num_seqs": 1,
        "max_num_batched_tokens": 1024, "vllm_build": "glm52-b12x-eldritch",
        "vllm_patches": ["draft-dcp-inherit"]},
    "mimo_v25 TP3 virtual heads/MTP2": {
        "model_config": MIMO, "nodes": 3, "tensor_parallel_size": 3, "virtual_heads": True,
        "speculative_config": {"method": "mtp", "num_speculative_tokens": 2},
        "kv_cache_dtype": "fp8_e4m3", "max_model_len": 1000000, "max_num_seqs": 6,
        "max_num_batched_tokens": 8192, "block_size": 32, "kv_cache_memory_bytes": 19521699840,
        "vllm_build": "mimo-v25-tp3",
        "vllm_patches": ["virtual-heads", "moe-zero-fill", "sink-padding"]},
}


def timed(fn, repeat):
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1], samples[-1]


def main():
    print("preflight benchmark (in-process, config.json read every time)")
    for name, plan in PLANS.items():
        med, p95, worst = timed(lambda: engine.evaluate(plan), 300)
        print("  plan check  %-34s median %6.2f ms  p95 %6.2f ms  max %6.2f ms  (target < 50 ms)"
              % (name, med * 1e3, p95 * 1e3, worst * 1e3))
    sweep = dict(PLANS["glm52 TP4/DCP4/MTP1"])
    for key in ("tensor_parallel_size", "decode_context_parallel_size", "speculative_config",
                "max_cudagraph_capture_size"):
        sweep.pop(key)
    rows = engine.suggest(sweep)
    med, p95, worst = timed(lambda: engine.suggest(sweep), 10)
    print("  suggestions glm52 on 4 nodes (%d satisfiable plans)  median %6.1f ms  max %6.1f ms"
          "  (target < 1 s)" % (len(rows), med * 1e3, worst * 1e3))


if __name__ == "__main__":
    main()
