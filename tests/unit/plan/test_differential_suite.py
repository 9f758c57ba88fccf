"""The plan engine against vLLM 0.33.0's recorded verdicts (issue 14), without the oracle.

tests/fixtures/differential/ holds real config.json files of public models (each with its
SOURCE.md), the readable plan list (plans.yml), its expansion (plans.jsonl) and what vLLM
0.33.0 said about every plan (expected.jsonl, recorded by ``scripts/differential.py record``
through the vllm-oracle; regenerate it there, never by hand).

Agreement is ``differential.compare``, stage by stage, because the oracle runs vLLM's
``create_engine_config()`` for real and emulates only the runner start-up:

* ``accepted`` (config stage) <-> no error from a rule of stage ``config`` (or an input the
  planner refuses);
* when vLLM accepted: the oracle's ``runner`` verdict (vLLM's own
  ``resolve_cudagraph_mode_and_sizes``, where Model Runner V1 raises ``No valid cudagraph
  sizes``) <-> no error of stage ``runner``; this is the split test_vllm_oracle.py makes
  between ``accepted`` and ``accepted_with_runtime_emulation``. The attention-backend
  emulation (the other half of ``accepted_with_runtime_emulation``) is best effort on a CPU
  host without FlashInfer and is not compared;
* the settings vLLM resolves (``differential.RESOLVED``: max_model_len, the GB10 batch
  defaults, async scheduling, the KV dtype) <-> the engine's resolved plan;
* the capture list vLLM resolved at config time <-> ours, and the list after the runner stage
  when it passed.

Rules of stage ``worker`` (weights, kernels, KV memory) and ``plan`` are not compared: the
oracle cannot judge them.
"""
from __future__ import annotations

import json
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import differential  # noqa: E402

PLANS = differential.load_plans()
EXPECTED = differential.load_expected()


def test_suite_is_broad_and_recorded_for_every_plan():
    assert len(PLANS) >= 300
    assert len(set(differential.architecture(p) for p in PLANS)) >= 12
    ids = [p["id"] for p in PLANS]
    assert len(ids) == len(set(ids)) and set(EXPECTED) == set(ids)
    verdicts = [e["accepted"] for e in EXPECTED.values()]
    runner = [e["runner"]["verdict"] for e in EXPECTED.values() if e["accepted"]]
    # both answers occur at both stages, so agreement is not agreement with a constant
    assert verdicts.count(False) >= 50 and verdicts.count(True) >= 50
    assert runner.count("rejected") >= 10 and runner.count("accepted") >= 50


def test_plans_jsonl_is_the_expansion_of_plans_yml():
    assert differential.expand() == PLANS, \
        "plans.jsonl is stale: run scripts/differential.py expand, then record"


def test_every_fixture_model_cites_its_source():
    for directory in sorted(differential.MODELS.iterdir()):
        assert (directory / "config.json").is_file(), directory
        source = (directory / "SOURCE.md").read_text()
        assert "https://github.com/" in source and "commit" in source, directory


@pytest.mark.parametrize("arch", sorted(set(differential.architecture(p) for p in PLANS)))
def test_engine_agrees_with_vllm(arch):
    mismatches = []
    for plan in PLANS:
        if differential.architecture(plan) != arch:
            continue
        diff, dummy = differential.compare(plan, EXPECTED[plan["id"]])
        if diff:
            mismatches.append((plan["id"], diff))
    assert not mismatches, "\n".join(json.dumps(m, default=str)[:600] for m in mismatches)


def _first(predicate):
    return next(p for p in PLANS if predicate(p, EXPECTED[p["id"]]))


def test_compare_catches_a_flipped_config_verdict():
    plan = _first(lambda p, e: not e["accepted"])
    flipped = dict(EXPECTED[plan["id"]], accepted=True, runner={"verdict": "accepted"},
                   cudagraph_capture_sizes=[1])
    diff, dummy = differential.compare(plan, flipped)
    assert diff and diff[0][0] == "verdict"


def test_compare_catches_a_flipped_runner_verdict():
    plan = _first(lambda p, e: e["accepted"] and e["runner"]["verdict"] == "rejected")
    flipped = dict(EXPECTED[plan["id"]])
    flipped["runner"] = dict(flipped["runner"], verdict="accepted")
    diff, dummy = differential.compare(plan, flipped)
    assert diff and diff[0][0] == "runner verdict"


def test_compare_catches_a_different_capture_list():
    plan = _first(lambda p, e: e["accepted"] and len(e["cudagraph_capture_sizes"]) > 3)
    changed = dict(EXPECTED[plan["id"]])
    changed["cudagraph_capture_sizes"] = changed["cudagraph_capture_sizes"][:-1]
    diff, dummy = differential.compare(plan, changed)
    assert diff and diff[0][0] == "capture list"
