"""Every plugin's documentation parses with ansible-doc and says what the code does.

For each module: the options ansible-doc shows are exactly the argument spec (type,
default, required, choices, elements), and the module supports check mode as documented.
For each filter: its documentation parses.
"""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT

MODULES = sorted(p.stem for p in (ROOT / "plugins/modules").glob("*.py"))
FILTERS = sorted(p.stem for p in (ROOT / "plugins/filter").glob("*.yml"))


def ansible_doc(kind, names):
    proc = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-doc"), "--json", "-t", kind]
        + ["dgxspark.cluster.%s" % n for n in names],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def module_docs():
    return ansible_doc("module", MODULES)


def argument_spec(monkeypatch, name):
    from ansible.module_utils import basic

    def capture(self, argument_spec, **kwargs):
        raise SystemExit((argument_spec, kwargs))

    monkeypatch.setattr(basic.AnsibleModule, "__init__", capture)
    module = importlib.import_module("ansible_collections.dgxspark.cluster.plugins.modules."
                                     + name)
    with pytest.raises(SystemExit) as stop:
        module.main()
    return stop.value.code


@pytest.mark.parametrize("name", MODULES)
def test_module_documentation_is_the_argument_spec(module_docs, monkeypatch, name):
    doc = module_docs["dgxspark.cluster." + name]
    assert doc["doc"]["short_description"] and doc["examples"] and doc["return"]
    spec, kwargs = argument_spec(monkeypatch, name)
    options = doc["doc"].get("options", {})
    assert set(options) == set(spec)
    for option, data in options.items():
        code = spec[option]
        assert data.get("type", "str") == code.get("type", "str"), option
        assert data.get("default") == code.get("default"), option
        assert bool(data.get("required")) == bool(code.get("required")), option
        assert data.get("choices") == code.get("choices"), option
        assert data.get("elements") == code.get("elements"), option
    documented = doc["doc"]["attributes"]["check_mode"]["support"]
    assert (documented != "none") == bool(kwargs.get("supports_check_mode")), name


def test_filter_documentation_parses():
    docs = ansible_doc("filter", FILTERS)
    assert sorted(docs) == ["dgxspark.cluster." + n for n in FILTERS]
    for doc in docs.values():
        assert doc["doc"]["short_description"]
