"""Differential test: the rendered ``vllm serve`` command lines against vLLM 0.33.0's own
argument parser (opt-in, the vllm-oracle's virtualenv; see test_vllm_oracle.py).

Every recipe's rendered command line must parse, and every engine argument must come back
with the value the recipe meant (booleans as --flag / --no-flag, dicts as JSON, lists as
separate values). Also checks that cluster.STORE_TRUE_ONLY lists exactly the boolean
arguments without a --no- form.
"""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from ansible_collections.dgxspark.cluster.plugins.module_utils import cluster

from oracle_env import MARKS, ORACLE, SCRIPT
from conftest import recipe_engine_args

pytestmark = MARKS

PARSE = r"""
import argparse, json, sys
sys.path.insert(0, sys.argv[1])
import oracle
oracle.install_fake_cuda("h200", 1)
from vllm.entrypoints.common.cli_args import make_arg_parser
from vllm.utils.argparse_utils import FlexibleArgumentParser
parser = make_arg_parser(FlexibleArgumentParser())
out = {"store_true": sorted(a.dest for a in parser._actions
                            if isinstance(a, argparse._StoreTrueAction)), "parsed": []}
for argv in json.load(sys.stdin):
    ns = parser.parse_args(argv)
    out["parsed"].append(json.loads(json.dumps(vars(ns), default=str)))
print("ORACLE-JSON" + json.dumps(out))
"""


def recipe_argvs():
    out = []
    for recipe in ("mimo_v25_pp3", "glm52", "mimo_v25"):
        args = {"distributed_executor_backend": "ray"}
        args.update(recipe_engine_args(recipe))
        argv = cluster.serve_argv("/models/m", args, "m", "10.0.0.1", 8000)
        out.append((recipe, args, argv[2:]))  # the parser takes what follows `vllm serve`
    extra = {"enforce_eager": False, "async_scheduling": False, "disable_log_stats": False,
             "cudagraph_capture_sizes": [1, 2, 4, 8], "enable_expert_parallel": True,
             # a one-value argument given a list: rendered as JSON, which vLLM parses
             "allowed_origins": ["*"]}
    out.append(("types", extra, cluster.serve_argv("/models/m", extra)[2:]))
    return out


@pytest.fixture(scope="module")
def oracle_view():
    cases = recipe_argvs()
    python = os.path.join(os.path.expanduser(ORACLE), "bin", "python")
    proc = subprocess.run([python, "-c", PARSE, os.path.dirname(os.path.abspath(SCRIPT))],
                          input=json.dumps([argv for dummy, dummy, argv in cases]),
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [l for l in proc.stdout.splitlines() if l.startswith("ORACLE-JSON")][-1]
    data = json.loads(line[len("ORACLE-JSON"):])
    return cases, data


def normal(value):
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def test_every_engine_argument_parses_to_the_recipes_value(oracle_view):
    cases, data = oracle_view
    for (name, args, dummy), parsed in zip(cases, data["parsed"]):
        for key, value in args.items():
            got = normal(parsed[key])
            if isinstance(value, bool) and key in cluster.STORE_TRUE_ONLY and not value:
                assert got in (False, None), (name, key, got)
            elif isinstance(value, dict):
                assert {k: got[k] for k in value} == value, (name, key, got)
            elif isinstance(value, list):
                assert [str(v) for v in got] == [str(v) for v in value], (name, key, got)
            else:
                assert str(got) == str(value) or got == value, (name, key, got, value)


def test_store_true_list_matches_vllm(oracle_view):
    dummy, data = oracle_view
    assert set(data["store_true"]) == set(cluster.STORE_TRUE_ONLY)
