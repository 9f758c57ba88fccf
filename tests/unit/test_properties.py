"""Property-based tests over the modules' and filters' inputs (hypothesis).

For any input - well-formed, out of bounds or of the wrong type - the controller-side code
either answers or raises its own error type whose message names the option (variable, field
or argument) and the fix; never a Python traceback. A plan or model with a non-positive size
is never `satisfiable: true`.

Bounded and deterministic (derandomize, no example database) so that `make test` stays fast
and repeatable; no assertion on time (scripts/bench_preflight.py reports the worst case).
"""
from __future__ import annotations

import json
import os
import re
import shlex
import tempfile

from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from ansible.errors import AnsibleFilterError

from ansible_collections.dgxspark.cluster.plugins.filter import cluster as cluster_filters
from ansible_collections.dgxspark.cluster.plugins.module_utils import topology
from ansible_collections.dgxspark.cluster.plugins.module_utils.plan import engine, request
from ansible_collections.dgxspark.cluster.plugins.module_utils.plan.builds import BUILD_PROFILES
from ansible_collections.dgxspark.cluster.plugins.module_utils.plan.errors import (
    ModelConfigError, PlanInputError)
from ansible_collections.dgxspark.cluster.plugins.module_utils.plan.patches import PATCHES
from ansible_collections.dgxspark.cluster.plugins.module_utils.vllm_args import SERVE_ARGS

from conftest import BASES, GLM, MIMO, ROOT

TINY = str(ROOT / "recipes/models/dgxspark-tiny")


def bounded(examples):
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# Values of the wrong type or far out of range, for any option, field or argument.
JUNK = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-10 ** 6, max_value=10 ** 6),
    st.sampled_from([0, -1, 2 ** 63, 10 ** 400, -10 ** 400, 10 ** 5000]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["--1", "-1", "0", "1e3", " 4 ", "4.0", "", "auto", "fp8", "x" * 300,
                     "1" + "0" * 400, "a\nb", "\0"]),
    st.text(max_size=8),
    st.lists(st.integers(min_value=-3, max_value=10 ** 6), max_size=4),
    st.lists(st.lists(st.integers(), max_size=2), max_size=2),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=3),
)


def _int_values(option, junk=True):
    low, high = option.minimum, option.maximum
    if not junk:  # within the bounds, the bounds included
        return st.one_of(st.integers(min_value=low, max_value=min(high, 4096)),
                         st.sampled_from([low, high, str(low)]))
    return st.one_of(st.integers(min_value=low - 2, max_value=min(high, 4096) + 2),
                     st.sampled_from([low, high, high + 1, 0, -1, str(low), "%d" % high]))


SPEC = st.one_of(
    st.fixed_dictionaries(
        {"method": st.one_of(st.sampled_from(["mtp", "ngram", "eagle", "eagle3", "suffix",
                                              "mtpp"]), JUNK)},
        optional={"num_speculative_tokens": st.one_of(st.integers(-1, 140), JUNK),
                  "draft_tensor_parallel_size": st.one_of(st.integers(-1, 8), JUNK),
                  "model": st.one_of(st.sampled_from([GLM, TINY, "org/draft"]), JUNK),
                  "prompt_lookup_min": st.one_of(st.integers(-1, 10), JUNK),
                  "prompt_lookup_max": st.one_of(st.integers(-1, 10), JUNK),
                  "num_speculative_token": JUNK}),
    JUNK)
BUILD = st.one_of(
    st.sampled_from(sorted(BUILD_PROFILES) + ["vllm-9.9"]),
    st.fixed_dictionaries({"model_runner": st.one_of(st.sampled_from(["v1", "v2"]), JUNK),
                           "draft_inherits_dcp": st.one_of(st.booleans(), JUNK),
                           "pp_with_mtp": st.one_of(st.booleans(), JUNK)},
                          optional={"base": JUNK, "name": JUNK, "cudagraph_ceiling": JUNK,
                                    "head_sizes": JUNK, "kv_cache_dtypes": JUNK}),
    JUNK)


def _value(option, junk=True):
    kind = option.kind
    if kind in ("int", "int?"):
        good = _int_values(option, junk)
    elif kind in ("bool", "bool?"):
        good = st.one_of(st.booleans(), st.sampled_from(["yes", "no"] + ["maybe"] * junk))
    elif kind == "str":
        good = st.sampled_from(["auto", "fp8", "fp8_e4m3", "bfloat16", "nvfp4", "fp7"])
    elif kind in ("choice", "choice?"):
        good = st.sampled_from(list(option.choices) + ["bfloat"] * junk)
    elif kind == "list[int]?":
        good = st.lists(st.one_of(st.integers(-2, 70000), JUNK), max_size=6) if junk else \
            st.lists(st.integers(1, 4096), min_size=1, max_size=6)
    elif kind == "list[str]":
        good = st.lists(st.sampled_from(sorted(PATCHES) + ["x"]), max_size=3)
    elif kind == "dict?":
        good = SPEC
    elif kind == "raw":
        good = BUILD
    else:  # path
        good = st.sampled_from([GLM, MIMO, TINY] +
                               (["/dev/zero", "/proc/self/mem", "/nonexistent"] if junk else []))
    return st.one_of(good, JUNK) if junk else good


PLANS = st.fixed_dictionaries(
    {"model_config": _value(request.OPTIONS["model_config"])},
    optional=dict([(name, _value(option)) for name, option in request.OPTIONS.items()
                   if name != "model_config"] +
                  [("tensor_paralel_size", JUNK), ("attention_backend", JUNK)]))


# Plans of well-formed values near and at the bounds: they reach the rules.
WELL_FORMED = st.fixed_dictionaries(
    {"model_config": _value(request.OPTIONS["model_config"], junk=False)},
    optional=dict((name, _value(option, junk=False)) for name, option in request.OPTIONS.items()
                  if name not in ("model_config", "speculative_config", "vllm_build")))


def _root(option):
    return re.split(r"[.\[]", str(option))[0]


def _check_plan_error(err, plan):
    event(type(err).__name__)
    message = str(err)
    assert "Fix: " in message and err.fix
    if isinstance(err, PlanInputError):
        assert message.startswith("%s=" % err.option), message
        # the option named is one the plan gave, or max_model_len the model could not give
        assert _root(err.option) in plan or err.option in plan or \
            err.option == "max_model_len" or _root(err.option) in request.OPTIONS, message
    else:
        assert message.startswith("model config "), message
        assert err.field is None or "'%s'" % err.field in message, message


SIZES = ("tensor_parallel_size", "pipeline_parallel_size", "decode_context_parallel_size",
         "nodes", "gpus_per_node", "max_model_len", "max_num_seqs", "max_num_batched_tokens",
         "block_size", "num_speculative_tokens")


def _check_satisfiable(result):
    """What a satisfiable plan must be: every size positive, a positive KV size per token."""
    plan = result["plan"]
    for name in SIZES:
        assert plan[name] is None or plan[name] >= (0 if name == "num_speculative_tokens"
                                                    else 1), (name, plan[name])
    assert all(s > 0 for s in result["cudagraph_capture_sizes"])
    kv = result["kv_cache"]
    full = result["model"]["mla"] or any(not t["sliding_window"]
                                         for t in result["model"]["attention"])
    if kv and kv.get("bytes_per_token") is not None:
        # a KV size for every token of the full-attention layers (none: the windows')
        assert kv["bytes_per_token"] > 0 if full else kv["sliding_window_bytes_per_request"] > 0
    if kv and kv.get("tokens") is not None:
        assert kv["tokens"] > 0 and kv["fits_one_request"]


def _verdict(plan):
    """evaluate(plan): the verdict (checked when satisfiable), or None after checking the
    error it raised."""
    try:
        result = engine.evaluate(plan)
    except (PlanInputError, ModelConfigError) as err:
        _check_plan_error(err, plan)
        return None
    event("satisfiable" if result["satisfiable"] else "not satisfiable")
    if result["satisfiable"]:
        _check_satisfiable(result)
    return result


@bounded(400)
@given(PLANS)
def test_any_plan_gives_a_verdict_or_an_error_naming_the_option(plan):
    _verdict(plan)


@bounded(400)
@given(WELL_FORMED, st.sampled_from([None, {"method": "mtp", "num_speculative_tokens": 1},
                                     {"method": "mtp", "num_speculative_tokens": 3},
                                     {"method": "ngram", "num_speculative_tokens": 4}]),
       st.sampled_from(sorted(BUILD_PROFILES)))
def test_any_well_formed_plan_gives_a_verdict(plan, spec, build):
    result = _verdict(dict(plan, speculative_config=spec, vllm_build=build))
    for violation in (result or {}).get("violations", []):
        assert violation["message"] and violation["fix"]
        assert "about 0" not in violation["fix"]


@bounded(150)
@given(st.fixed_dictionaries({"model_config": st.sampled_from([GLM, MIMO, TINY])},
                             optional={"nodes": st.one_of(st.integers(-1, 70), JUNK),
                                       "gpus_per_node": st.one_of(st.integers(-1, 9), JUNK),
                                       "max_num_seqs": _value(request.OPTIONS["max_num_seqs"]),
                                       "kv_cache_memory_bytes": st.sampled_from(
                                           [10 ** 9, 1810000000, 1])}))
def test_any_suggestion_sweep_gives_satisfiable_plans_or_an_error(plan):
    try:
        rows = engine.suggest(plan)
    except (PlanInputError, ModelConfigError) as err:
        _check_plan_error(err, plan)
        return
    for row in rows:
        assert row["tensor_parallel_size"] >= 1 and row["pipeline_parallel_size"] >= 1


@bounded(150)
@given(st.sampled_from(sorted(SIZES[:-1] + ("kv_cache_memory_bytes", "cp_kv_cache_interleave_size",
                                            "max_cudagraph_capture_size"))),
       st.integers(min_value=-10 ** 12, max_value=0))
def test_a_non_positive_plan_size_is_never_satisfiable(name, value):
    try:
        result = engine.evaluate({"model_config": GLM, name: value})
    except PlanInputError as err:
        assert err.option == name
        return
    raise AssertionError("%s=%d was accepted (satisfiable: %s)" % (name, value,
                                                                   result["satisfiable"]))


# --- config.json --------------------------------------------------------------------------

# Size fields the planner reads, per base config: non-positive, the plan is never satisfiable.
SIZE_FIELDS = {
    "gqa": ("num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
            "vocab_size", "intermediate_size", "max_position_embeddings", "hidden_size"),
    "mla": ("num_hidden_layers", "num_attention_heads", "kv_lora_rank", "qk_rope_head_dim",
            "vocab_size", "moe_intermediate_size", "n_routed_experts",
            "max_position_embeddings", "hidden_size"),
    "hybrid": ("num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
               "v_head_dim", "swa_num_attention_heads", "swa_num_key_value_heads",
               "swa_head_dim", "swa_v_head_dim", "sliding_window_size",
               "moe_intermediate_size", "vocab_size"),
}
FIELDS = sorted(set(k for base in BASES.values() for k in base) |
                {"text_config", "quantization_config", "index_topk", "index_head_dim",
                 "index_topk_freq", "index_topk_pattern", "layer_types", "sliding_window"})


def _write(directory, data, raw=None):
    path = os.path.join(directory, "config.json")
    with open(path, "w") as handle:
        handle.write(raw if raw is not None else json.dumps(data))
    return directory


CONFIGS = st.tuples(
    st.sampled_from(sorted(BASES)),
    st.dictionaries(st.sampled_from(FIELDS), st.one_of(st.integers(-3, 10 ** 12), JUNK),
                    max_size=4),
    st.lists(st.sampled_from(FIELDS), max_size=3))
SMALL_PLANS = st.fixed_dictionaries({}, optional={
    "tensor_parallel_size": st.sampled_from([1, 2, 3, 4, 8]),
    "decode_context_parallel_size": st.sampled_from([1, 2, 4]),
    "pipeline_parallel_size": st.sampled_from([1, 2, 3]),
    "kv_cache_memory_bytes": st.sampled_from([10 ** 6, 10 ** 9, 10 ** 11]),
    "kv_cache_dtype": st.sampled_from(["auto", "fp8", "nvfp4"]),
    "virtual_heads": st.booleans(),
    "speculative_config": st.sampled_from([{"method": "mtp", "num_speculative_tokens": 1},
                                           {"method": "eagle", "num_speculative_tokens": 2}]),
})


@bounded(300)
@given(CONFIGS, SMALL_PLANS)
def test_any_config_json_gives_a_verdict_or_an_error_naming_the_field(config, plan):
    base, changes, dropped = config
    data = dict(BASES[base], **changes)
    for key in dropped:
        data.pop(key, None)
    with tempfile.TemporaryDirectory() as directory:
        _verdict(dict(plan, model_config=_write(directory, data), nodes=8))


@bounded(200)
@given(st.sampled_from(sorted(SIZE_FIELDS)).flatmap(
    lambda base: st.tuples(st.just(base), st.sampled_from(SIZE_FIELDS[base]))),
    st.integers(min_value=-10 ** 6, max_value=0), SMALL_PLANS)
def test_a_non_positive_model_size_is_never_satisfiable(base_field, value, plan):
    base, field = base_field
    with tempfile.TemporaryDirectory() as directory:
        path = _write(directory, dict(BASES[base], **{field: value}))
        try:
            result = engine.evaluate(dict(plan, model_config=path, nodes=8))
        except ModelConfigError as err:
            assert err.field == field, str(err)
            return
        except PlanInputError as err:
            _check_plan_error(err, plan)
            return
    assert not result["satisfiable"], (field, value)


@bounded(60)
@given(st.one_of(st.sampled_from([b"", b"{", b"[]", b"null", b"[" * 5000 + b"]" * 5000,
                                  b'{"a": 1e400}', b"\xef\xbb\xbf{}", b"\xff\xfe",
                                  b'{"model_type": "llama", "num_hidden_layers": ' + b"9" * 5000
                                  + b"}"]),
                 st.binary(max_size=64)))
def test_any_config_file_content_gives_an_error_naming_the_file(raw):
    with tempfile.TemporaryDirectory() as directory:
        with open(os.path.join(directory, "config.json"), "wb") as handle:
            handle.write(raw)
        try:
            engine.evaluate({"model_config": directory})
        except ModelConfigError as err:
            assert str(err).startswith("model config %s" % os.path.join(directory,
                                                                        "config.json"))
            return
    raise AssertionError("content %r was accepted" % raw[:40])


# --- fabric_plan's inventory ----------------------------------------------------------------

NODE = st.one_of(st.sampled_from(["spark1", "spark2", "spark3", "spark4"]), st.text(max_size=5),
                 st.none(), st.integers())
ADDRESSES = st.one_of(st.sampled_from(["10.20.2.12", "10.20.2.12/24", "10.20.002.012",
                                       "169083916", "0x0a.20.2.12", "spark1.lan",
                                       "192.168.1.11", "", "::1"]), JUNK)
INVENTORIES = st.fixed_dictionaries(
    {"nodes": st.one_of(st.lists(NODE, min_size=0, max_size=5),
                        st.sampled_from([["spark1", "spark2", "spark3"],
                                         ["spark1", "spark2", "spark3", "spark4"]]), JUNK),
     "topology": st.one_of(st.sampled_from(["ring3", "ring4", "switch", "mesh", "torus"]),
                           JUNK)},
    optional={"subnet_pool": st.one_of(st.sampled_from(["10.20.0.0/16", "10.20.0.0/31",
                                                        "10.20.0.1/16", "192.168.0.0/24",
                                                        "fd00::/64", "x"]), JUNK),
              "prefixlen": st.one_of(st.integers(-2, 40), JUNK),
              "subnets": st.one_of(st.lists(st.sampled_from(["10.0.%d.0/24" % i
                                                             for i in range(8)] +
                                                            ["10.0.0.0/29", "bad"]),
                                            max_size=8), JUNK),
              "mtu": st.one_of(st.integers(1000, 10000), JUNK),
              "switch_port": st.one_of(st.sampled_from(["P0", "P1", "P2"]), JUNK),
              "host_base": st.one_of(st.integers(-1, 300), JUNK),
              "management": st.one_of(st.dictionaries(st.sampled_from(["spark1", "spark2",
                                                                       "spark3", "spark4"]),
                                                      ADDRESSES, max_size=4), JUNK),
              "gid_index": st.one_of(st.dictionaries(st.sampled_from(["spark1", "spark2"]),
                                                     st.one_of(st.integers(-1, 10), JUNK),
                                                     max_size=2), JUNK)})
FABRIC_VARIABLES = ("fabric_nodes", "fabric_topology", "fabric_subnet_pool", "fabric_prefixlen",
                    "fabric_subnets", "fabric_mtu", "fabric_switch_port", "fabric_host_base",
                    "management", "gid_index")


@bounded(400)
@given(INVENTORIES)
def test_any_inventory_gives_a_fabric_plan_or_an_error_naming_the_variable(inventory):
    inventory = dict(inventory)
    nodes, topo = inventory.pop("nodes"), inventory.pop("topology")
    try:
        plan = topology.plan(nodes, topo, **inventory)
    except topology.TopologyError as err:
        assert _root(err.variable) in FABRIC_VARIABLES, str(err)
        assert str(err).startswith("%s=" % err.variable) and "Fix: " in str(err)
        return
    # a plan never puts a management address inside the fabric, in any spelling
    fabric = [topology.IPNetwork(n) for n in plan["subnets"]]
    for address in (inventory.get("management") or {}).values():
        if address:
            assert not any(ip in net for ip in topology.management_ips(address)
                           for net in fabric), address
    for data in plan["nodes"].values():
        for iface in data["interfaces"]:
            assert topology.IPAddress(iface["ip"]) in topology.IPNetwork(iface["subnet"])


def _spell(octets, form):
    """One IPv4 address as people and tools write it (all of them mean ``octets`` to ssh,
    except the zero-padded form, which it reads as octal)."""
    a, b, c, d = octets
    number = (a << 24) | (b << 16) | (c << 8) | d
    return ["%d.%d.%d.%d" % octets, "%d.%d.%d.%d/24" % octets, "%03d.%03d.%03d.%03d" % octets,
            "%d" % number, "0x%08x" % number, "%d.%d.%d" % (a, b, (c << 8) | d)][form]


LAYOUTS = st.sampled_from([(["spark1", "spark2", "spark3"], "ring3"),
                           (["spark1", "spark2", "spark3", "spark4"], "ring4"),
                           (["spark1", "spark2"], "switch")])
SPELT = st.tuples(st.tuples(st.just(10), st.sampled_from([20, 21]), st.integers(0, 9),
                            st.integers(0, 255)), st.integers(0, 5))


@bounded(300)
@given(LAYOUTS.flatmap(lambda layout: st.tuples(st.just(layout), st.dictionaries(
    st.sampled_from(layout[0]), SPELT, max_size=4))))
def test_a_management_address_in_the_fabric_is_refused_in_any_spelling(case):
    (nodes, topo), addresses = case
    fabric = [topology.IPNetwork(n) for n in topology.plan(nodes, topo)["subnets"]]
    management = dict((node, _spell(*spelt)) for node, spelt in addresses.items())
    inside = any(topology.IPAddress("%d.%d.%d.%d" % octets) in net
                 for octets, dummy in addresses.values() for net in fabric)
    try:
        topology.plan(nodes, topo, management=management)
    except topology.TopologyError as err:
        event("refused")
        assert err.variable == "fabric_subnet_pool" and "management path" in str(err)
        # refused for an address ssh would reach inside the fabric (or its octal reading)
        assert inside or any(form == 2 for dummy, form in addresses.values())
        return
    event("planned")
    assert not inside, management


# --- the argv filters ---------------------------------------------------------------------

WORDS = st.lists(st.one_of(st.text(max_size=12), st.integers(), JUNK), max_size=6)
ARGV = st.one_of(WORDS, st.text(max_size=20), JUNK)
ENGINE_ARGS = st.one_of(
    st.dictionaries(st.one_of(st.sampled_from(sorted(SERVE_ARGS)[:40] + sorted(request.OPTIONS)),
                              st.text(max_size=8)),
                    JUNK, max_size=5),
    JUNK)


def _filter_error(name, call):
    try:
        return call()
    except AnsibleFilterError as err:
        message = str(err)
        assert message.startswith("dgxspark.cluster.%s: " % name), message
        assert "Fix: " in message, message
        return None


@bounded(300)
@given(ARGV)
def test_systemd_exec_and_shell_line_take_any_argv(argv):
    line = _filter_error("systemd_exec", lambda: cluster_filters.systemd_exec(argv))
    if line is not None:
        assert isinstance(argv, (list, tuple))  # a string was split into single characters
        assert not re.search(r"[\x00-\x1f\x7f]", line)  # one line of a unit file
    line = _filter_error("shell_line", lambda: cluster_filters.shell_line(argv))
    if line is not None:
        assert isinstance(argv, (list, tuple))
        assume(all("\0" not in str(word) for word in argv))
        assert shlex.split(line) == [str(word) for word in argv]


@bounded(300)
@given(ARGV, st.one_of(st.sampled_from(["dgxspark-vllm"]), JUNK),
       st.one_of(st.sampled_from(["img:1"]), JUNK),
       st.one_of(st.fixed_dictionaries({}, optional={
           "env_files": WORDS, "env": st.one_of(st.dictionaries(st.text(max_size=3),
                                                                st.text(max_size=3)), JUNK),
           "mounts": ARGV, "gpus": JUNK, "devices": ARGV, "cap_add": ARGV, "ulimits": ARGV,
           "privileged": JUNK, "shm_size": JUNK, "pid": JUNK, "extra": ARGV, "devics": JUNK}),
           JUNK))
def test_docker_run_argv_takes_any_input(command, name, image, settings):
    argv = _filter_error("docker_run_argv",
                         lambda: cluster_filters.docker_run_argv(command, name, image, settings))
    if argv is not None:
        assert isinstance(command, (list, tuple)) and all(isinstance(w, str) for w in argv)
        assert argv[len(argv) - len(command):] == [str(word) for word in command]
        for key in ("mounts", "devices", "cap_add", "ulimits", "extra", "env_files"):
            assert not isinstance(settings.get(key), str), key


@bounded(300)
@given(ENGINE_ARGS, st.one_of(st.just("/models/m"), JUNK),
       st.one_of(st.sampled_from([1, 3]), JUNK), st.one_of(st.sampled_from([0, 1, 2]), JUNK),
       st.one_of(st.just("10.0.0.1"), JUNK), st.one_of(st.just(29501), JUNK))
def test_vllm_serve_argv_takes_any_input(engine_args, model, nnodes, rank, addr, port):
    argv = _filter_error("vllm_serve_argv", lambda: cluster_filters.vllm_serve_argv(
        engine_args, model, "m", "0.0.0.0", 8000, nnodes, rank, addr, port))
    if argv is not None:
        assert argv[:2] == ["vllm", "serve"] and all(isinstance(w, str) for w in argv)
        flags = [w[2:].replace("-", "_") for w in argv if w.startswith("--")]
        assert all(f in SERVE_ARGS or f.startswith("no_") for f in flags), flags


@bounded(300)
@given(st.one_of(st.dictionaries(st.one_of(st.sampled_from(sorted(request.OPTIONS)),
                                           st.sampled_from(["tensor_paralel_size",
                                                            "attention_backend"])),
                                 JUNK, max_size=5), JUNK),
       ENGINE_ARGS)
def test_vllm_engine_args_and_plan_env_take_any_input(plan, serve_args):
    args = _filter_error("vllm_engine_args",
                         lambda: cluster_filters.vllm_engine_args(plan, serve_args))
    if args is not None:
        # nothing plan-only is ever rendered, and every name is one of vLLM's
        assert set(args) <= set(SERVE_ARGS)
        assert not set(args) & {n for n, o in request.OPTIONS.items()
                                if o.serve != request.SERVE}
    env = _filter_error("vllm_plan_env", lambda: cluster_filters.vllm_plan_env(plan))
    if env is not None:
        assert set(env) <= {o.env for o in request.OPTIONS.values() if o.env}


@bounded(200)
@given(st.one_of(st.sampled_from(["head", "worker"]), JUNK), st.one_of(st.just("10.0.0.2"), JUNK),
       st.one_of(st.sampled_from([6379, "6379"]), JUNK), st.one_of(st.just("10.0.0.1"), JUNK),
       st.one_of(st.just(1), JUNK), st.one_of(st.just(2), JUNK))
def test_ray_start_argv_takes_any_input(role, node_ip, port, head_ip, gpus, cpus):
    argv = _filter_error("ray_start_argv", lambda: cluster_filters.ray_start_argv(
        role, node_ip, port, head_ip, gpus, cpus))
    if argv is not None:
        assert argv[:3] == ["ray", "start", "--block"]
