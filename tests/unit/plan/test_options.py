"""The one list of plan options (plan/request.py OPTIONS) and what is derived from it.

The vllm_plan module's argument spec is built from the list; its DOCUMENTATION is static
text for ansible-doc, so these tests hold it to the list: the same options, types, defaults,
choices and elements, every bound stated, and how each option reaches vLLM (an engine
argument, plan only, or an environment variable). A grep test keeps the option names from
being typed a second time anywhere in the collection's code.
"""
from __future__ import annotations

import ast
import subprocess

import pytest
import yaml

from ansible_collections.dgxspark.cluster.plugins.module_utils.plan import request

from conftest import ROOT

MODULE = ROOT / "plugins/modules/vllm_plan.py"
MODULE_ONLY = {"plan", "suggest", "fail_on_violations"}


def documented_options():
    text = MODULE.read_text()
    namespace = {}
    exec(text.split("from ansible.module_utils")[0], namespace)
    return yaml.safe_load(namespace["DOCUMENTATION"])["options"]


def description(entry):
    lines = entry["description"]
    return " ".join(lines if isinstance(lines, list) else [lines])


def test_the_module_spec_is_derived_from_the_option_list():
    spec = request.argument_spec()
    assert list(spec) == list(request.OPTIONS)
    assert spec["tensor_parallel_size"] == {"type": "int", "default": 1}
    assert spec["model_config"] == {"type": "path", "required": True}
    assert spec["cudagraph_capture_sizes"] == {"type": "list", "elements": "int"}
    assert spec["dtype"]["choices"] == list(request.OPTIONS["dtype"].choices)
    # a default list is a copy: a module run cannot change the option list
    spec["vllm_patches"]["default"].append("x")
    assert request.OPTIONS["vllm_patches"].default == []


def test_documentation_states_the_derived_spec():
    docs = documented_options()
    spec = request.argument_spec()
    assert set(docs) - MODULE_ONLY == set(spec)
    for name, entry in spec.items():
        doc = docs[name]
        assert doc.get("type", "str") == entry["type"], name
        assert doc.get("default") == entry.get("default"), name
        assert doc.get("choices") == entry.get("choices"), name
        assert doc.get("elements") == entry.get("elements"), name
        assert bool(doc.get("required")) == bool(entry.get("required")), name


@pytest.mark.parametrize("name", sorted(request.OPTIONS))
def test_documentation_states_bounds_and_how_the_option_reaches_vllm(name):
    option = request.OPTIONS[name]
    text = description(documented_options()[name])
    if option.bounds_text():
        assert option.bounds_text() in text, (name, option.bounds_text())
    if option.max_items:
        assert "at most %d" % option.max_items in text.lower(), name
    if option.serve == request.SERVE:
        assert "C(--%s)" % name.replace("_", "-") in text, name
    elif option.serve == request.PLAN:
        assert "Plan only, not passed to C(vllm serve)" in text, name
    else:
        assert "C(%s=1)" % option.env in text and "Not a C(vllm serve) argument" in text, name


def test_speculative_config_bounds_are_documented():
    text = description(documented_options()["speculative_config"])
    tokens = request.SPEC_OPTIONS["num_speculative_tokens"]
    assert "between %d and %d" % (tokens.minimum, tokens.maximum) in text


# The collection's code. Tests, molecule scenarios and recipes hold literal input; scripts/
# are development tools (scripts/differential.py lists the vllm-oracle's query fields).
SCANNED = ("plugins/", "roles/", "playbooks/", "site.yml")
NAMES = set(request.OPTIONS)
# A copy of the list names many options (the old ones: 26 in the module, 7 in cluster.PLAN_ONLY,
# 17 in the stand-in); a few names together are a consumer's subset (e.g. what a sweep varies).
COPY = 6


def _name(value):
    return value.replace("-", "_") if isinstance(value, str) else None


def _python_copies(path):
    """Sequence literals (list, tuple, set) naming COPY or more plan options, also as the first word of
    their tuples (argparse tables such as ("tensor-parallel-size", int, 1))."""
    tree = ast.parse((ROOT / path).read_text())
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            continue
        names = set()
        for element in node.elts:
            if isinstance(element, (ast.Tuple, ast.List)) and element.elts:
                element = element.elts[0]
            if isinstance(element, ast.Constant) and _name(element.value) in NAMES:
                names.add(_name(element.value))
        if len(names) >= COPY:
            out.append((path, node.lineno, sorted(names)))
    for node in ast.walk(tree):
        # a dict that passes COPY+ options through by name: {"block_size": args.block_size, ...}
        # (the engine's resolved plan maps option names to the values vLLM derives: not a copy)
        if isinstance(node, ast.Dict) and str(path) != "plugins/module_utils/plan/engine.py":
            through = {key.value for key, value in zip(node.keys, node.values)
                       if isinstance(key, ast.Constant) and key.value in NAMES and
                       (isinstance(value, ast.Attribute) and value.attr == key.value or
                        isinstance(value, ast.Subscript) and
                        isinstance(value.slice, ast.Constant) and
                        value.slice.value == key.value)}
            if len(through) >= COPY:
                out.append((path, node.lineno, sorted(through)))
    return out


def _yaml_copies(path):
    """YAML lists of COPY+ plan option names, and mappings that pass COPY+ options through one by
    one (``tensor_parallel_size: "{{ ....tensor_parallel_size }}"``)."""
    out = []

    def walk(node):
        if isinstance(node, list):
            names = {_name(v) for v in node if _name(v) in NAMES}
            if len(names) >= COPY:
                out.append((path, sorted(names)))
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            through = {k for k, v in node.items() if k in NAMES and isinstance(v, str) and
                       "{{" in v and k in v}
            if len(through) >= COPY:
                out.append((path, sorted(through)))
            for item in node.values():
                walk(item)

    for document in yaml.safe_load_all((ROOT / path).read_text()):
        walk(document)
    return out


def test_no_second_hand_typed_copy_of_the_plan_option_names():
    files = subprocess.run(["git", "ls-files", *SCANNED], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    copies = []
    for path in files:
        if path == "plugins/module_utils/plan/request.py":
            continue
        if path.endswith(".py"):
            copies += _python_copies(path)
        elif path.endswith((".yml", ".yaml")) and "/templates/" not in path:
            copies += _yaml_copies(path)
    assert not copies, copies


def test_the_scan_finds_the_copies_it_is_meant_to_find(tmp_path):
    # the module's old PLAN_OPTIONS tuple, the stand-in's argparse table and options dict,
    # cluster's old PLAN_ONLY; a small subset is not a copy
    names = sorted(NAMES)[:COPY]
    dashed = [n.replace("_", "-") for n in names]
    code = "\n".join([
        "PLAN_OPTIONS = (%s)" % ", ".join(repr(n) for n in names),
        "TABLE = (%s)" % ", ".join("(%r, int, 1)" % n for n in dashed),
        "PLAN_ONLY = frozenset([%s])" % ", ".join(repr(n) for n in names),
        "OPTS = {%s}" % ", ".join("%r: args.%s" % (n, n) for n in names),
        "SWEPT = (%s)" % ", ".join(repr(n) for n in names[:COPY - 1]),
    ]) + "\n"
    (tmp_path / "copy.py").write_text(code)
    found = _python_copies(tmp_path / "copy.py")
    assert sorted(line for dummy, line, dummy in found) == [1, 2, 3, 4]
    verify = {"vllm_plan": dict((n, "{{ item.plan.%s }}" % n) for n in names)}
    (tmp_path / "verify.yml").write_text(yaml.safe_dump([verify, {"list": names}]))
    assert len(_yaml_copies(tmp_path / "verify.yml")) == 2
