"""The recorded differential suite: the plan engine against vLLM 0.33.0's own verdicts.

    .venv/bin/python scripts/differential.py expand    # plans.yml -> plans.jsonl
    DGXSPARK_VLLM_ORACLE=~/.cache/vllm-oracle \\
    DGXSPARK_VLLM_ORACLE_SCRIPT=../shared/tools/vllm-oracle/oracle.py \\
        .venv/bin/python scripts/differential.py record   # asks vLLM -> expected.jsonl
    .venv/bin/python scripts/differential.py report    # agreement per architecture

Files (tests/fixtures/differential/): ``models/<name>/config.json`` (real configs, each with
its SOURCE.md), ``plans.yml`` (the readable plan list), ``plans.jsonl`` (expanded, one plan a
line) and ``expected.jsonl`` (what vLLM said, recorded by ``record``; never edited by hand).

``record`` runs the vllm-oracle (a development tool, never a dependency of the collection) as
a DGX Spark: vLLM's own GB10 device (compute capability 12.1, the small batch-default tier),
one GPU per node, and ``nnodes`` = the plan's nodes for a multi-node plan (each rank on its
own Spark, as the collection places them with Ray; Ray itself is not installed in the oracle,
and vLLM checks no Ray cluster at config time).

What "agreement" means is ``compare`` below; tests/unit/plan/test_differential_suite.py
asserts it at 100 % on every recorded plan.
"""
from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / ".collections"))

from ansible_collections.dgxspark.cluster.plugins.module_utils.plan import engine  # noqa: E402
from ansible_collections.dgxspark.cluster.plugins.module_utils.plan.errors import (  # noqa: E402
    ModelConfigError, PlanInputError)

SUITE = ROOT / "tests" / "fixtures" / "differential"
MODELS = SUITE / "models"
PLANS_YML = SUITE / "plans.yml"
PLANS = SUITE / "plans.jsonl"
EXPECTED = SUITE / "expected.jsonl"

# GB10 as vLLM sees it: SM 12.1 (vLLM keeps it on the small batch-default tier by capability,
# vllm/engine/arg_utils.py get_batch_defaults) and its unified memory as the device total.
GB10 = (12, 1, "NVIDIA GB10", 122570 * (1 << 20))


# --- plans ---------------------------------------------------------------------------------

def _model_limit(name):
    data = json.loads((MODELS / name / "config.json").read_text())
    text = data.get("text_config") if isinstance(data.get("text_config"), dict) else data
    return text.get("max_position_embeddings")


def _resolve(value, limit):
    if value == "limit":
        return limit
    if value == "limit+1":
        return limit + 1
    return value


def _expand_group(group):
    axes = [(k, v if isinstance(v, list) and not (k == "cudagraph_capture_sizes" and v and
                                                  not isinstance(v[0], list)) else [v])
            for k, v in group.items()]
    for combo in itertools.product(*[values for dummy, values in axes]):
        plan = dict(zip([k for k, dummy in axes], combo))
        spec = plan.get("speculative_config")
        if isinstance(spec, dict):
            spec_axes = [(k, v if isinstance(v, list) else [v]) for k, v in spec.items()]
            for spec_combo in itertools.product(*[values for dummy, values in spec_axes]):
                out = dict(plan)
                out["speculative_config"] = dict(zip([k for k, dummy in spec_axes], spec_combo))
                yield out
        else:
            yield plan


def expand():
    """plans.yml -> list of plans (dicts with id, model and vllm_plan options)."""
    data = yaml.safe_load(PLANS_YML.read_text())
    plans = []
    for model in sorted(data["models"]):
        limit = _model_limit(model)
        groups = list(data["common"]) + list(data["models"][model] or [])
        seen = set()
        for group in groups:
            for plan in _expand_group(group):
                plan = dict((k, _resolve(v, limit)) for k, v in plan.items())
                world = plan.get("tensor_parallel_size", 1) * plan.get("pipeline_parallel_size", 1)
                plan.setdefault("nodes", world)
                key = json.dumps(plan, sort_keys=True)
                if key in seen:
                    continue
                seen.add(key)
                plans.append(dict(plan, id="%s/%03d" % (model, len(seen)), model=model))
    return plans


def write_plans():
    plans = expand()
    PLANS.write_text("".join(json.dumps(p, sort_keys=True) + "\n" for p in plans))
    print("wrote %d plans to %s" % (len(plans), PLANS.relative_to(ROOT)))


def load_plans():
    return [json.loads(line) for line in PLANS.read_text().splitlines() if line.strip()]


def load_expected():
    out = {}
    for line in EXPECTED.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            out[row["id"]] = row
    return out


# --- asking vLLM ---------------------------------------------------------------------------

def oracle_query(plan):
    """The vllm-oracle query for a plan (its batch-line keys)."""
    q = {"id": plan["id"], "model": str(MODELS / plan["model"]),
         "tp": plan.get("tensor_parallel_size", 1), "pp": plan.get("pipeline_parallel_size", 1),
         "dcp": plan.get("decode_context_parallel_size", 1)}
    spec = plan.get("speculative_config")
    if spec:
        spec = dict(spec)
        if "model" in spec:
            spec["model"] = str(MODELS / spec["model"])
        q["spec"] = spec
    for key in ("max_cudagraph_capture_size", "cudagraph_capture_sizes", "max_model_len",
                "kv_cache_dtype", "max_num_seqs", "max_num_batched_tokens", "block_size",
                "enforce_eager", "async_scheduling"):
        if plan.get(key) is not None:
            q[key] = plan[key]
    if plan["nodes"] > 1:
        q["extra"] = {"nnodes": plan["nodes"]}
    if plan.get("model_runner"):
        q["model_runner"] = plan["model_runner"]  # VLLM_USE_V2_MODEL_RUNNER=0/1
    return q


_DRIVER = r"""
import json, os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[1])))
import oracle
oracle.GPU_PROFILES["gb10"] = tuple(json.loads(sys.argv[2]))
oracle.install_fake_cuda("gb10", 1)
cap = oracle._setup_logging(False)
for line in sys.stdin:
    q = json.loads(line)
    q.setdefault("usage_context", "serve")
    q.setdefault("model_runner", "auto")
    real, sys.stdout = sys.stdout, sys.stderr
    try:
        r = oracle.run_query(q, cap)
    finally:
        sys.stdout = real
    print(json.dumps(r, default=str), flush=True)
"""


def _summary(result):
    runtime = result.get("runtime_emulation") or {}
    attention = result.get("attention_emulation") or {}
    out = {"id": result["id"], "accepted": bool(result["accepted"]),
           "error": result.get("error"), "raised_at": result.get("raised_at")}
    if result["accepted"]:
        out.update({
            "cudagraph_capture_sizes": result["cudagraph_capture_sizes"],
            "max_cudagraph_capture_size": result["max_cudagraph_capture_size"],
            "use_v2_model_runner": result["use_v2_model_runner"],
            "max_model_len": result["max_model_len"],
            "max_num_seqs": result["max_num_seqs"],
            "max_num_batched_tokens": result["max_num_batched_tokens"],
            "async_scheduling": result["async_scheduling"],
            "block_size": result["block_size"],
            "kv_cache_dtype": result["kv_cache_dtype"],
            "draft_parallel": result.get("draft_parallel"),
            "runner": {"verdict": runtime.get("verdict"), "error": runtime.get("error"),
                       "cudagraph_capture_sizes": runtime.get("cudagraph_capture_sizes")},
            "attention": {"verdict": attention.get("verdict"),
                          "backend": attention.get("backend"),
                          "error": (attention.get("error") or "")[:300] or None},
        })
    return out


def ask_vllm(plans, oracle_dir, script):
    """vLLM 0.33.0's verdict on each plan (the rows of expected.jsonl), via the oracle."""
    python = os.path.join(os.path.expanduser(oracle_dir), "bin", "python")
    stdin = "".join(json.dumps(oracle_query(p)) + "\n" for p in plans)
    proc = subprocess.run([python, "-c", _DRIVER, os.path.abspath(os.path.expanduser(script)),
                           json.dumps(GB10)], input=stdin, capture_output=True, text=True, check=False)
    if proc.returncode:
        sys.exit(proc.stderr[-3000:])
    results = [_summary(json.loads(line)) for line in proc.stdout.splitlines() if line.strip()]
    assert [r["id"] for r in results] == [p["id"] for p in plans]
    return results


def dump(rows):
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)


def record():
    oracle_dir = os.environ.get("DGXSPARK_VLLM_ORACLE")
    script = os.environ.get("DGXSPARK_VLLM_ORACLE_SCRIPT")
    if not (oracle_dir and script):
        sys.exit("set DGXSPARK_VLLM_ORACLE and DGXSPARK_VLLM_ORACLE_SCRIPT (see the README, "
                 "'Opt-in differential test')")
    results = ask_vllm(load_plans(), oracle_dir, script)
    EXPECTED.write_text(dump(results))
    print("recorded %d verdicts of vLLM 0.33.0 to %s" % (len(results),
                                                         EXPECTED.relative_to(ROOT)))


# --- comparing -----------------------------------------------------------------------------

def engine_options(plan):
    """The vllm_plan options for a suite plan (a Spark: one GPU per node, upstream 0.33)."""
    options = {"model_config": str(MODELS / plan["model"]), "gpus_per_node": 1,
               "vllm_build": "vllm-0.33"}
    for key, value in plan.items():
        if key in ("id", "model"):
            continue
        if key == "model_runner":
            # upstream 0.33 with the runner forced (VLLM_USE_V2_MODEL_RUNNER)
            options["vllm_build"] = {"base": "vllm-0.33", "model_runner": value,
                                     "draft_inherits_dcp": True, "pp_with_mtp": True}
            continue
        if key == "speculative_config":
            value = dict(value)
            if "model" in value:
                value["model"] = str(MODELS / value["model"])
        options[key] = value
    return options


# Settings vLLM resolves at config time that the plan engine derives too (the defaults of a
# GB10 node, the model's length limit, async scheduling with the runner and PP).
RESOLVED = ("max_model_len", "max_num_seqs", "max_num_batched_tokens", "async_scheduling",
            "kv_cache_dtype")


def compare(plan, expected):
    """Mismatches between the plan engine and vLLM's recorded verdict for one plan.

    Agreement is judged on what the oracle runs for real:

    * verdict: the plan engine's findings of stage ``config`` (rules vLLM checks inside
      ``create_engine_config()``) against ``accepted``. A rejection by our engine must come
      from a config-stage rule; a worker-stage finding (weights, kernels, KV memory, which the
      oracle cannot judge on a CPU) does not count either way.
    * runner stage: when vLLM accepted the config, our ``runner`` findings (the Model Runner
      start-up step ``No valid cudagraph sizes``) against the oracle's emulation of that step
      (vLLM's own ``resolve_cudagraph_mode_and_sizes``). This is how test_vllm_oracle.py
      treats ``accepted`` vs ``accepted_with_runtime_emulation``: the two stages are judged
      separately; the attention-backend emulation is best effort and is not compared.
    * resolved settings: ``RESOLVED`` as vLLM resolved them against the engine's plan;
    * capture list: the list vLLM resolved at config time (``cudagraph_capture_sizes``)
      against ours, and, when the runner stage passed, the effective list after it.
    """
    out = []
    try:
        result = engine.evaluate(engine_options(plan))
    except (PlanInputError, ModelConfigError) as exc:
        # The planner refuses the input itself: a config-stage "no".
        result = {"violations": [{"rule": "input", "stage": "config", "message": str(exc)}]}
    errors = result["violations"]
    config_rules = sorted(v["rule"] for v in errors if v["stage"] == "config")
    runner_rules = sorted(v["rule"] for v in errors if v["stage"] == "runner")
    if (not config_rules) != expected["accepted"]:
        out.append(("verdict", config_rules, expected.get("error")))
        return out, result
    if not expected["accepted"]:
        return out, result
    runner = expected["runner"]
    if runner["verdict"] in ("accepted", "rejected"):
        if (not runner_rules) != (runner["verdict"] == "accepted"):
            out.append(("runner verdict", runner_rules, runner.get("error")))
            return out, result
    for key in RESOLVED:
        if result["plan"][key] != expected[key]:
            out.append(("resolved %s" % key, result["plan"][key], expected[key]))
    cg = result["cudagraph"]
    if cg["config_sizes"] != expected["cudagraph_capture_sizes"]:
        out.append(("capture list", cg["config_sizes"], expected["cudagraph_capture_sizes"]))
    elif runner["verdict"] == "accepted" and cg["sizes"] != runner["cudagraph_capture_sizes"]:
        out.append(("effective capture list", cg["sizes"], runner["cudagraph_capture_sizes"]))
    return out, result


def architecture(plan):
    data = json.loads((MODELS / plan["model"] / "config.json").read_text())
    return (data.get("architectures") or ["?"])[0]


def agreement():
    """{architecture: [plans, agreeing plans, models]} over the recorded suite."""
    expected = load_expected()
    table = {}
    mismatches = []
    for plan in load_plans():
        diff, dummy = compare(plan, expected[plan["id"]])
        row = table.setdefault(architecture(plan), [0, 0, set()])
        row[0] += 1
        row[1] += 0 if diff else 1
        row[2].add(plan["model"])
        if diff:
            mismatches.append((plan, diff))
    return table, mismatches


def report():
    table, mismatches = agreement()
    for arch in sorted(table):
        total, ok, models = table[arch]
        print("%-34s %4d/%-4d %s" % (arch, ok, total, ", ".join(sorted(models))))
    for plan, diff in mismatches:
        print(plan["id"], json.dumps({k: v for k, v in plan.items() if k not in ("id", "model")}),
              diff)
    print("agreement: %d/%d" % (sum(r[1] for r in table.values()),
                                sum(r[0] for r in table.values())))


if __name__ == "__main__":
    commands = {"expand": write_plans, "record": record, "report": report}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        sys.exit("usage: differential.py expand|record|report")
    commands[sys.argv[1]]()
