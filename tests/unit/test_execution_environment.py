"""meta/execution-environment.yml: what an execution environment needs to run the collection's
plugins on the controller, and nothing of the development tools.

The Python requirements are exactly the third-party packages the plugins import (found with
ast, outside the standard library, ansible-core and the collection itself), each bounded below
by the version requirements.txt pins; the files it names exist and ship."""
from __future__ import annotations

import ast
import re
import sys

import yaml

from conftest import ROOT

# import name -> distribution name (PyPI)
DISTRIBUTION = {"yaml": "pyyaml", "netaddr": "netaddr"}


def _plugin_imports():
    found = {}
    for path in (ROOT / "plugins").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in ("ansible", "ansible_collections"):
                    continue
                found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def _requirements(path):
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, op, version = re.match(r"^([A-Za-z0-9_.-]+)\s*(==|>=)\s*([0-9.]+)$",
                                         line).groups()
            out[name.lower()] = (op, version)
    return out


def test_metadata_names_the_dependency_files():
    meta = yaml.safe_load((ROOT / "meta/execution-environment.yml").read_text())
    assert meta["version"] == 3
    assert set(meta["dependencies"]) == {"python", "system"}
    for entry in meta["dependencies"].values():
        assert not entry.startswith("/") and (ROOT / entry).is_file(), entry


def test_python_requirements_are_the_plugins_imports():
    imports = _plugin_imports()
    unknown = sorted(set(imports) - set(DISTRIBUTION))
    assert not unknown, "plugins import %s: add it to meta/ee-requirements.txt, " \
        "requirements.txt and DISTRIBUTION here" % {u: sorted(imports[u]) for u in unknown}
    ee = _requirements(ROOT / "meta/ee-requirements.txt")
    assert set(ee) == set(DISTRIBUTION[name] for name in imports)
    pinned = _requirements(ROOT / "requirements.txt")
    for name, (op, version) in ee.items():
        assert op == ">=" and pinned[name] == ("==", version), (name, pinned.get(name))


def test_system_requirements_are_bindep_lines():
    lines = [line for line in (ROOT / "meta/ee-bindep.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines and all(re.match(r"^[a-z0-9.+-]+( \[[a-z:! ]+\])?$", line) for line in lines)
