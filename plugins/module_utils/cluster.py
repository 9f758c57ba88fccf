# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""The cluster's command lines, rendered in one place (plain Python).

* ``serve_argv``: ``vllm serve`` and its engine arguments from a dict of vLLM's own argument
  names (``tensor_parallel_size: 4`` -> ``--tensor-parallel-size 4``; ``true`` -> the flag,
  ``false`` -> ``--no-<flag>``; dicts as JSON, as vLLM's ``--speculative-config`` takes them;
  lists as separate values, as ``--cudagraph-capture-sizes 1 2 4`` takes them).
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


def flag(name):
    return "--" + name.replace("_", "-")


def serve_argv(model, engine_args, served_model_name=None, host=None, port=None):
    """``vllm serve MODEL --flags...`` from vLLM engine arguments (None values are dropped)."""
    argv = ["vllm", "serve", str(model)]
    if served_model_name:
        argv += ["--served-model-name", str(served_model_name)]
    if host:
        argv += ["--host", str(host)]
    if port:
        argv += ["--port", str(port)]
    for name, value in (engine_args or {}).items():
        if value is None:
            continue
        if name in ("model", "served_model_name", "host", "port"):
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
