"""The collection as a Galaxy user gets it: built with ``ansible-galaxy collection build``,
installed with ``ansible-galaxy collection install`` into a directory of its own, and run from a
project directory elsewhere with the collection playbooks (``dgxspark.cluster.site``, the
recipes, the stages). Nothing of the checkout is on the collections path, and nothing may be
written into the installed collection: results go under the project directory. The Sparks of
the inventory are unreachable addresses (TEST-NET-1): every run here stays on the controller."""
from __future__ import annotations

import json
import os
import subprocess

import pytest
import yaml

from conftest import ROOT

PLAYBOOKS = ("site", "glm52", "mimo_v25", "fabric", "prune", "image", "cluster", "verify",
             "benchmark", "eval", "stop", "switch", "lab", "preflight_report")


def clean_env(**extra):
    """The environment without the checkout's Ansible settings (ansible.cfg, collections path)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", **extra)
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    base = tmp_path_factory.mktemp("galaxy")
    build = subprocess.run(["ansible-galaxy", "collection", "build", "--output-path", str(base),
                            str(ROOT)], capture_output=True, text=True, timeout=300,
                           env=clean_env(), cwd=str(base), check=False)
    assert build.returncode == 0, build.stdout + build.stderr
    tarball = next(base.glob("dgxspark-cluster-*.tar.gz"))
    collections = base / "collections"
    # --no-deps: the community collections come with the ansible package (Galaxy may be out of
    # reach), as on a machine that installed ansible from PyPI
    inst = subprocess.run(["ansible-galaxy", "collection", "install", "--no-deps", "--force",
                           "-p", str(collections), str(tarball)], capture_output=True, text=True,
                          timeout=300, env=clean_env(), cwd=str(base), check=False)
    assert inst.returncode == 0, inst.stdout + inst.stderr
    root = collections / "ansible_collections" / "dgxspark" / "cluster"
    assert (root / "playbooks" / "site.yml").is_file()
    return collections, root


@pytest.fixture
def project(tmp_path):
    """A user's project: an inventory and nothing else."""
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump({"all": {"children": {
        "sparks": {"hosts": {"spark1": {"ansible_host": "192.0.2.1"},
                             "spark2": {"ansible_host": "192.0.2.2"},
                             "spark3": {"ansible_host": "192.0.2.3"}}},
        "mikrotik": {"hosts": {"crs804": {
            "ansible_host": "192.0.2.10", "ansible_connection": "local",
            "mikrotik_switch_model": "CRS804-4DDQ",
            "mikrotik_switch_ports": [{"interface": "qsfp56-dd-1-1", "node": "spark1"},
                                      {"interface": "qsfp56-dd-1-5", "node": "spark2"},
                                      {"interface": "qsfp56-dd-2-1", "node": "spark3"}]}}}}}}))
    return tmp_path


def playbook(installed, project, *args):
    collections, dummy = installed
    env = clean_env(ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_HOST_KEY_CHECKING="False")
    return subprocess.run(["ansible-playbook", "-i", str(project / "inventory.yml"), *args],
                          capture_output=True, text=True, cwd=str(project), env=env,
                          timeout=600, check=False)


def written(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if not p.is_dir() and "__pycache__" not in p.parts)


def test_every_collection_playbook_resolves(installed, project):
    proc = playbook(installed, project, "--syntax-check",
                    *("dgxspark.cluster.%s" % name for name in PLAYBOOKS))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    for name in PLAYBOOKS:
        assert "playbook: %s/playbooks/%s.yml" % (installed[1], name) in proc.stdout


def test_site_proves_the_plan_from_the_installed_collection(installed, project):
    before = written(installed[1])
    proc = playbook(installed, project, "dgxspark.cluster.glm52", "-e",
                    '{"dgxspark_plan": {"tensor_parallel_size": 3, "nodes": 3, '
                    '"decode_context_parallel_size": 1}}')
    # the recipe and the bundled model profile are found inside the installed collection, the
    # plan is refused on the controller, no Spark is contacted
    assert proc.returncode != 0
    assert "attention_heads_tp" in proc.stdout, proc.stdout[-3000:]
    assert "UNREACHABLE" not in proc.stdout
    assert written(installed[1]) == before


def test_recipe_inputs_point_into_the_project(installed, project):
    (project / "play.yml").write_text(yaml.safe_dump([{
        "name": "Recipe inputs", "hosts": "localhost", "gather_facts": False,
        "tasks": [{"name": "Keep them", "ansible.builtin.copy": {
            "dest": str(project / "inputs.json"), "mode": "0644",
            "content": "{{ lookup('dgxspark.cluster.recipe', 'mimo_v25') | to_json }}"}}]}]))
    proc = playbook(installed, project, "play.yml")
    assert proc.returncode == 0, proc.stdout[-3000:]
    inputs = json.loads((project / "inputs.json").read_text())
    assert inputs["benchmark_results_dir"] == inputs["eval_results_dir"] == str(project / "results")


def test_switch_script_lands_in_the_project(installed, project):
    before = written(installed[1])
    proc = playbook(installed, project, "dgxspark.cluster.switch")
    assert proc.returncode == 0, proc.stdout[-3000:]
    script = project / "results" / "mikrotik" / "crs804.rsc"
    assert script.is_file() and "qsfp56-dd-1-1" in script.read_text()
    assert written(installed[1]) == before


def test_checkout_wrappers_import_the_collection_playbooks():
    assert yaml.safe_load((ROOT / "site.yml").read_text()) == [
        {"name": "Site", "ansible.builtin.import_playbook": "playbooks/site.yml"}]
    for name in ("glm52", "mimo_v25"):
        wrapper = yaml.safe_load((ROOT / "recipes" / ("%s.yml" % name)).read_text())
        assert wrapper[0]["ansible.builtin.import_playbook"] == "../playbooks/%s.yml" % name
        play = yaml.safe_load((ROOT / "playbooks" / ("%s.yml" % name)).read_text())
        assert play[0]["vars"] == {"dgxspark_recipe": name}
