"""The cluster's command lines (plugins/module_utils/cluster.py)."""
from __future__ import annotations

import json
import shlex

import pytest

from ansible_collections.dgxspark.cluster.plugins.module_utils import cluster
from ansible_collections.dgxspark.cluster.plugins.module_utils.plan import request
from ansible_collections.dgxspark.cluster.plugins.module_utils.vllm_args import SERVE_ARGS


def test_serve_argv_spells_vllm_flags():
    argv = cluster.serve_argv(
        "/models/glm", {
            "tensor_parallel_size": 4,
            "decode_context_parallel_size": 4,
            "speculative_config": {"method": "mtp", "num_speculative_tokens": 1},
            "cudagraph_capture_sizes": [1, 2, 4],
            "enable_prefix_caching": False,
            "trust_remote_code": True,
            "enforce_eager": False,
            "disable_log_stats": False,
            "max_num_batched_tokens": None,
        }, served_model_name="glm", host="10.0.0.1", port=8000)
    assert argv[:9] == ["vllm", "serve", "/models/glm", "--served-model-name", "glm",
                        "--host", "10.0.0.1", "--port", "8000"]
    rest = argv[9:]
    assert rest[rest.index("--tensor-parallel-size") + 1] == "4"
    assert rest[rest.index("--decode-context-parallel-size") + 1] == "4"
    spec = json.loads(rest[rest.index("--speculative-config") + 1])
    assert spec == {"method": "mtp", "num_speculative_tokens": 1}
    i = rest.index("--cudagraph-capture-sizes")
    assert rest[i + 1:i + 4] == ["1", "2", "4"]
    assert "--no-enable-prefix-caching" in rest
    assert "--trust-remote-code" in rest and "--no-enforce-eager" in rest
    # A false flag vLLM has no --no- form for is simply left out; None values are dropped.
    assert not any("log-stats" in a or "max-num-batched" in a for a in rest)


@pytest.mark.parametrize("name", ["model", "host", "port", "served_model_name", "nnodes",
                                  "node_rank", "master_addr", "master_port", "headless"])
def test_serve_argv_refuses_role_owned_arguments(name):
    with pytest.raises(ValueError, match=name):
        cluster.serve_argv("/m", {name: "x"})


def test_ray_head_and_worker():
    head = cluster.ray_argv("head", "10.0.0.1", 6379, object_store_memory=1 << 30)
    assert "--head" in head and "--port=6379" in head
    assert "--node-ip-address=10.0.0.1" in head
    assert "--object-store-memory=1073741824" in head
    assert "--include-dashboard=false" in head and "--disable-usage-stats" in head
    assert "--block" in head
    worker = cluster.ray_argv("worker", "10.0.0.2", 6379, head_ip="10.0.0.1")
    assert "--address=10.0.0.1:6379" in worker and "--head" not in worker
    assert "--node-ip-address=10.0.0.2" in worker
    with pytest.raises(ValueError, match="head's address"):
        cluster.ray_argv("worker", "10.0.0.2", 6379)
    with pytest.raises(ValueError, match="head or worker"):
        cluster.ray_argv("driver", "10.0.0.2", 6379)


def test_docker_argv_is_unprivileged_by_default():
    argv = cluster.docker_argv(
        "dgxspark-ray", "img:1", ["ray", "start"], env_files=["/etc/dgxspark/node.env"],
        env={"B": "2", "A": "1"}, mounts=["/m:/m:ro"], devices=["/dev/infiniband"],
        cap_add=["IPC_LOCK"], ulimits=["memlock=-1"])
    assert "--privileged" not in argv
    assert argv[:9] == ["docker", "run", "--rm", "--name", "dgxspark-ray", "--network", "host",
                        "--ipc", "host"]
    line = " ".join(argv)
    assert "--gpus all" in line and "--device /dev/infiniband" in line
    assert "--cap-add IPC_LOCK" in line and "--ulimit memlock=-1" in line
    assert "--env-file /etc/dgxspark/node.env" in line
    assert line.index("-e A=1") < line.index("-e B=2")
    assert argv[-3:] == ["img:1", "ray", "start"]
    privileged = cluster.docker_argv("x", "img", [], privileged=True, gpus=False)
    assert "--privileged" in privileged and "--gpus" not in privileged


@pytest.mark.parametrize("arg, quoted", [
    ("plain/path:ro", "plain/path:ro"),
    ('{"method":"mtp"}', '"{\\"method\\":\\"mtp\\"}"'),
    ("expandable_segments:True", "expandable_segments:True"),
    ("100%", "100%%"),
    ("$HOME", '"$$HOME"'),
    ("two words", '"two words"'),
    ("", '""'),
    ("back\\slash", '"back\\\\slash"'),
])
def test_systemd_quote(arg, quoted):
    assert cluster.systemd_quote(arg) == quoted


def unquote_systemd(line):
    """systemd's ExecStart= word splitting (C-style escapes inside double quotes, %% and $$),
    enough of it to read back what systemd_exec writes."""
    words, i = [], 0
    while i < len(line):
        if line[i] == " ":
            i += 1
            continue
        word = []
        if line[i] == '"':
            i += 1
            while line[i] != '"':
                if line[i] == "\\":
                    i += 1
                    if line[i] == "x":
                        word.append(chr(int(line[i + 1:i + 3], 16)))
                        i += 3
                        continue
                    word.append({"n": "\n", "t": "\t", "r": "\r"}.get(line[i], line[i]))
                    i += 1
                    continue
                word.append(line[i])
                i += 1
            i += 1
        else:
            while i < len(line) and line[i] != " ":
                word.append(line[i])
                i += 1
        words.append("".join(word).replace("%%", "%").replace("$$", "$"))
    return words


def test_systemd_exec_round_trips_a_real_command_line():
    argv = cluster.docker_argv(
        "dgxspark-vllm", "img", cluster.serve_argv("/models/m", {
            "speculative_config": {"method": "mtp", "num_speculative_tokens": 2},
            "compilation_config": {"cudagraph_mode": "FULL_AND_PIECEWISE"},
        }), env={"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True", "X": "a b$c%d"})
    assert unquote_systemd(cluster.systemd_exec(argv)) == argv


def test_shell_line_is_posix_quoted():
    argv = ["vllm", "serve", "/m", "--speculative-config", '{"method": "mtp"}', "it's"]
    assert shlex.split(cluster.shell_line(argv)) == argv


def test_engine_args_drop_plan_only_options():
    plan = {"nodes": 4, "tensor_parallel_size": 4, "vllm_build": "vllm-0.33",
            "vllm_patches": ["draft-dcp-inherit"], "virtual_heads": False,
            "kv_cache_dtype": "fp8", "block_size": None, "allow_long_max_model_len": True,
            "gpus_per_node": 1, "model_config": "/m", "sequence_parallelism": False}
    args = cluster.engine_args(plan, {"attention_backend": "X"})
    assert args == {"tensor_parallel_size": 4, "kv_cache_dtype": "fp8", "attention_backend": "X"}


@pytest.mark.parametrize("plan, serve_args, variable, fix", [
    # a typo in the plan: it would pass preflight as TP1 and reach vllm serve
    ({"tensor_paralel_size": 3}, {}, "plan.tensor_paralel_size",
     "did you mean tensor_parallel_size?"),
    # a serve argument in the plan
    ({"attention_backend": "X"}, {}, "plan.attention_backend", "serve arguments"),
    # plan inputs given as serve arguments reach vllm serve unchecked
    ({}, {"block_size": 16}, "serve_args.block_size", "set it in the plan"),
    ({"tensor_parallel_size": 4}, {"tensor_parallel_size": 4},
     "serve_args.tensor_parallel_size", "set it in the plan"),
    # plan-only options are plan inputs too
    ({}, {"nodes": 3}, "serve_args.nodes", "set it in the plan"),
    # a typo of a serve argument, and of a plan option given as a serve argument
    ({}, {"attention_backnd": "X"}, "serve_args.attention_backnd",
     "did you mean attention_backend?"),
    ({}, {"tensor_paralel_size": 3}, "serve_args.tensor_paralel_size",
     "did you mean tensor_parallel_size? It is a plan option"),
    # what the role sets
    ({}, {"port": 9000}, "serve_args.port", "the role sets"),
    # not dicts
    ("tensor_parallel_size=4", {}, "plan", "give a dict"),
    ({}, ["trust_remote_code"], "serve_args", "give a dict"),
])
def test_engine_args_refuse_what_would_skip_preflight(plan, serve_args, variable, fix):
    with pytest.raises(cluster.CommandLineError) as err:
        cluster.engine_args(plan, serve_args)
    assert err.value.variable == variable and fix in err.value.fix, str(err.value)
    assert variable in str(err.value)


def test_every_plan_option_that_is_rendered_is_a_vllm_serve_argument():
    rendered = set(request.OPTIONS) - cluster.PLAN_ONLY
    assert rendered <= set(SERVE_ARGS)
    # the plan-only options: sequence_parallelism and allow_long_max_model_len have no flag
    assert cluster.PLAN_ONLY == {"model_config", "virtual_heads", "vllm_patches", "nodes",
                                 "gpus_per_node", "vllm_build", "sequence_parallelism",
                                 "allow_long_max_model_len"}
    assert not cluster.PLAN_ONLY & set(SERVE_ARGS)


def test_store_true_only_is_derived_from_the_recorded_parser():
    assert cluster.STORE_TRUE_ONLY == {n for n, k in SERVE_ARGS.items() if k == "store_true"}
    assert "headless" in cluster.STORE_TRUE_ONLY and "enforce_eager" not in cluster.STORE_TRUE_ONLY


@pytest.mark.parametrize("plan, env", [
    ({"allow_long_max_model_len": True, "tensor_parallel_size": 4},
     {"VLLM_ALLOW_LONG_MAX_MODEL_LEN": "1"}),
    ({"allow_long_max_model_len": "yes"}, {"VLLM_ALLOW_LONG_MAX_MODEL_LEN": "1"}),
    ({"allow_long_max_model_len": False}, {}),
    ({"tensor_parallel_size": 4}, {}),
    (None, {}),
])
def test_plan_env_is_the_environment_the_plan_implies(plan, env):
    assert cluster.plan_env(plan) == env


def test_plan_env_refuses_what_is_not_a_plan():
    with pytest.raises(ValueError, match="allow_long_max_model_len"):
        cluster.plan_env({"allow_long_max_model_len": "perhaps"})
    with pytest.raises(cluster.CommandLineError, match="did you mean allow_long_max_model_len"):
        cluster.plan_env({"allow_long_max_modellen": True})


def test_sequence_parallelism_is_never_a_flag_and_must_agree_with_compilation_config():
    on = {"compilation_config": {"pass_config": {"enable_sequence_parallelism": True}}}
    args = cluster.engine_args({"sequence_parallelism": True}, on)
    assert "sequence_parallelism" not in args
    assert not any("sequence-parallelism" in a for a in cluster.serve_argv("/m", args)[3:]
                   if a.startswith("--"))
    assert cluster.engine_args({"sequence_parallelism": False}, {}) == {}
    # the plan assumes the pass and nothing turns it on; or the other way round
    with pytest.raises(cluster.CommandLineError, match="does not turn on"):
        cluster.engine_args({"sequence_parallelism": True}, {})
    with pytest.raises(cluster.CommandLineError, match="turns on"):
        cluster.engine_args({}, {"compilation_config": json.dumps(on["compilation_config"])})


PADDING = {"applied": True, "hf_overrides": {"virtual_heads": {
    "tensor_parallel_size": 3, "padding": {"num_attention_heads": [64, 96]}}}}


def test_engine_args_hand_the_plan_engine_s_padding_to_vllm():
    plan = {"tensor_parallel_size": 3, "virtual_heads": True}
    serve = {"hf_overrides": {"architectures": ["MiMoV2OmniForCausalLM"]}}
    args = cluster.engine_args(plan, serve, PADDING)
    assert args["hf_overrides"] == {"architectures": ["MiMoV2OmniForCausalLM"],
                                    **PADDING["hf_overrides"]}
    assert serve["hf_overrides"] == {"architectures": ["MiMoV2OmniForCausalLM"]}  # untouched
    # Virtual heads allowed but nothing padded (TP divides): no marker.
    args = cluster.engine_args(plan, serve, {"applied": False, "needed": False})
    assert args["hf_overrides"] == {"architectures": ["MiMoV2OmniForCausalLM"]}
    # A plan without virtual heads needs no padding.
    assert "hf_overrides" not in cluster.engine_args({"tensor_parallel_size": 4})


def test_engine_args_refuse_a_virtual_heads_plan_without_its_padding():
    with pytest.raises(ValueError, match="vllm_plan's padding result"):
        cluster.engine_args({"tensor_parallel_size": 3, "virtual_heads": True}, {})
    with pytest.raises(ValueError, match="contradicts the plan engine's padding"):
        cluster.engine_args({"tensor_parallel_size": 3, "virtual_heads": True},
                            {"hf_overrides": {"virtual_heads": {"tensor_parallel_size": 1}}},
                            PADDING)


def test_the_ray_free_launch_renders_the_head_and_headless_workers():
    args = {"tensor_parallel_size": 3, "distributed_executor_backend": "mp"}
    head = cluster.serve_argv("/models/tiny", args, "tiny", "10.99.0.11", 8000,
                              cluster.multi_node(3, 0, "10.20.0.11", 29501))
    assert head[:9] == ["vllm", "serve", "/models/tiny", "--served-model-name", "tiny",
                        "--host", "10.99.0.11", "--port", "8000"]
    assert head[9:17] == ["--nnodes", "3", "--node-rank", "0", "--master-addr", "10.20.0.11",
                          "--master-port", "29501"]
    assert "--headless" not in head
    worker = cluster.serve_argv("/models/tiny", args, "tiny", "10.99.0.11", 8000,
                                cluster.multi_node(3, 2, "10.20.0.11", 29501))
    assert worker[:12] == ["vllm", "serve", "/models/tiny", "--nnodes", "3", "--node-rank", "2",
                           "--master-addr", "10.20.0.11", "--master-port", "29501",
                           "--headless"]
    assert "--host" not in worker and "--port" not in worker
    assert worker[-4:] == ["--tensor-parallel-size", "3", "--distributed-executor-backend", "mp"]


def test_one_node_renders_no_launch_flags():
    argv = cluster.serve_argv("/m", {}, None, None, None, cluster.multi_node(1, 0, "10.0.0.1", 1))
    assert argv == ["vllm", "serve", "/m"]


@pytest.mark.parametrize("nnodes, rank, addr, port, message", [
    (3, 3, "10.0.0.1", 29501, "node rank 3 is not within 0..2"),
    (3, -1, "10.0.0.1", 29501, "node rank -1 is not within 0..2"),
    (3, 1, "", 29501, "needs the head's address"),
    (3, 1, "10.0.0.1", 70000, "master port 70000 is not a TCP port"),
])
def test_a_wrong_launch_is_refused(nnodes, rank, addr, port, message):
    with pytest.raises(ValueError, match=message):
        cluster.multi_node(nnodes, rank, addr, port)


def test_systemd_exec_escapes_control_characters():
    argv = ["echo", "two\nlines", "tab\there", "bell\x07", "cr\r"]
    line = cluster.systemd_exec(argv)
    assert "\n" not in line and "\x07" not in line and "\r" not in line
    assert unquote_systemd(line) == argv


@pytest.mark.parametrize("fn, args, variable", [
    (cluster.systemd_exec, ("ray start --head",), "argv"),
    (cluster.shell_line, ("vllm serve /m",), "argv"),
    (cluster.systemd_exec, (["ray", None],), "argv[1]"),
    # beyond Python's 4300-digit limit for str(int): refused, not a raw ValueError
    (cluster.systemd_exec, (["ray", 10 ** 5000],), "argv[1]"),
    (cluster.shell_line, ({"a": 1},), "argv"),
    (cluster.docker_run, ("ray start", "n", "img", {}), "command"),
    (cluster.docker_run, (["ray"], "n", "img", {"devices": "/dev/infiniband"}), "devices"),
    (cluster.docker_run, (["ray"], "n", "img", {"mounts": "/a:/a"}), "mounts"),
    (cluster.docker_run, (["ray"], "n", "img", {"env": ["A=1"]}), "env"),
    (cluster.docker_run, (["ray"], "n", "img", {"device": ["/dev/x"]}), "settings.device"),
    (cluster.docker_run, (["ray"], "n", "img", "gpus=false"), "settings"),
    (cluster.docker_run, (["ray"], "", "img", {}), "name"),
])
def test_a_string_where_an_argv_list_is_expected_is_refused(fn, args, variable):
    # a string was once split into one word per character
    with pytest.raises(cluster.CommandLineError) as err:
        fn(*args)
    assert err.value.variable == variable, str(err.value)


def test_docker_run_names_the_closest_setting():
    with pytest.raises(cluster.CommandLineError, match="did you mean devices"):
        cluster.docker_run(["ray"], "n", "img", {"device": ["/dev/x"]})


@pytest.mark.parametrize("args, variable, problem", [
    ({"tensor_paralel_size": 2}, "engine argument tensor_paralel_size",
     "is not a vllm serve argument"),
    ({"nodes": 3}, "engine argument nodes", "it is a plan option"),
    ({"dtype": True}, "engine argument dtype", "takes a value"),
    ({"enforce_eager": "maybe"}, "engine argument enforce_eager", "true or false"),
    ({"enforce_eager": [1]}, "engine argument enforce_eager", "is a flag"),
    ({"cudagraph_capture_sizes": {"a": 1}}, "engine argument cudagraph_capture_sizes",
     "takes a list"),
    ("tensor_parallel_size=4", "engine_args", "must be a dict"),
])
def test_serve_argv_checks_names_and_kinds_against_vllms_parser(args, variable, problem):
    with pytest.raises(cluster.CommandLineError) as err:
        cluster.serve_argv("/m", args)
    assert err.value.variable == variable and problem in str(err.value)


def test_serve_argv_renders_by_vllms_kind():
    argv = cluster.serve_argv("/m", {"enforce_eager": "true", "disable_log_stats": "false",
                                     "allowed_origins": ["*"], "api_key": "k"})
    assert argv[3:] == ["--enforce-eager", "--allowed-origins", '["*"]', "--api-key", "k"]


@pytest.mark.parametrize("args, variable", [
    (("head", "10.0.0.1", "x"), "port"),
    (("head", "10.0.0.1", 0), "port"),
    (("head", "", 6379), "node_ip"),
    (("head", "10.0.0.1", 6379, None, "one"), "num_gpus"),
    (("worker", "10.0.0.1", 6379, None), "head_ip"),
    (("driver", "10.0.0.1", 6379), "role"),
])
def test_ray_argv_names_the_bad_argument(args, variable):
    with pytest.raises(cluster.CommandLineError) as err:
        cluster.ray_argv(*args)
    assert err.value.variable == variable


@pytest.mark.parametrize("args, variable", [
    (("three", 0, "10.0.0.1", 29501), "nnodes"),
    ((0, 0, "10.0.0.1", 29501), "nnodes"),
    ((3, "x", "10.0.0.1", 29501), "node_rank"),
    ((3, 1, ["10.0.0.1"], 29501), "master_addr"),
    ((3, 1, "10.0.0.1", "port"), "master_port"),
])
def test_launch_names_the_bad_argument(args, variable):
    with pytest.raises(cluster.CommandLineError) as err:
        cluster.launch(*args)
    assert err.value.variable == variable


def test_launch_of_one_node_is_none():
    assert cluster.launch("1", 0, None, 29501) is None
    assert cluster.launch(3, "1", "10.0.0.1", "29501")["node_rank"] == 1


def test_the_ray_placement_strategy_reaches_vllm_serve_as_eugrs_variable():
    assert cluster.ray_placement_env("SPREAD") == {
        "VLLM_DISTRIBUTED_EXECUTOR_CONFIG": '{"placement_group_options":{"strategy":"SPREAD"}}'}
    assert json.loads(cluster.ray_placement_env("STRICT_SPREAD")[
        "VLLM_DISTRIBUTED_EXECUTOR_CONFIG"]) == {"placement_group_options": {
            "strategy": "STRICT_SPREAD"}}
    assert cluster.ray_placement_env("") == {} and cluster.ray_placement_env(None) == {}
    with pytest.raises(cluster.CommandLineError) as error:
        cluster.ray_placement_env("spread")
    assert error.value.variable == "vllm_cluster_ray_placement_strategy"
    assert "did you mean SPREAD?" in str(error.value)


def test_the_role_default_strategy_is_spread_and_reaches_the_ray_driver_container():
    import yaml
    from conftest import ROOT
    defaults = yaml.safe_load((ROOT / "roles/vllm_cluster/defaults/main.yml").read_text())
    env = cluster.ray_placement_env(defaults["vllm_cluster_ray_placement_strategy"])
    argv = cluster.docker_argv("dgxspark-vllm", "img", ["vllm", "serve", "/m"],
                               env=dict({"RAY_ADDRESS": "10.20.0.11:6379"}, **env))
    assert argv[argv.index("-e") + 1:argv.index("-e") + 4] == [
        "RAY_ADDRESS=10.20.0.11:6379", "-e",
        'VLLM_DISTRIBUTED_EXECUTOR_CONFIG={"placement_group_options":{"strategy":"SPREAD"}}']
    # the role gives exactly that environment to the Ray executor's vllm serve container
    facts = " ".join((ROOT / "roles/vllm_cluster/tasks/facts.yml").read_text().split())
    assert ("combine(vllm_cluster_ray_placement_strategy | dgxspark.cluster.ray_placement_env)"
            in facts)


# A worker's journal as the failed cluster4 run of CI showed it (the shape of a torch c10
# error: the error, "Exception raised from", then one line per native frame).
TORCH_FAILURE = "\n".join(
    ["INFO 12-02 10:00:0%d [parallel_state.py] world_size=4 rank=3" % i for i in range(5)]
    + ["[rank3]: RuntimeError: [../third_party/gloo/gloo/transport/tcp/pair.cc:534] "
       "Connection closed by peer [10.20.0.11]:29501",
       "Exception raised from recvmsg at ../torch/csrc/distributed/c10d/Utils.hpp:667 "
       "(most recent call first):"]
    + ["frame #%d: VLLM::Worker() [0x%x]" % (i, 0x585e23 + i) for i in range(50)])


def test_log_excerpt_keeps_the_cause_that_native_frames_push_out_of_the_tail():
    tail = "\n".join(TORCH_FAILURE.splitlines()[-40:])
    assert "Connection closed by peer" not in tail        # what the failure message showed
    excerpt = cluster.log_excerpt(TORCH_FAILURE, 40)
    assert "Connection closed by peer [10.20.0.11]:29501" in excerpt
    assert "frame #" not in excerpt
    assert excerpt.endswith("[50 native stack frame lines left out]")


def test_log_excerpt_adds_earlier_causes_before_a_short_tail_once():
    text = "\n".join(["ValueError: first", "TimeoutError: t", "ok 1", "RuntimeError: second",
                      "ok 2", "ok 3", "RuntimeError: second"])
    # the repeated error is in the tail already: shown once
    assert cluster.log_excerpt(text, 2).splitlines() == [
        "[earlier lines that name a cause]", "ValueError: first", "TimeoutError: t",
        "[last lines]", "ok 3", "RuntimeError: second"]
    assert cluster.log_excerpt(text, 2, causes=1).splitlines()[1:2] == ["TimeoutError: t"]
    assert cluster.log_excerpt(text, 10) == text           # everything fits: nothing added


def test_log_excerpt_of_nothing_says_so():
    assert cluster.log_excerpt("", 40) == "(no log)"
    assert cluster.log_excerpt(None, 40) == "(no log)"
