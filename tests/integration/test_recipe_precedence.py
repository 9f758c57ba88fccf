"""Variable precedence of site.yml's recipe mapping, run through ansible-playbook.

-e beats the inventory (host_vars, then group vars), which beats the dgxspark_* overrides of
the recipe, which beat the recipe; overrides of the plan merge into the recipe's plan. A bad
recipe name or override fails before any host is contacted (the hosts here are unreachable
addresses: nothing may connect to them)."""
from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from conftest import ROOT

PLAY = """
- name: Recipe inputs of the sparks
  hosts: sparks
  gather_facts: false
  tasks:
    - name: Load the recipe
      ansible.builtin.import_tasks: {tasks}
    - name: Keep what every host ends up with
      ansible.builtin.copy:
        dest: "{out}/{{{{ inventory_hostname }}}}.json"
        content: "{{{{ {{'env': vllm_cluster_env, 'name': vllm_cluster_served_model_name,
                       'plan': preflight_plan, 'args': vllm_cluster_engine_args,
                       'executor': vllm_cluster_executor, 'patches': vllm_image_patches}} | to_json }}}}"
        mode: "0644"
      delegate_to: localhost
"""


@pytest.fixture
def project(tmp_path):
    inventory = tmp_path / "inventory"
    (inventory / "host_vars").mkdir(parents=True)
    (inventory / "group_vars").mkdir()
    # 192.0.2.0/24 (TEST-NET-1): never reachable, so any connection attempt would fail.
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"sparks": {
        "hosts": {"s1": {"ansible_host": "192.0.2.1"}, "s2": {"ansible_host": "192.0.2.2"},
                  "s3": {"ansible_host": "192.0.2.3"}},
        "vars": {"vllm_cluster_served_model_name": "from-inventory-file"}}}}}))
    (inventory / "group_vars" / "sparks.yml").write_text(yaml.safe_dump({
        "dgxspark_plan": {"max_model_len": 65536},
        "dgxspark_env": {"EXTRA": "1"}}))
    (inventory / "host_vars" / "s2.yml").write_text(yaml.safe_dump({
        "vllm_cluster_env": {"ONLY": "s2"}}))
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "play.yml").write_text(PLAY.format(tasks=ROOT / "playbooks/tasks/recipe.yml",
                                                   out=out))
    return tmp_path


def run(project, *extra):
    return subprocess.run(["ansible-playbook", "-i", str(project / "inventory"),
                           str(project / "play.yml"), *extra], capture_output=True, text=True,
                          cwd=str(ROOT), timeout=300, check=False)


def result(project, host):
    return json.loads((project / "out" / ("%s.json" % host)).read_text())


def test_inventory_beats_the_recipe_and_overrides_merge(project):
    proc = run(project, "-e", "dgxspark_recipe=glm52")
    assert proc.returncode == 0, proc.stdout[-3000:]
    s1, s2 = result(project, "s1"), result(project, "s2")
    recipe = yaml.safe_load((ROOT / "recipes/vars/glm52.yml").read_text())
    # the inventory file's group var wins over the recipe's served name
    assert s1["name"] == s2["name"] == "from-inventory-file"
    # dgxspark_plan merges: one key changed, the rest of the recipe's plan stays
    assert s1["plan"]["max_model_len"] == 65536
    assert s1["plan"]["tensor_parallel_size"] == recipe["recipe_plan"]["tensor_parallel_size"]
    assert s1["args"]["max_model_len"] == 65536
    # dgxspark_env merges into the recipe's env; a host's own vllm_cluster_env replaces it
    assert s1["env"]["EXTRA"] == "1"
    assert s1["env"]["CUDA_DEVICE_ORDER"] == recipe["recipe_env"]["CUDA_DEVICE_ORDER"]
    assert s2["env"] == {"ONLY": "s2"}
    assert s1["patches"] == recipe["recipe_image"]["patches"]
    assert s1["executor"] == "mp"


def test_extra_vars_beat_the_inventory(project):
    proc = run(project, "-e", "dgxspark_recipe=glm52", "-e", "vllm_cluster_served_model_name=cli",
               "-e", '{"dgxspark_plan": {"distributed_executor_backend": "ray"}}')
    assert proc.returncode == 0, proc.stdout[-3000:]
    s1 = result(project, "s1")
    assert s1["name"] == "cli"
    # -e replaces the inventory's dgxspark_plan (extra vars are not merged), then it merges
    # into the recipe's plan
    assert s1["executor"] == "ray" and s1["plan"]["max_model_len"] == 131072


@pytest.mark.parametrize("extra, expect", [
    (["-e", "dgxspark_recipe=glm5"], "dgxspark_recipe='glm5' is not a recipe"),
    (["-e", '{"dgxspark_plan": {"vllm_build": "vllm-0.33"}}'],
     "dgxspark_plan.vllm_build='vllm-0.33' belongs to the image"),
    (["-e", '{"dgxspark_plan": ["tp", 3]}'], "dgxspark_plan=['tp', 3] must be a mapping"),
])
def test_bad_input_fails_before_any_host_is_contacted(project, extra, expect):
    proc = run(project, *extra)
    assert proc.returncode != 0
    assert expect in proc.stdout, proc.stdout[-3000:]
    assert "UNREACHABLE" not in proc.stdout


def run_site(project, *extra):
    return subprocess.run(["ansible-playbook", "-i", str(project / "inventory"),
                           str(ROOT / "site.yml"), *extra], capture_output=True, text=True,
                          cwd=str(ROOT), timeout=300, check=False)


def test_site_proves_the_plan_before_any_spark_is_contacted(project):
    # GLM-5.2 at TP3: 64 heads do not divide by 3. The hosts are unreachable: the run must stop
    # at the plan, on the controller, never at a connection.
    proc = run_site(project, "-e", "dgxspark_recipe=glm52", "-e",
                    '{"dgxspark_plan": {"tensor_parallel_size": 3, "nodes": 3, '
                    '"decode_context_parallel_size": 1}}')
    assert proc.returncode != 0
    assert "attention_heads_tp" in proc.stdout, proc.stdout[-3000:]
    assert "UNREACHABLE" not in proc.stdout


def test_site_without_a_sparks_group_says_so(tmp_path):
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {
        "node1": {"ansible_host": "192.0.2.1"}}}}))
    proc = subprocess.run(["ansible-playbook", "-i", str(tmp_path / "hosts.yml"),
                           str(ROOT / "site.yml")], capture_output=True, text=True,
                          cwd=str(ROOT), timeout=300, check=False)
    assert proc.returncode != 0
    assert "The inventory has no host in the group sparks" in proc.stdout, proc.stdout[-2000:]
