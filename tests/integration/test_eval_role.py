"""playbooks/eval.yml (the eval role with site.yml's recipe mapping) as Ansible runs it, with
ansible_runner, against a fake OpenAI server on 127.0.0.1: the JSON per run and the table, the
recipe's minimum scores failing a regressed run and naming the scenarios, the lab (no gate, the
JSON says so), check mode, and bad input naming the variable.
"""
from __future__ import annotations

import itertools
import json
import sys

import ansible_runner
import pytest
import yaml

from ansible_collections.dgxspark.cluster.plugins.module_utils.eval import scenarios
from conftest import ROOT
from eval_replay import GOOD_RUN, SHIPPED, FakeOpenAI, policy, recorded

SET = {s.id: s for s in scenarios.load([str(SHIPPED)]).scenarios}
_runs = itertools.count()


def answers(regressed=()):
    """A model answering GOOD_RUN: a recorded PASS, or a FAIL for the scenarios in ``regressed``."""
    return policy({SET[sid].first_message(): recorded(sid, "FAIL" if sid in regressed else "PASS")
                   for sid in GOOD_RUN})


def play(tmp_path, url, check=False, **extravars):
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"sparks": {"hosts": {"spark1": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}}}))
    extravars = dict({"eval_api_url": url, "eval_results_dir": str(tmp_path / "results"),
                      "eval_select": GOOD_RUN}, **extravars)
    private = tmp_path / ("runner%d" % next(_runs))
    private.mkdir()
    return ansible_runner.run(
        private_data_dir=str(private), project_dir=str(ROOT),
        playbook=str(ROOT / "playbooks/eval.yml"), inventory=str(inventory), extravars=extravars,
        envvars={"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")},
        cmdline="--check" if check else None, quiet=True)


def task_results(runner, task, event="runner_on_ok"):
    return [e["event_data"].get("res", {}) for e in runner.events
            if e.get("event") == event and task in e["event_data"].get("task", "")]


def saved(tmp_path):
    return sorted((tmp_path / "results").glob("eval-2*.json"))


@pytest.fixture
def server():
    fakes = []

    def start(answer):
        fakes.append(FakeOpenAI(answer, model="MiMo-V2.5-NVFP4"))
        return fakes[-1].url

    yield start
    for fake in fakes:
        fake.close()


def test_a_run_writes_its_json_and_table_and_passes_the_recipes_gate(tmp_path, server):
    runner = play(tmp_path, server(answers()))
    assert runner.status == "successful", runner.stdout.read()
    (path,) = saved(tmp_path)
    doc = json.loads(path.read_text())
    # The default recipe (recipes/vars/site.yml links to the MiMo V2.5 TP3 recipe) names it.
    default = yaml.safe_load((ROOT / "recipes/vars/site.yml").read_text())["recipe_name"]
    assert default == "mimo_v25"
    assert doc["meta"]["label"] == default and doc["meta"]["context"]["recipe"] == default
    assert doc["meta"]["model"] == "MiMo-V2.5-NVFP4" and doc["meta"]["lab"] is False
    assert doc["aggregate"]["quality"] == 100.0
    (table,) = task_results(runner, "Eval | Show the results")
    assert table["msg"][-1] == "results: %s" % path
    assert "Gate: passed" in table["msg"]  # the recipe's recipe_eval_min_scores (85 / 80)
    written = task_results(runner, "Eval | Write the results of this run")
    assert written and written[0]["changed"] is False


def test_a_regressed_run_fails_the_gate_naming_the_scenarios(tmp_path, server):
    assert play(tmp_path, server(answers())).status == "successful"
    (earlier,) = saved(tmp_path)
    runner = play(tmp_path, server(answers({"multi-order-email", "select-gpu-power"})))
    assert runner.status == "failed"
    (failure,) = task_results(runner, "", "runner_on_failed")
    msg = failure["msg"]
    assert msg.startswith("scores below the minimum: quality 75.0 < 85")
    assert "Regressed since the last saved run (%s" % earlier in msg
    assert "multi-order-email (PASS -> FAIL: the first step is missing" in msg
    assert "select-gpu-power (PASS -> FAIL: picked get_node_status" in msg
    assert "single-weather" not in msg
    later = [p for p in saved(tmp_path) if p != earlier]
    assert len(later) == 1 and msg.endswith("Results: %s" % later[0])  # written before failing


def test_the_lab_model_gets_no_gate_and_is_named(tmp_path, server):
    runner = play(tmp_path, server(lambda request: {"content": "the the spark ,,"}),
                  dgxspark_lab=True)
    assert runner.status == "successful", runner.stdout.read()
    (path,) = saved(tmp_path)
    doc = json.loads(path.read_text())
    assert doc["meta"]["lab"] is True and "tiny random-weight model" in doc["meta"]["note"]
    assert doc["aggregate"]["quality"] == 0.0


def test_check_mode_sends_nothing_and_writes_nothing(tmp_path):
    fake = FakeOpenAI(answers())
    try:
        runner = play(tmp_path, fake.url, check=True)
    finally:
        fake.close()
    assert runner.status == "successful", runner.stdout.read()
    # The module skips itself (after validating the scenarios); nothing after it writes.
    assert task_results(runner, "Eval | Run the tool-calling scenarios", "runner_on_skipped")
    assert not task_results(runner, "Eval | Show the results")
    assert fake.requests == [] and fake.gets == []
    assert not (tmp_path / "results").exists()


def test_bad_minimum_scores_name_the_variable(tmp_path, server):
    runner = play(tmp_path, server(answers()), dgxspark_eval_min_scores={"qualty": 80})
    assert runner.status == "failed"
    (failure,) = task_results(runner, "", "runner_on_failed")
    assert "eval_min_scores={'qualty': 80}" in failure["msg"]
    assert "recipe_eval_min_scores" in failure["msg"] and "Fix:" in failure["msg"]
