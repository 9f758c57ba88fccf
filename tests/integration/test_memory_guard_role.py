"""The memory_guard role's argument spec and threshold checks, run through ansible-playbook on
the controller before any task changes anything (check mode, localhost)."""
from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from conftest import ROOT

PLAY = [{"name": "Memory guard", "hosts": "localhost", "gather_facts": False,
         "connection": "local", "roles": [{"role": "dgxspark.cluster.memory_guard"}]}]


def run(tmp_path, extra, *args):
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump(PLAY))
    return subprocess.run(["ansible-playbook", "-i", str(ROOT / "inventory/controller.yml"),
                           str(play), "--check", "-e", json.dumps(extra), *args],
                          capture_output=True, text=True, cwd=str(ROOT), timeout=300, check=False)


def test_the_defaults_pass_the_argument_spec(tmp_path):
    # --tags none: only the role's argument validation (tagged always) runs
    proc = run(tmp_path, {}, "--tags", "none")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_nixos_percent_thresholds_pass_the_argument_spec(tmp_path):
    proc = run(tmp_path, {"memory_guard_mem_term_percent": 2, "memory_guard_mem_kill_percent": 1.5,
                          "memory_guard_swap_size_gib": 32}, "--tags", "none")
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("extra, name", [
    ({"memory_guard_mem_term_kib": "lots"}, "memory_guard_mem_term_kib"),
    ({"memory_guard_stop_engine": "maybe"}, "memory_guard_stop_engine"),
    ({"memory_guard_swap_size_gib": [32]}, "memory_guard_swap_size_gib"),
])
def test_a_wrong_type_fails_the_argument_spec(tmp_path, extra, name):
    proc = run(tmp_path, extra, "--tags", "none")
    assert proc.returncode != 0
    assert "memory_guard" in proc.stdout and name in proc.stdout, proc.stdout


def test_a_kill_level_above_the_term_level_fails_naming_it_before_any_change(tmp_path):
    proc = run(tmp_path, {"memory_guard_mem_kill_kib": 600000})
    assert proc.returncode != 0
    assert ("dgxspark.cluster.earlyoom_argv: memory_guard_mem_kill_kib=600000: is above "
            "memory_guard_mem_term_kib (524288)") in proc.stdout, proc.stdout
    assert "changed=0" in proc.stdout
    assert "Install earlyoom" not in proc.stdout
