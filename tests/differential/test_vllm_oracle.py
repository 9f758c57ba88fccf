"""Differential test: the plan engine against the real vLLM 0.33.0 (opt-in).

Runs the vllm-oracle (shared/tools/vllm-oracle: real ``create_engine_config()`` plus vLLM's
own runner-stage capture-size code, on a CPU machine) over a grid of plans and compares:

* the verdict of the rules vLLM checks at config time (heads vs TP, DCP, speculative
  config, capture-list consistency, kv dtype, max_model_len, scheduler limits);
* the Model Runner V1 start-up verdict (``No valid cudagraph sizes``);
* the capture list after stage 1 and the effective list after the V1 rounding.

Opt in with::

    DGXSPARK_VLLM_ORACLE=~/.cache/vllm-oracle \\
    DGXSPARK_VLLM_ORACLE_SCRIPT=../shared/tools/vllm-oracle/oracle.py \\
    .venv/bin/pytest -m oracle tests/differential

The oracle is a development tool, never a dependency of the collection.
"""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from ansible_collections.dgxspark.cluster.plugins.module_utils.plan import engine

from oracle_env import MARKS, ORACLE, SCRIPT
from conftest import GQA, MLA

pytestmark = MARKS

# Rules whose checks vLLM runs inside create_engine_config() (the oracle's verdict).
CONFIG_STAGE = {"attention_heads_tp", "dcp_divides_tp", "dcp_gqa_kv_heads", "draft_tp",
                "cudagraph_explicit_consistency", "kv_cache_dtype", "max_model_len",
                "scheduler_batch", "world_size"}
RUNNER_STAGE = {"cudagraph_no_valid_sizes"}
SEQS, TOKENS = 256, 2048


def _grid():
    queries = []
    for tp in (1, 2, 3, 4, 8):
        for dcp in (1, 2, 4):
            if dcp <= tp:
                queries.append(("llama", {"tp": tp, "dcp": dcp}))
    for tp in (3, 4, 8):
        for dcp in (1, 2, 3, 4, 8):
            queries.append(("dsv3", {"tp": tp, "dcp": dcp}))
    for runner in ("v1", "v2"):
        for n in (1, 2, 3, 4, 5):
            for cap in sorted({n + 1, n + 2, 4, 10, 16}):
                queries.append(("dsv3", {"tp": 4, "dcp": 2, "model_runner": runner,
                                         "spec": {"method": "mtp", "num_speculative_tokens": n},
                                         "max_cudagraph_capture_size": cap}))
        queries.append(("dsv3", {"tp": 4, "model_runner": runner,
                                 "spec": {"method": "mtp", "num_speculative_tokens": 2}}))
        queries.append(("dsv3", {"tp": 4, "model_runner": runner,
                                 "spec": {"method": "mtp", "num_speculative_tokens": 3},
                                 "cudagraph_capture_sizes": [4, 8, 12]}))
    for dtp in (1, 2, 4):
        queries.append(("dsv3", {"tp": 4, "spec": {"method": "mtp", "num_speculative_tokens": 1,
                                                   "draft_tensor_parallel_size": dtp}}))
    queries += [
        ("dsv3", {"tp": 4, "cudagraph_capture_sizes": [4, 8], "max_cudagraph_capture_size": 16}),
        ("dsv3", {"tp": 4, "kv_cache_dtype": "int3"}),
        ("dsv3", {"tp": 4, "kv_cache_dtype": "fp8"}),
        ("llama", {"tp": 2, "max_model_len": 16384}),
        ("llama", {"tp": 16}),
        ("llama", {"tp": 2, "max_num_seqs": 256, "max_num_batched_tokens": 128}),
    ]
    return queries


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory):
    base = tmp_path_factory.mktemp("oracle")
    models = {}
    for name, config in (("llama", GQA), ("dsv3", MLA)):
        path = base / name
        path.mkdir()
        data = dict(config)
        if name == "dsv3":
            data.update({"rope_scaling": None, "topk_group": 4, "n_group": 8,
                         "routed_scaling_factor": 2.5, "scoring_func": "sigmoid",
                         "topk_method": "noaux_tc", "norm_topk_prob": True})
        (path / "config.json").write_text(json.dumps(data))
        models[name] = str(path)
    lines = []
    grid = _grid()
    for index, (model, query) in enumerate(grid):
        line = {"id": str(index), "model": models[model], "max_model_len": 8192,
                "max_num_seqs": SEQS, "max_num_batched_tokens": TOKENS}
        line.update(query)
        lines.append(line)
    batch = base / "queries.jsonl"
    batch.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    proc = subprocess.run([os.path.join(os.path.expanduser(ORACLE), "bin", "python"), SCRIPT,
                           "--batch", str(batch)], capture_output=True, text=True, timeout=3000, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = dict((r["id"], r) for r in map(json.loads, proc.stdout.splitlines()))
    return [(lines[i], models, results[str(i)]) for i in range(len(lines))]


def _ours(line):
    options = {"model_config": line["model"], "tensor_parallel_size": line.get("tp", 1),
               "decode_context_parallel_size": line.get("dcp", 1), "nodes": 1,
               "gpus_per_node": 8, "max_model_len": line["max_model_len"],
               "max_num_seqs": line["max_num_seqs"],
               "max_num_batched_tokens": line["max_num_batched_tokens"],
               "vllm_build": {"model_runner": line.get("model_runner", "v2"),
                              "draft_inherits_dcp": True, "pp_with_mtp": True}}
    for key in ("max_cudagraph_capture_size", "cudagraph_capture_sizes", "kv_cache_dtype"):
        if key in line:
            options[key] = line[key]
    if "spec" in line:
        options["speculative_config"] = line["spec"]
    return engine.evaluate(options)


def test_grid_matches_vllm(verdicts):
    mismatches = []
    for line, dummy, oracle in verdicts:
        ours = _ours(line)
        rules = set(v["rule"] for v in ours["violations"])
        config_ok = not (rules & CONFIG_STAGE)
        if config_ok != bool(oracle["accepted"]):
            mismatches.append(("config verdict", line, sorted(rules), oracle.get("error")))
            continue
        if not oracle["accepted"]:
            continue
        if ours["cudagraph"]["config_sizes"] != oracle["cudagraph_capture_sizes"]:
            mismatches.append(("capture list", line, ours["cudagraph"]["config_sizes"],
                               oracle["cudagraph_capture_sizes"]))
        runtime = oracle.get("runtime_emulation") or {}
        if runtime.get("verdict") in ("accepted", "rejected"):
            runner_ok = not (rules & RUNNER_STAGE)
            if runner_ok != (runtime["verdict"] == "accepted"):
                mismatches.append(("runner verdict", line, sorted(rules), runtime.get("error")))
            elif runner_ok and ours["cudagraph_capture_sizes"] != runtime.get(
                    "cudagraph_capture_sizes"):
                mismatches.append(("effective sizes", line, ours["cudagraph_capture_sizes"],
                                   runtime.get("cudagraph_capture_sizes")))
    assert not mismatches, "\n".join(repr(m) for m in mismatches)
    assert len(verdicts) > 80
