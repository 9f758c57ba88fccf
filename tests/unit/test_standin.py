"""The lab's stand-in for vllm serve parses what the cluster renders, from the one option list.

Its parser is built from plan/request.py OPTIONS (every plan option that is a vllm serve
argument), so a plan rendered by cluster.engine_args / serve_argv comes back as the same plan.
"""
from __future__ import annotations

import importlib.util

import pytest

from ansible_collections.dgxspark.cluster.plugins.module_utils import cluster
from ansible_collections.dgxspark.cluster.plugins.module_utils.plan import request

from conftest import ROOT

SPEC = importlib.util.spec_from_file_location(
    "vllm_standin", ROOT / "roles/lab/files/standin/vllm_standin.py")
standin = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(standin)

PLAN = {
    "tensor_parallel_size": 4, "pipeline_parallel_size": 1, "decode_context_parallel_size": 4,
    "cp_kv_cache_interleave_size": 1,
    "speculative_config": {"method": "mtp", "num_speculative_tokens": 1},
    "max_cudagraph_capture_size": 4, "cudagraph_capture_sizes": [1, 2, 4], "max_num_seqs": 1,
    "max_num_batched_tokens": 1024, "max_model_len": 131072, "kv_cache_dtype": "fp8",
    "kv_cache_memory_bytes": 1810000000, "block_size": 64, "enforce_eager": False,
    "enable_chunked_prefill": True, "async_scheduling": False, "dtype": "bfloat16",
    "distributed_executor_backend": "mp",
    # plan-only: never on the command line
    "nodes": 4, "vllm_build": "vllm-0.33", "vllm_patches": ["draft-dcp-inherit"],
    "virtual_heads": False, "gpus_per_node": 1, "sequence_parallelism": False,
}


def parsed(plan, environ=None):
    argv = cluster.serve_argv("/models/glm", cluster.engine_args(plan), "glm", "0.0.0.0", 8000)
    args, unknown = standin.parse_args(argv[1:])
    assert unknown == []
    return standin.plan_options(args, "/models/glm", environ or {})


def test_every_engine_argument_of_a_plan_comes_back():
    options = parsed(PLAN)
    engine_args = dict((k, v) for k, v in PLAN.items()
                       if request.OPTIONS[k].serve == request.SERVE)
    assert options == dict(engine_args, model_config="/models/glm",
                           allow_long_max_model_len=False)


def test_the_parser_knows_exactly_the_plans_engine_arguments():
    serve = list(standin.parse_args(["serve", "/m"])[0].__dict__)
    engine_names = {n for n, o in request.OPTIONS.items() if o.serve == request.SERVE}
    assert engine_names <= set(serve)
    assert not (set(request.OPTIONS) - engine_names) & set(serve)


@pytest.mark.parametrize("environ, allowed", [
    ({"VLLM_ALLOW_LONG_MAX_MODEL_LEN": "1"}, True),
    ({}, False),
])
def test_allow_long_max_model_len_comes_from_the_environment_as_in_vllm(environ, allowed):
    assert parsed({"tensor_parallel_size": 1}, environ)["allow_long_max_model_len"] is allowed


def test_an_unset_argument_is_left_to_the_plan_engines_default():
    options = parsed({})
    assert options == {"model_config": "/models/glm", "allow_long_max_model_len": False}
    assert request.PlanRequest(dict(options, model_config="x")).tensor_parallel_size == 1
