"""The module as Ansible runs it: ad hoc from the repo root, in a playbook, in check mode.

Also keeps DOCUMENTATION and RETURN true to the code: the documented options are the
argument spec, and the documented return keys are what the module returns.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import ansible_runner
import yaml

from conftest import GLM, MIMO, ROOT

ANSIBLE = os.path.join(os.path.dirname(sys.executable), "ansible")
MODULE = ROOT / "plugins/modules/vllm_plan.py"


def _env():
    env = dict(os.environ)
    env["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")
    env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.builtin.json"
    env["ANSIBLE_LOAD_CALLBACK_PLUGINS"] = "1"
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


def adhoc(args, *extra):
    return adhoc_module("dgxspark.cluster.vllm_plan", args, *extra)


def adhoc_module(module, args, *extra):
    """Run ``module`` ad hoc on localhost from the repo root; return (rc, result)."""
    proc = subprocess.run([ANSIBLE, "localhost", "-m", module, "-a",
                           json.dumps(args)] + list(extra),
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120, check=False)
    # profile_tasks (ansible.cfg) prints timings around the JSON document
    out, dummy = json.JSONDecoder().raw_decode(proc.stdout[proc.stdout.index("{"):])
    result = out["plays"][0]["tasks"][0]["hosts"]["localhost"]
    return proc.returncode, result


def test_adhoc_from_repo_root_glm_tp3():
    rc, result = adhoc({"model_config": "recipes/models/glm-5.2-nvfp4",
                        "tensor_parallel_size": 3})
    assert rc != 0 and result["failed"] is True
    assert result["satisfiable"] is False
    rules = [v["rule"] for v in result["violations"]]
    assert "attention_heads_tp" in rules and "vocab_tp" in rules
    assert "[attention_heads_tp]" in result["msg"] and "[vocab_tp]" in result["msg"]
    assert result["changed"] is False


def test_adhoc_satisfiable_plan_is_ok_and_unchanged():
    rc, result = adhoc({"model_config": GLM, "tensor_parallel_size": 4, "nodes": 4,
                        "decode_context_parallel_size": 4, "kv_cache_dtype": "fp8",
                        "max_model_len": 131072, "kv_cache_memory_bytes": 1810000000})
    assert rc == 0, result
    assert result["satisfiable"] is True and result["changed"] is False
    assert result["kv_cache"]["tokens"] > 131072
    assert any("SATISFIABLE" in line for line in result["report"])


def test_adhoc_check_mode_behaves_the_same():
    args = {"model_config": MIMO, "tensor_parallel_size": 3, "nodes": 3, "virtual_heads": True,
            "vllm_patches": ["virtual-heads", "moe-zero-fill", "sink-padding"],
            "speculative_config": {"method": "mtp", "num_speculative_tokens": 2}}
    rc, normal = adhoc(args)
    rc_check, checked = adhoc(args, "--check")
    assert rc == rc_check == 0
    assert normal["padding"] == checked["padding"] and checked["changed"] is False


def test_adhoc_bad_option_names_the_option():
    rc, result = adhoc({"model_config": GLM, "tensor_parallel_size": -3})
    assert rc != 0
    assert result["option"] == "tensor_parallel_size"
    assert "tensor_parallel_size=-3" in result["msg"] and "Traceback" not in json.dumps(result)


def test_adhoc_missing_config_field_names_the_field(tmp_path):
    data = json.loads((ROOT / "recipes/models/glm-5.2-nvfp4/config.json").read_text())
    del data["kv_lora_rank"]
    (tmp_path / "config.json").write_text(json.dumps(data))
    rc, result = adhoc({"model_config": str(tmp_path), "tensor_parallel_size": 4})
    assert rc != 0 and result["field"] == "kv_lora_rank"
    assert "kv_lora_rank" in result["msg"]


def test_adhoc_plan_typo_names_the_closest_option():
    rc, result = adhoc({"model_config": GLM, "plan": {"tensor_paralel_size": 3}})
    assert rc != 0 and result["option"] == "tensor_paralel_size"
    assert "did you mean tensor_parallel_size?" in result["fix"]


def test_adhoc_huge_values_fail_with_json_safe_results():
    rc, result = adhoc({"model_config": GLM, "plan": {"kv_cache_memory_bytes": 10 ** 400,
                                                      "max_model_len": "--1"}})
    assert rc != 0 and result["option"] in ("kv_cache_memory_bytes", "max_model_len")
    assert "Traceback" not in json.dumps(result) and "Fix:" in result["msg"]


def test_adhoc_config_that_is_a_directory_says_so(tmp_path):
    (tmp_path / "config.json").mkdir()
    rc, result = adhoc({"model_config": str(tmp_path)})
    assert rc != 0 and result["field"] is None and "is a directory" in result["msg"]


def test_preflight_report_playbook_runs(tmp_path):
    runner = ansible_runner.run(
        private_data_dir=str(tmp_path), project_dir=str(ROOT),
        playbook=str(ROOT / "playbooks/preflight_report.yml"), quiet=True,
        envvars={"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")},
        cmdline="--check")
    assert runner.status == "successful", runner.stdout.read()
    reports = [e["event_data"]["res"]["msg"] for e in runner.events
               if e.get("event") == "runner_on_ok"
               and "Show the plan in plain words" in e["event_data"].get("task", "")]
    assert len(reports) == 2
    assert "132,096 tokens" in " ".join(reports[0])
    assert "3,127,938 tokens" in " ".join(reports[1])
    assert sum(runner.stats["changed"].values()) == 0


def _documented():
    src = MODULE.read_text()
    namespace = {}
    exec(src.split("from ansible.module_utils")[0], namespace)
    return (yaml.safe_load(namespace["DOCUMENTATION"]), yaml.safe_load(namespace["RETURN"]))


def test_return_documents_what_the_module_returns():
    dummy, ret = _documented()
    rc, result = adhoc({"model_config": GLM, "tensor_parallel_size": 4, "nodes": 4,
                        "kv_cache_memory_bytes": 1810000000, "kv_cache_dtype": "fp8",
                        "max_model_len": 131072, "decode_context_parallel_size": 4,
                        "suggest": True})
    assert rc == 0
    # keys Ansible and the json callback add to every result
    internal = {"invocation", "failed", "_ansible_no_log", "changed", "warnings", "deprecations",
                "msg", "action"}
    undocumented = set(result) - set(ret) - internal
    assert not undocumented, undocumented
    for key, meta in ret.items():
        if "success" in meta["returned"] or meta["returned"] == "always" or key.startswith(
                "suggestion"):
            assert key in result, key
