"""Helpers for tests that build the simulated Spark lab (root, Linux; marker `lab`)."""
from __future__ import annotations

import os

import ansible_runner
import pytest
import yaml

from conftest import ROOT

# The second lab's settings (make test runs it beside the first): its own lab_dir, prefix and
# management network; its inventory is in its lab_dir.
SECOND_LAB = yaml.safe_load((ROOT / "molecule/_lab/second_lab.yml").read_text())
SECOND_LAB_INVENTORY = SECOND_LAB["lab_dir"] + "/inventory.yml"


def needs_root():
    """Lab tests build network namespaces and nspawn nodes: opt in with DGXSPARK_LAB_TESTS=1
    (scripts/test.sh does), as root on Linux. One lab per lab_dir: a test's lab beside
    another needs its own lab_dir, prefix and management network (SECOND_LAB)."""
    if os.environ.get("DGXSPARK_LAB_TESTS") != "1":
        pytest.skip("set DGXSPARK_LAB_TESTS=1 to build the simulated lab (make test does)")
    if os.geteuid() != 0 or not os.path.exists("/proc/self/ns/net"):
        pytest.skip("the lab needs root on Linux")


def play(tmp_path, playbook, extravars=None, inventory=None, cmdline=None):
    """Run a playbook of the repo with ansible-runner; return (status, runner)."""
    os.makedirs(str(tmp_path), exist_ok=True)
    runner = ansible_runner.run(
        private_data_dir=str(tmp_path), project_dir=str(ROOT), playbook=str(ROOT / playbook),
        inventory=inventory or [str(ROOT / "inventory/controller.yml")],
        extravars=extravars or {}, quiet=True, cmdline=cmdline,
        envvars={"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")})
    return runner.status, runner


def failure_messages(runner):
    out = []
    for event in runner.events:
        if event.get("event") == "runner_on_failed":
            out.append(event["event_data"]["res"].get("msg", ""))
    return " ".join(out)
