# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""The cluster's command lines, rendered in one place (plain Python).

* ``serve_argv``: ``vllm serve`` and its engine arguments from a dict of vLLM's own argument
  names (``tensor_parallel_size: 4`` -> ``--tensor-parallel-size 4``; ``true`` -> the flag,
  ``false`` -> ``--no-<flag>``; dicts as JSON, as vLLM's ``--speculative-config`` takes them;
  lists as separate values, as ``--cudagraph-capture-sizes 1 2 4`` takes them). With
  ``multi_node`` it is one node's part of vLLM's Ray-free multi-node launch (``--nnodes``,
  ``--node-rank``, ``--master-addr``, ``--master-port``; the other nodes ``--headless``).
* ``ray_argv``: ``ray start`` for the head or a worker (object store capped, dashboard, log
  monitor and usage stats off, the node IP pinned to the fabric).
* ``docker_argv``: ``docker run`` for one container (host network and IPC, the env files, the
  mounts, GPUs and RDMA devices without ``--privileged`` unless asked).
* ``systemd_exec``: one command line quoted for a unit's ``ExecStart=``.
"""
from __future__ import annotations

import json
import re

# vllm serve's boolean arguments without a --no-<flag> form (argparse store_true in vLLM
# 0.33.0's parser); every other boolean is a BooleanOptionalAction, false spelled --no-<flag>.
# tests/differential/test_serve_argv_oracle.py checks this against vLLM's own parser.
STORE_TRUE_ONLY = frozenset([
    "aggregate_engine_logging", "data_parallel_multi_port_external_lb", "disable_log_stats",
    "grpc", "headless",
])


# Plan options of the plan engine (dgxspark.cluster.vllm_plan) that are not vllm serve
# arguments: they describe the cluster and the image, not the engine.
PLAN_ONLY = frozenset([
    "nodes", "gpus_per_node", "vllm_build", "vllm_patches", "virtual_heads",
    "allow_long_max_model_len", "model_config",
])


def engine_args(plan, serve_args=None, padding=None):
    """vllm serve's engine arguments of a plan: the plan's vLLM options (everything but
    PLAN_ONLY) and the serve-only arguments (attention backend, parsers, ...) on top.
    A serve argument that contradicts the plan is refused: the plan is what preflight proved.

    ``padding`` is the plan engine's padding of this plan (``vllm_plan``'s ``padding``
    result). A plan with ``virtual_heads`` needs it: when it pads, its ``hf_overrides``
    (the ``virtual_heads`` marker the shipped virtual-heads patch reads) joins the serve
    arguments' ``hf_overrides``."""
    args = dict((k, v) for k, v in (plan or {}).items() if k not in PLAN_ONLY and v is not None)
    for key, value in (serve_args or {}).items():
        if key in PLAN_ONLY:
            raise ValueError("%r is a plan option, not a vllm serve argument: set it in the plan"
                             % key)
        if key in args and args[key] != value:
            raise ValueError("serve argument %s=%r contradicts the plan's %s=%r: change the plan "
                             "(preflight checks the plan)" % (key, value, key, args[key]))
        args[key] = value
    if (plan or {}).get("virtual_heads") and padding is None:
        raise ValueError("the plan has virtual_heads: true, and vLLM needs the padding the plan "
                         "engine computes for it (vllm_plan's padding result): run the preflight "
                         "stage first (site.yml runs it with every tag)")
    if padding and padding.get("applied"):
        overrides = dict(args.get("hf_overrides") or {})
        for key, value in padding["hf_overrides"].items():
            if key in overrides and overrides[key] != value:
                raise ValueError("serve argument hf_overrides.%s contradicts the plan engine's "
                                 "padding: drop it (the padding comes from the plan)" % key)
            overrides[key] = value
        args["hf_overrides"] = overrides
    return args


def flag(name):
    return "--" + name.replace("_", "-")


# vllm serve arguments the role sets itself (the API address, the multi-node launch).
ROLE_ARGS = frozenset(["model", "served_model_name", "host", "port", "nnodes", "node_rank",
                       "master_addr", "master_port", "headless"])


def multi_node(nnodes, node_rank, master_addr, master_port):
    """One node's part of vLLM's Ray-free multi-node launch, checked."""
    nnodes, node_rank, master_port = int(nnodes), int(node_rank), int(master_port)
    if nnodes < 1 or not 0 <= node_rank < nnodes:
        raise ValueError("node rank %d is not within 0..%d" % (node_rank, nnodes - 1))
    if not master_addr:
        raise ValueError("the multi-node launch needs the head's address (master_addr)")
    if not 0 < master_port < 65536:
        raise ValueError("master port %d is not a TCP port" % master_port)
    return {"nnodes": nnodes, "node_rank": node_rank, "master_addr": str(master_addr),
            "master_port": master_port}


def serve_argv(model, engine_args, served_model_name=None, host=None, port=None,
               multi_node=None):
    """``vllm serve MODEL --flags...`` from vLLM engine arguments (None values are dropped).

    ``multi_node`` (``multi_node()``'s dict) makes it one node of vLLM's Ray-free multi-node
    launch: node rank 0 serves the API, the other ranks run ``--headless`` (no API address).
    """
    argv = ["vllm", "serve", str(model)]
    headless = bool(multi_node) and multi_node["node_rank"] > 0
    if served_model_name and not headless:
        argv += ["--served-model-name", str(served_model_name)]
    if host and not headless:
        argv += ["--host", str(host)]
    if port and not headless:
        argv += ["--port", str(port)]
    if multi_node and multi_node["nnodes"] > 1:
        argv += ["--nnodes", str(multi_node["nnodes"]), "--node-rank",
                 str(multi_node["node_rank"]), "--master-addr", multi_node["master_addr"],
                 "--master-port", str(multi_node["master_port"])]
        if headless:
            argv.append("--headless")
    for name, value in (engine_args or {}).items():
        if value is None:
            continue
        if name in ROLE_ARGS:
            raise ValueError("engine argument %r is set by the role; drop it from the engine "
                             "arguments" % name)
        if isinstance(value, bool):
            if value:
                argv.append(flag(name))
            elif name not in STORE_TRUE_ONLY:
                argv.append("--no-" + name.replace("_", "-"))
            continue
        if isinstance(value, dict):
            argv += [flag(name), json.dumps(value, separators=(",", ":"), sort_keys=False)]
        elif isinstance(value, (list, tuple)):
            argv += [flag(name)] + [str(v) for v in value]
        else:
            argv += [flag(name), str(value)]
    return argv


def ray_argv(role, node_ip, port, head_ip=None, num_gpus=1, num_cpus=2,
             object_store_memory=1073741824, temp_dir="/tmp/ray"):
    """``ray start`` for the Ray head or a worker, blocking in the foreground."""
    argv = ["ray", "start", "--block", "--node-ip-address=%s" % node_ip,
            "--num-gpus=%d" % num_gpus, "--num-cpus=%d" % num_cpus,
            "--object-store-memory=%d" % object_store_memory, "--disable-usage-stats",
            "--temp-dir=%s" % temp_dir]
    if role == "head":
        argv += ["--head", "--port=%d" % port, "--include-dashboard=false",
                 "--include-log-monitor=false"]
    elif role == "worker":
        if not head_ip:
            raise ValueError("a Ray worker needs the head's address")
        argv += ["--address=%s:%d" % (head_ip, port)]
    else:
        raise ValueError("ray role must be head or worker, got %r" % role)
    return argv


def docker_argv(name, image, command, env_files=(), env=None, mounts=(), gpus=True,
                devices=(), cap_add=(), ulimits=(), privileged=False, shm_size=None,
                pid=None, extra=()):
    """``docker run`` in the foreground (systemd supervises it), removed when it stops.

    ``pid`` joins another PID namespace: ``container:dgxspark-ray`` lets ``vllm serve`` find
    the local raylet (Ray's driver looks for it among the processes it can see) and ends it
    with the Ray head."""
    argv = ["docker", "run", "--rm", "--name", name, "--network", "host", "--ipc", "host"]
    if pid:
        argv += ["--pid", pid]
    if privileged:
        argv.append("--privileged")
    if gpus:
        argv += ["--gpus", "all"]
    for device in devices:
        argv += ["--device", device]
    for cap in cap_add:
        argv += ["--cap-add", cap]
    for ulimit in ulimits:
        argv += ["--ulimit", ulimit]
    if shm_size:
        argv += ["--shm-size", str(shm_size)]
    for env_file in env_files:
        argv += ["--env-file", env_file]
    for key, value in sorted((env or {}).items()):
        argv += ["-e", "%s=%s" % (key, value)]
    for mount in mounts:
        argv += ["-v", mount]
    argv += list(extra)
    argv.append(image)
    return argv + list(command)


_PLAIN = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")


def systemd_quote(arg):
    """Quote one argument for ExecStart= (systemd.service "Command lines")."""
    arg = str(arg).replace("%", "%%").replace("$", "$$")
    if arg and _PLAIN.match(arg):
        return arg
    return '"%s"' % arg.replace("\\", "\\\\").replace('"', '\\"')


def systemd_exec(argv):
    return " ".join(systemd_quote(a) for a in argv)


def shell_line(argv):
    """The same command for a human (README, reports): POSIX shell quoting."""
    out = []
    for arg in argv:
        arg = str(arg)
        out.append(arg if arg and _PLAIN.match(arg) else "'%s'" % arg.replace("'", "'\\''"))
    return " ".join(out)
