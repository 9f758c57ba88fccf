# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""The cluster's command lines, rendered in one place (plain Python).

* ``engine_args`` / ``plan_env``: a plan's ``vllm serve`` engine arguments and the environment
  it implies, derived from the one list of plan options (plan/request.py OPTIONS); names are
  checked against vLLM's own parser (vllm_args.py).
* ``serve_argv``: ``vllm serve`` and its engine arguments from a dict of vLLM's own argument
  names (``tensor_parallel_size: 4`` -> ``--tensor-parallel-size 4``; ``true`` -> the flag,
  ``false`` -> ``--no-<flag>``; dicts as JSON, as vLLM's ``--speculative-config`` takes them;
  lists as separate values, as ``--cudagraph-capture-sizes 1 2 4`` takes them, and as JSON
  for a one-value argument). With
  ``multi_node`` it is one node's part of vLLM's Ray-free multi-node launch (``--nnodes``,
  ``--node-rank``, ``--master-addr``, ``--master-port``; the other nodes ``--headless``).
* ``ray_argv``: ``ray start`` for the head or a worker (object store capped, dashboard, log
  monitor and usage stats off, the node IP pinned to the fabric).
* ``ray_placement_env``: the environment that asks for the Ray placement strategy of the
  engine's placement group (``SPREAD``: one bundle per Spark, never a "PACK" that cannot be
  satisfied, eugr#227).
* ``docker_argv``: ``docker run`` for one container (host network and IPC, the env files, the
  mounts, GPUs and RDMA devices without ``--privileged`` unless asked).
* ``systemd_exec``: one command line quoted for a unit's ``ExecStart=``.
"""
from __future__ import annotations

import json
import re

from .plan.errors import InputError, shown
from .plan.request import ENV, OPTIONS, SERVE, closest
from .vllm_args import SERVE_ARGS, VLLM_VERSION


class CommandLineError(InputError):
    """A command line cannot be rendered: names the variable, the value and the fix."""


# vllm serve's boolean arguments without a --no-<flag> form (argparse store_true in vLLM's
# parser, recorded in vllm_args.py); every other boolean is a BooleanOptionalAction, false
# spelled --no-<flag>.
STORE_TRUE_ONLY = frozenset(name for name, kind in SERVE_ARGS.items() if kind == "store_true")

# Plan options (plan/request.py OPTIONS) that are not vllm serve arguments: the cluster, the
# image, the planner's switches and the options vLLM takes from the environment (plan_env).
PLAN_ONLY = frozenset(name for name, option in OPTIONS.items() if option.serve != SERVE)

# vllm serve arguments the role sets itself (the API address, the multi-node launch).
ROLE_ARGS = frozenset(["model", "served_model_name", "host", "port", "nnodes", "node_rank",
                       "master_addr", "master_port", "headless"])

_SERVE_FIX = "set it in the serve arguments (e.g. dgxspark_serve_args or recipe_serve_args)"
_PLAN_FIX = ("set it in the plan (e.g. dgxspark_plan or recipe_plan), which preflight checks; "
             "as a serve argument it would reach vllm serve unchecked")


def _mapping(variable, value):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CommandLineError(variable, value, "must be a dict", "give a dict of names and "
                               "values, e.g. {tensor_parallel_size: 4}")
    return value


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _bool(variable, value):
    if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
        return value.lower() in _TRUE
    if not isinstance(value, bool):
        raise CommandLineError(variable, value, "must be true or false", "give true or false")
    return value


def check_plan_key(key, value, variable="plan"):
    """Refuse a plan key that is not a plan option (naming the closest one)."""
    if key in OPTIONS:
        return
    where = "%s.%s" % (variable, key)
    if key in SERVE_ARGS:
        raise CommandLineError(where, value, "is a vllm serve argument, not a plan option",
                               _SERVE_FIX)
    near = closest(key, OPTIONS)
    raise CommandLineError(where, value, "is not a plan option",
                           "did you mean %s?" % near if near else
                           "use the plan options of ansible-doc dgxspark.cluster.vllm_plan")


def check_serve_arg(key, value, variable="serve_args"):
    """Refuse a serve argument vLLM does not have, a plan input, or one the role sets."""
    where = "%s.%s" % (variable, key)
    if key in OPTIONS:
        raise CommandLineError(where, value, "is a plan input, not a serve-only argument",
                               _PLAN_FIX)
    if key in ROLE_ARGS:
        raise CommandLineError(where, value, "is set by the vllm_cluster role",
                               "drop it: the role sets the model, --served-model-name, "
                               "--host, --port and the multi-node launch itself")
    if key not in SERVE_ARGS:
        near = closest(key, set(SERVE_ARGS) | set(OPTIONS))
        fix = "use the names of `vllm serve --help` with underscores"
        if near in OPTIONS:
            fix = "did you mean %s? It is a plan option: %s" % (near, _PLAN_FIX)
        elif near:
            fix = "did you mean %s?" % near
        raise CommandLineError(where, value, "is not a vllm serve argument of vLLM %s"
                               % VLLM_VERSION, fix)


# compilation_config's switch for the compile pass of the plan option sequence_parallelism
# (older builds; vLLM 0.33 has none).
_SP_PASS = ("pass_config", "enable_sequence_parallelism")


def _sequence_parallelism_in(serve_args):
    """What the serve arguments' compilation_config says about sequence parallelism
    (None: nothing)."""
    config = serve_args.get("compilation_config")
    if isinstance(config, str):
        try:
            config = json.loads(config)
        except ValueError:
            return None
    if not isinstance(config, dict) or not isinstance(config.get(_SP_PASS[0]), dict):
        return None
    value = config[_SP_PASS[0]].get(_SP_PASS[1])
    return None if value is None else bool(value)


def engine_args(plan, serve_args=None, padding=None):
    """vllm serve's engine arguments of a plan: the plan's options that are vllm serve
    arguments and the serve-only arguments (attention backend, parsers, ...) on top.

    ``padding`` is the plan engine's padding of this plan (``vllm_plan``'s ``padding``
    result). A plan with ``virtual_heads`` needs it: when it pads, its ``hf_overrides``
    (the ``virtual_heads`` marker the shipped virtual-heads patch reads) joins the serve
    arguments' ``hf_overrides``.

    Refused, naming the key and the closest valid name: a plan key that is not a plan option;
    a serve argument that is a plan input (the plan is what preflight proved), vLLM does not
    have (vllm_args.py, recorded from vLLM's parser) or the role sets; and serve arguments
    that contradict the plan's sequence_parallelism (which only compilation_config turns on).
    """
    plan = _mapping("plan", plan)
    serve_args = _mapping("serve_args", serve_args)
    for key in plan:
        check_plan_key(key, plan[key])
    for key in serve_args:
        check_serve_arg(key, serve_args[key])
    args = dict((k, v) for k, v in plan.items() if OPTIONS[k].serve == SERVE and v is not None)
    args.update(serve_args)
    planned = _bool("plan.sequence_parallelism", plan.get("sequence_parallelism") or False)
    served = _sequence_parallelism_in(serve_args)
    if planned != bool(served):
        raise CommandLineError(
            "plan.sequence_parallelism", planned,
            "the plan %s sequence parallelism, but the serve arguments' compilation_config "
            "%s %s.%s" % ("assumes" if planned else "does not assume",
                          "does not turn on" if planned else "turns on", _SP_PASS[0],
                          _SP_PASS[1]),
            "make them agree: sequence_parallelism is plan-only (vLLM 0.33 has no such flag "
            "and no such pass); on an older build that has the pass, set both")
    if plan.get("virtual_heads") and padding is None:
        raise CommandLineError(
            "plan.virtual_heads", True, "vLLM needs the padding the plan engine computes for it",
            "give the plan engine's padding (vllm_plan's padding result; in site.yml the "
            "dgxspark.cluster.recipe lookup computes it from the recipe's model profile)")
    if padding and padding.get("applied"):
        overrides = dict(args.get("hf_overrides") or {})
        for key, value in padding["hf_overrides"].items():
            if key in overrides and overrides[key] != value:
                raise CommandLineError(
                    "serve_args.hf_overrides.%s" % key, overrides[key],
                    "contradicts the plan engine's padding",
                    "drop it from the serve arguments: the padding comes from the plan")
            overrides[key] = value
        args["hf_overrides"] = overrides
    return args


def plan_env(plan):
    """The environment variables a plan implies (options vLLM reads from the environment,
    e.g. allow_long_max_model_len -> VLLM_ALLOW_LONG_MAX_MODEL_LEN=1)."""
    plan = _mapping("plan", plan)
    env = {}
    for key, value in plan.items():
        check_plan_key(key, value)
        option = OPTIONS[key]
        if option.serve == ENV and value is not None and _bool("plan.%s" % key, value):
            env[option.env] = "1"
    return env


def flag(name):
    return "--" + name.replace("_", "-")


_INT = re.compile(r"^\s*[+-]?[0-9]{1,18}\s*$")


def _int(variable, value, minimum, maximum, problem, fix):
    if isinstance(value, str) and _INT.match(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or \
            not minimum <= value <= maximum:
        raise CommandLineError(variable, value, problem, fix)
    return value


def multi_node(nnodes, node_rank, master_addr, master_port):
    """One node's part of vLLM's Ray-free multi-node launch, checked."""
    nnodes = _int("nnodes", nnodes, 1, 4096, "must be a positive number of nodes",
                  "give the number of Sparks (vllm_cluster_nodes)")
    rank = _int("node_rank", node_rank, -2 ** 63, 2 ** 63, "must be an integer",
                "give 0 for the head")
    if not 0 <= rank < nnodes:
        raise CommandLineError("node_rank", rank, "node rank %d is not within 0..%d"
                               % (rank, nnodes - 1), "give 0 for the head, 1.. for the workers")
    if not master_addr or not isinstance(master_addr, str):
        raise CommandLineError("master_addr", master_addr, "the multi-node launch needs the "
                               "head's address (master_addr)", "give the head's fabric address")
    port = _int("master_port", master_port, -2 ** 63, 2 ** 63, "must be an integer",
                "use 29501")
    if not 0 < port < 65536:
        raise CommandLineError("master_port", port, "master port %d is not a TCP port" % port,
                               "use 29501 (vllm_cluster_master_port)")
    return {"nnodes": nnodes, "node_rank": rank, "master_addr": master_addr,
            "master_port": port}


def launch(nnodes, node_rank, master_addr, master_port):
    """``multi_node()`` for a launch over several nodes; None for one node."""
    if _int("nnodes", nnodes, 1, 4096, "must be a positive number of nodes",
            "give the number of Sparks (vllm_cluster_nodes)") == 1:
        return None
    return multi_node(nnodes, node_rank, master_addr, master_port)


def _serve_value(name, value):
    """The words after ``--name`` for one engine argument (vLLM's kind of the argument)."""
    kind = SERVE_ARGS[name]
    where = "engine argument %s" % name
    if kind in ("bool", "store_true"):
        if not isinstance(value, (bool, str)):
            raise CommandLineError(where, value, "is a flag of vllm serve", "give true or false")
        value = _bool(where, value)
        if value:
            return [flag(name)]
        return [] if kind == "store_true" else ["--no-" + name.replace("_", "-")]
    if isinstance(value, bool):
        raise CommandLineError(where, value, "takes a value, not true or false",
                               "give its value (vllm serve --help: --%s)"
                               % name.replace("_", "-"))
    if kind == "list":
        if isinstance(value, dict):
            raise CommandLineError(where, value, "takes a list of values", "give a list")
        values = value if isinstance(value, (list, tuple)) else [value]
        return [flag(name)] + [str(v) for v in values]
    if isinstance(value, (dict, list, tuple)):  # one value: vLLM parses JSON
        return [flag(name), json.dumps(value, separators=(",", ":"), sort_keys=False)]
    return [flag(name), str(value)]


def serve_argv(model, engine_args, served_model_name=None, host=None, port=None,
               multi_node=None):
    """``vllm serve MODEL --flags...`` from vLLM engine arguments (None values are dropped).

    Names are checked against vLLM's parser (vllm_args.py): an unknown name fails with the
    closest one. Booleans are ``--flag`` / ``--no-flag`` (store_true flags have no ``--no-``
    form), lists several values, dicts JSON.

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
    for name, value in _mapping("engine_args", engine_args).items():
        if value is None:
            continue
        if name in ROLE_ARGS:
            raise CommandLineError("engine argument %s" % name, value, "is set by the role",
                                   "drop %r from the engine arguments" % name)
        if name not in SERVE_ARGS:
            near = closest(name, SERVE_ARGS)
            raise CommandLineError(
                "engine argument %s" % name, value,
                "is not a vllm serve argument of vLLM %s%s" % (
                    VLLM_VERSION, " (it is a plan option)" if name in OPTIONS else ""),
                "pass the plan through the dgxspark.cluster.vllm_engine_args filter"
                if name in OPTIONS else "did you mean %s?" % near if near else
                "use the names of `vllm serve --help` with underscores")
        argv += _serve_value(name, value)
    return argv


def ray_argv(role, node_ip, port, head_ip=None, num_gpus=1, num_cpus=2,
             object_store_memory=1073741824, temp_dir="/tmp/ray"):
    """``ray start`` for the Ray head or a worker, blocking in the foreground."""
    if role not in ("head", "worker"):
        raise CommandLineError("role", role, "ray role must be head or worker",
                               "use head or worker")
    if not node_ip or not isinstance(node_ip, str):
        raise CommandLineError("node_ip", node_ip, "must be the node's address",
                               "give the node's fabric address")
    port = _int("port", port, 1, 65535, "is not a TCP port", "use 6379")
    num_gpus = _int("num_gpus", num_gpus, 0, 64, "must be an integer from 0 to 64",
                    "use 1 for a Spark")
    num_cpus = _int("num_cpus", num_cpus, 1, 4096, "must be a positive integer", "use 2")
    object_store_memory = _int("object_store_memory", object_store_memory, 1, 2 ** 50,
                               "must be a positive number of bytes", "use 1073741824 (1 GiB)")
    argv = ["ray", "start", "--block", "--node-ip-address=%s" % node_ip,
            "--num-gpus=%d" % num_gpus, "--num-cpus=%d" % num_cpus,
            "--object-store-memory=%d" % object_store_memory, "--disable-usage-stats",
            "--temp-dir=%s" % temp_dir]
    if role == "head":
        argv += ["--head", "--port=%d" % port, "--include-dashboard=false",
                 "--include-log-monitor=false"]
    else:
        if not head_ip or not isinstance(head_ip, str):
            raise CommandLineError("head_ip", head_ip, "a Ray worker needs the head's address",
                                   "give the head's fabric address")
        argv += ["--address=%s:%d" % (head_ip, port)]
    return argv


# Ray's placement group strategies (ray.util.placement_group).
RAY_PLACEMENT_STRATEGIES = ("SPREAD", "PACK", "STRICT_SPREAD", "STRICT_PACK")


def ray_placement_env(strategy):
    """The environment of ``vllm serve`` (the Ray driver) for ``strategy``.

    vLLM 0.33.0's Ray executor (vllm/v1/executor/ray_utils.py, initialize_ray_cluster) takes a
    placement group it is given (``parallel_config.placement_group``, or the placement group of
    the Ray actor it runs in) and otherwise creates one itself: one ``{"GPU": 1}`` bundle per
    rank with ``strategy="PACK"``, written into the code, no option. Builds that anchor the
    first bundle to the driver's node (``node:<ip>``) make that PACK unsatisfiable on Sparks
    with one GPU each when the anchor's address is not Ray's (eugr#227); those builds, and
    eugr's launcher recipes, read the strategy from ``VLLM_DISTRIBUTED_EXECUTOR_CONFIG``
    (``{"placement_group_options": {"strategy": "SPREAD"}}``). Upstream 0.33.0 does not read
    it (it lists it among unknown ``VLLM_*`` variables); its unanchored PACK group is one Ray
    satisfies across one-GPU nodes. Empty ``strategy``: no variable."""
    if strategy in (None, ""):
        return {}
    if strategy not in RAY_PLACEMENT_STRATEGIES:
        near = closest(str(strategy).upper(), RAY_PLACEMENT_STRATEGIES)
        raise CommandLineError("vllm_cluster_ray_placement_strategy", strategy,
                               "is not a Ray placement strategy",
                               "%suse one of %s, or \"\" for none" % (
                                   "did you mean %s? " % near if near else "",
                                   ", ".join(RAY_PLACEMENT_STRATEGIES)))
    return {"VLLM_DISTRIBUTED_EXECUTOR_CONFIG": json.dumps(
        {"placement_group_options": {"strategy": strategy}}, separators=(",", ":"))}


def argv_list(variable, argv):
    """``argv`` checked to be a list of words (a string would become one word per character)."""
    if isinstance(argv, (str, bytes)):
        raise CommandLineError(variable, argv, "is a string, not an argv list (it would be "
                               "split into single characters)",
                               "give a list of words, e.g. %s" % shown(str(argv).split()[:4]))
    if not isinstance(argv, (list, tuple)):
        raise CommandLineError(variable, argv, "must be an argv list", "give a list of words")
    words = []
    for index, word in enumerate(argv):
        if isinstance(word, bool) or not isinstance(word, (str, int, float)):
            raise CommandLineError("%s[%d]" % (variable, index), word,
                                   "must be a string or a number",
                                   "give every word of the command line as a string")
        try:
            words.append(str(word))
        except ValueError:  # an int beyond Python's 4300-digit string limit
            raise CommandLineError("%s[%d]" % (variable, index), "a %d-bit number"
                                   % word.bit_length(), "is too large for a command line",
                                   "give every word of the command line as a string")
    return words


# docker_argv's settings that are lists of words.
_DOCKER_LISTS = ("env_files", "mounts", "devices", "cap_add", "ulimits", "extra")
_DOCKER_SETTINGS = _DOCKER_LISTS + ("env", "gpus", "privileged", "shm_size", "pid")


def docker_argv(name, image, command, env_files=(), env=None, mounts=(), gpus=True,
                devices=(), cap_add=(), ulimits=(), privileged=False, shm_size=None,
                pid=None, extra=()):
    """``docker run`` in the foreground (systemd supervises it), removed when it stops.

    ``pid`` joins another PID namespace: ``container:dgxspark-ray`` lets ``vllm serve`` find
    the local raylet (Ray's driver looks for it among the processes it can see) and ends it
    with the Ray head."""
    for variable, value in (("name", name), ("image", image)):
        if not isinstance(value, str) or not value:
            raise CommandLineError(variable, value, "must be a non-empty string",
                                   "give the container's %s" % variable)
    command = argv_list("command", command)
    lists = dict((key, argv_list(key, value)) for key, value in (
        ("env_files", env_files), ("mounts", mounts), ("devices", devices),
        ("cap_add", cap_add), ("ulimits", ulimits), ("extra", extra)))
    env = _mapping("env", env)
    argv = ["docker", "run", "--rm", "--name", name, "--network", "host", "--ipc", "host"]
    if pid:
        argv += ["--pid", str(pid)]
    if privileged:
        argv.append("--privileged")
    if gpus:
        argv += ["--gpus", "all"]
    for device in lists["devices"]:
        argv += ["--device", device]
    for cap in lists["cap_add"]:
        argv += ["--cap-add", cap]
    for ulimit in lists["ulimits"]:
        argv += ["--ulimit", ulimit]
    if shm_size:
        argv += ["--shm-size", str(shm_size)]
    for env_file in lists["env_files"]:
        argv += ["--env-file", env_file]
    for key, value in sorted(env.items(), key=lambda item: str(item[0])):
        argv += ["-e", "%s=%s" % (key, value)]
    for mount in lists["mounts"]:
        argv += ["-v", mount]
    argv += lists["extra"]
    argv.append(image)
    return argv + command


def docker_run(command, name, image, settings):
    """docker_argv with its settings as one dict (the docker_run_argv filter), checked."""
    settings = _mapping("settings", settings)
    for key in settings:
        if key not in _DOCKER_SETTINGS:
            near = closest(key, _DOCKER_SETTINGS)
            raise CommandLineError("settings.%s" % key, settings[key], "is not a docker_run "
                                   "setting", "did you mean %s?" % near if near else
                                   "use only %s" % ", ".join(_DOCKER_SETTINGS))
    return docker_argv(name, image, command, **settings)


_PLAIN = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")
_C_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def systemd_quote(arg):
    """Quote one argument for ExecStart= (systemd.service "Command lines"); control
    characters become C escapes (a raw newline would end the unit's line)."""
    arg = str(arg).replace("%", "%%").replace("$", "$$")
    if arg and _PLAIN.match(arg):
        return arg
    arg = arg.replace("\\", "\\\\").replace('"', '\\"')
    arg = "".join(_C_ESCAPES.get(c) or ("\\x%02x" % ord(c) if ord(c) < 32 or ord(c) == 127
                                        else c) for c in arg)
    return '"%s"' % arg


def systemd_exec(argv):
    return " ".join(systemd_quote(a) for a in argv_list("argv", argv))


def shell_line(argv):
    """The same command for a human (README, reports): POSIX shell quoting."""
    out = []
    for arg in argv_list("argv", argv):
        out.append(arg if arg and _PLAIN.match(arg) else "'%s'" % arg.replace("'", "'\\''"))
    return " ".join(out)


# A line of a native stack trace (torch's c10 errors print one per frame) and the lines that
# say what went wrong (Python exceptions, C++ aborts, the kernel's OOM killer, timeouts).
_FRAME = re.compile(r"^\s*frame #\d+:")
_CAUSE = re.compile(r"(Error|Exception|Traceback \(most recent call last\)|terminate called|"
                    r"what\(\):|Killed|killed process|Out of memory|timed out|Timeout|"
                    r"[Cc]onnection (refused|reset)|No route to host|Address already in use)")


def log_excerpt(text, lines=40, causes=5):
    """The part of a unit's journal worth showing in a failure message: its last ``lines``
    lines with native stack frames left out (a torch/c10 error prints dozens, which push the
    error itself out of a short tail), and before them the last ``causes`` lines that name a
    cause (an exception, an abort, a timeout, a refused connection) from earlier in the text,
    so the reason survives a long trace."""
    lines, causes = int(lines), int(causes)
    kept, frames = [], 0
    for line in str(text or "").splitlines():
        if _FRAME.match(line):
            frames += 1
        else:
            kept.append(line)
    tail = kept[-lines:] if lines > 0 else []
    earlier = kept[:len(kept) - len(tail)]
    seen = set(tail)
    picked = []
    for line in reversed(earlier):
        if len(picked) >= causes:
            break
        if _CAUSE.search(line) and line not in seen:
            seen.add(line)
            picked.append(line)
    out = []
    if picked:
        out.append("[earlier lines that name a cause]")
        out += list(reversed(picked))
        out.append("[last lines]")
    out += tail
    if frames:
        out.append("[%d native stack frame lines left out]" % frames)
    return "\n".join(out) if out else "(no log)"
