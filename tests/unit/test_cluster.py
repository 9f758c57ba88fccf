"""The cluster's command lines (plugins/module_utils/cluster.py)."""
from __future__ import annotations

import json
import shlex

import pytest

from ansible_collections.dgxspark.cluster.plugins.module_utils import cluster


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


def test_engine_args_drop_plan_only_options_and_refuse_contradictions():
    plan = {"nodes": 4, "tensor_parallel_size": 4, "vllm_build": "vllm-0.33",
            "vllm_patches": ["draft-dcp-inherit"], "virtual_heads": False,
            "kv_cache_dtype": "fp8", "block_size": None}
    args = cluster.engine_args(plan, {"attention_backend": "X", "kv_cache_dtype": "fp8"})
    assert args == {"tensor_parallel_size": 4, "kv_cache_dtype": "fp8", "attention_backend": "X"}
    with pytest.raises(ValueError, match="contradicts the plan"):
        cluster.engine_args(plan, {"tensor_parallel_size": 2})
    with pytest.raises(ValueError, match="plan option"):
        cluster.engine_args(plan, {"nodes": 3})


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
    with pytest.raises(ValueError, match="run the preflight stage"):
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
