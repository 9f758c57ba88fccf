"""Without netaddr the fabric modules fail with missing_required_lib's message and the way to
install it, instead of an ImportError at import (ansible-test's import sanity needs the
import itself to succeed)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT

RUN = r"""
import json, sys
sys.modules["netaddr"] = None          # import netaddr -> ImportError
sys.path.insert(0, %(collections)r)
from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes
basic._ANSIBLE_ARGS = to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": %(args)s}))
basic._ANSIBLE_PROFILE = "legacy"
import importlib
module = importlib.import_module("ansible_collections.dgxspark.cluster.plugins.modules.%(name)s")
module.main()
"""


@pytest.mark.parametrize("name,args", [
    ("fabric_plan", {"nodes": ["a", "b", "c"], "topology": "ring3"}),
    ("lab_network", {"nodes": ["a", "b", "c"], "state": "present"}),
])
def test_module_without_netaddr_says_how_to_install_it(name, args):
    proc = subprocess.run([sys.executable, "-c", RUN % {
        "collections": str(ROOT / ".collections"), "args": json.dumps(args), "name": name}],
        capture_output=True, text=True, timeout=120, cwd=ROOT, check=False)
    result = json.loads(proc.stdout)
    assert proc.returncode == 1 and result["failed"] is True, proc.stdout + proc.stderr
    assert "Failed to import the required Python library (netaddr)" in result["msg"]
    assert "pip install netaddr" in result["msg"]
    assert "actions" not in result  # nothing was touched


def test_the_modules_plan_with_netaddr():
    from ansible_collections.dgxspark.cluster.plugins.module_utils import lab, topology

    assert topology.HAS_NETADDR is True
    assert topology.plan(["a", "b", "c"], "ring3")["nodes"]["a"]["env"]["VLLM_HOST_IP"]
    assert lab.wiring(["a", "b", "c"], "ring3")
