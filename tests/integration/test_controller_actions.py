"""fabric_plan, fabric_check and vllm_plan run in Ansible's own process when the task runs on
the controller (their action plugins) and as modules anywhere else: both paths give the same
result, warnings and failures. The module path is run the way a node runs it (python3 and the
module's arguments file), the action path ad hoc on localhost."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from test_vllm_plan_module import adhoc_module

from conftest import GLM, ROOT

COLLECTIONS = str(ROOT / ".collections")


def module_path(name, args, tmp_path):
    """Run plugins/modules/<name>.py as a module outside Ansible's process; return (rc, result)."""
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = dict(os.environ, PYTHONPATH=COLLECTIONS)
    proc = subprocess.run([sys.executable, str(ROOT / "plugins" / "modules" / (name + ".py")),
                           str(args_file)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    return proc.returncode, json.loads(proc.stdout)


CASES = [
    ("fabric_plan", {"nodes": ["a", "b", "c"], "topology": "ring3"}),
    ("fabric_plan", {"nodes": ["a", "b", "c", "d"], "topology": "ring3"}),
    ("vllm_plan", {"model_config": GLM, "tensor_parallel_size": 4, "nodes": 4,
                   "decode_context_parallel_size": 4, "kv_cache_dtype": "fp8",
                   "max_model_len": 131072, "kv_cache_memory_bytes": 1810000000,
                   "speculative_config": {"method": "mtp", "num_speculative_tokens": 1}}),
    ("vllm_plan", {"model_config": GLM, "tensor_parallel_size": 3}),
    ("fabric_check", {"plan": {}, "probes": {}}),
]


@pytest.mark.parametrize("name,args", CASES)
def test_the_action_and_the_module_give_the_same_result(tmp_path, name, args):
    rc_action, action = adhoc_module("dgxspark.cluster." + name, args)
    rc_module, module = module_path(name, args, tmp_path)
    assert (rc_action == 0) == (rc_module == 0)
    assert bool(action.get("failed")) == bool(module.get("failed"))
    for key in set(module) - {"invocation", "warnings", "deprecations", "_ansible_no_log"}:
        assert action[key] == module[key], key
    assert messages(action.get("warnings", [])) == messages(module.get("warnings", []))


def messages(warnings):
    """A module's raw warnings are structured (ansible-core 2.19); Ansible shows their text."""
    return [w["event"]["msg"] if isinstance(w, dict) else w for w in warnings]


def test_the_action_runs_in_ansibles_process():
    """-vvv shows no remote command for the action path (a module would be executed)."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    ansible = os.path.join(os.path.dirname(sys.executable), "ansible")
    proc = subprocess.run([ansible, "localhost", "-m", "dgxspark.cluster.fabric_plan", "-a",
                           json.dumps({"nodes": ["a", "b", "c"], "topology": "ring3"}), "-vvv"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0 and "SUCCESS" in proc.stdout
    assert "EXEC" not in proc.stdout and "PUT" not in proc.stdout
