"""playbooks/eugr_import.yml (the dgxspark.cluster.eugr_recipe action) as Ansible runs it:
the file it writes is a recipe the recipe lookup loads and site.yml can run; check mode writes
nothing; strict mode, a malformed recipe and an unsatisfiable plan fail with their reasons."""
from __future__ import annotations

import itertools

import ansible_runner
import yaml

from ansible_collections.dgxspark.cluster.plugins.module_utils import recipe

from conftest import ROOT

FIXTURES = ROOT / "tests/fixtures/eugr"
_runs = itertools.count()


def run(tmp_path, check=False, **extravars):
    private = tmp_path / ("runner%d" % next(_runs))
    private.mkdir()
    return ansible_runner.run(
        private_data_dir=str(private), project_dir=str(ROOT),
        playbook=str(ROOT / "playbooks/eugr_import.yml"), inventory=str(
            ROOT / "inventory/controller.yml"),
        extravars=extravars, envvars={"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")},
        cmdline="--check --diff" if check else None, quiet=True)


def task_result(runner, event="runner_on_ok"):
    found = [e["event_data"]["res"] for e in runner.events if e.get("event") == event
             and "Import the recipe" in e["event_data"].get("task", "")]
    assert len(found) == 1, runner.stdout.read()
    return found[0]


def test_import_writes_a_recipe_site_yml_can_run(tmp_path):
    dest = tmp_path / "recipes" / "mimo_eugr.yml"
    runner = run(tmp_path, eugr_src=str(FIXTURES / "mimo_v25_tp3.yaml"), eugr_dest=str(dest))
    assert runner.status == "successful", runner.stdout.read()
    res = task_result(runner)
    assert res["changed"] and res["satisfiable"] and res["dest"] == str(dest)
    assert [item["field"] for item in res["unmapped"]][:3] == ["mods"] * 3
    data = yaml.safe_load(dest.read_text())
    assert data["recipe_name"] == "mimo_v25_tp3"
    roles = recipe.inputs(data, None, {"collection_root": str(ROOT)})
    assert roles["vllm_image_patches"] == ["virtual-heads", "moe-zero-fill", "sink-padding"]
    # a second run changes nothing
    again = task_result(run(tmp_path, eugr_src=str(FIXTURES / "mimo_v25_tp3.yaml"),
                            eugr_dest=str(dest)))
    assert again["changed"] is False


def test_check_mode_writes_nothing_and_shows_the_diff(tmp_path):
    dest = tmp_path / "glm.yml"
    runner = run(tmp_path, check=True, eugr_src=str(FIXTURES / "glm52_8x.yaml"),
                 eugr_dest=str(dest))
    assert runner.status == "successful", runner.stdout.read()
    res = task_result(runner)
    assert res["changed"] and not dest.exists()
    assert "recipe_plan:" in res["diff"]["after"]


def test_strict_fails_on_what_could_not_be_imported(tmp_path):
    dest = tmp_path / "glm.yml"
    runner = run(tmp_path, eugr_src=str(FIXTURES / "glm52_8x.yaml"), eugr_dest=str(dest),
                 eugr_strict=True)
    assert runner.status == "failed"
    msg = task_result(runner, "runner_on_failed")["msg"]
    assert "mods=mods/glm-5.2" in msg and "container=vllm-node" in msg and not dest.exists()


def test_a_malformed_recipe_fails_naming_the_field(tmp_path):
    src = tmp_path / "bad.yaml"
    src.write_text("name: x\ncontainer: c\ncommand: vllm serve x\ncomand: typo\n")
    runner = run(tmp_path, eugr_src=str(src), eugr_dest=str(tmp_path / "bad.yml"))
    assert runner.status == "failed"
    msg = task_result(runner, "runner_on_failed")["msg"]
    assert "comand='typo': is not a field of the eugr recipe format" in msg
    assert "did you mean command?" in msg


def test_an_unsatisfiable_plan_fails_with_the_rules_and_keeps_the_file_to_fix(tmp_path):
    data = yaml.safe_load((FIXTURES / "mimo_v25_tp3.yaml").read_text())
    data["mods"] = [m for m in data["mods"] if "virtual-heads" not in m]
    src = tmp_path / "mimo_no_vh.yaml"
    src.write_text(yaml.safe_dump(data))
    dest = tmp_path / "mimo_no_vh.yml"
    runner = run(tmp_path, eugr_src=str(src), eugr_dest=str(dest))
    assert runner.status == "failed"
    res = task_result(runner, "runner_on_failed")
    assert "[attention_heads_tp]" in res["msg"] and "virtual_heads: true" in res["msg"]
    assert dest.exists()
