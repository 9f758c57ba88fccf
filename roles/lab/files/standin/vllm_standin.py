# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""The lab's stand-in for ``vllm serve`` -- NOT vLLM, NOT a model.

The simulated Sparks have no GPU and no weights, so vLLM cannot run there. This program takes
vLLM's place in the lab image so that everything around it runs for real: it accepts the same
``vllm serve`` command line, joins the real Ray cluster the vllm_cluster role started, places one
rank per GPU bundle on the nodes (a Ray placement group, as vLLM's Ray executor does), hands each
rank the environment vLLM would (carrying the head's NCCL/vLLM variables over except those in
``ray_non_carry_over_env_vars.json``) and logs what each rank sees, logs the KV-cache lines vLLM
logs (computed by the collection's plan engine from the same arguments and the model's
config.json), and serves ``/health``, ``/v1/models``, ``/v1/chat/completions`` (plain and
streaming) and ``/metrics`` with vLLM's spec-decode counters. Completions are generated text, not
model output: an instruction "reply with exactly X" is answered with X, anything else with
filler; MTP acceptance is simulated per position.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# The collection's plan package: next to this file in the lab image (build_standin.sh copies
# it to /usr/local/lib/dgxspark/plan), plugins/module_utils/plan in the repository.
_HERE = os.path.dirname(os.path.abspath(__file__))
for _lib in (_HERE, os.path.join(_HERE, "..", "..", "..", "..", "plugins", "module_utils")):
    if os.path.isdir(os.path.join(_lib, "plan")):
        sys.path.insert(0, os.path.abspath(_lib))
        break
from plan import engine, request  # noqa: E402  (the plan engine and its option list)

BANNER = ("dgxspark lab stand-in for vLLM 0.33.0 serve: no GPU, no weights -- a simulation "
          "for the lab, not vLLM")
ACCEPTANCE = [0.92, 0.78, 0.64, 0.52, 0.42, 0.34, 0.28, 0.22]
WORDS = ("the cluster answers every request from four simulated sparks while the fabric "
         "carries jumbo frames between neighbours and the stand-in counts tokens").split()


def log(message):
    sys.stdout.write("%s %s\n" % (time.strftime("%m-%d %H:%M:%S"), message))
    sys.stdout.flush()


def parse_args(argv):
    """vllm serve's command line: the stand-in's own arguments, then every plan option that is
    a vllm serve argument (plan/request.py OPTIONS), unset unless given."""
    parser = argparse.ArgumentParser(prog="vllm", description=BANNER)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve")
    serve.add_argument("model")
    for name, kind, default in (
            ("host", str, "0.0.0.0"), ("port", int, 8000), ("served-model-name", str, None),
            ("api-key", str, None), ("gpu-memory-utilization", float, None)):
        serve.add_argument("--" + name, type=kind, default=default)
    for option in request.OPTIONS.values():
        if option.serve != request.SERVE:
            continue
        flag = "--" + option.name.replace("_", "-")
        if option.kind.startswith("bool"):
            serve.add_argument(flag, dest=option.name, action=argparse.BooleanOptionalAction,
                               default=None)
        elif option.kind == "list[int]?":
            serve.add_argument(flag, dest=option.name, type=int, nargs="+")
        elif option.kind == "dict?":
            serve.add_argument(flag, dest=option.name, type=json.loads)
        elif option.kind.startswith("int"):
            serve.add_argument(flag, dest=option.name, type=int)
        else:
            serve.add_argument(flag, dest=option.name)
    return parser.parse_known_args(argv)


def plan_options(args, model_dir, environ=None):
    """The plan the command line and the environment describe: the engine arguments given,
    the model, and the options vLLM reads from the environment (VLLM_ALLOW_LONG_MAX_MODEL_LEN)."""
    environ = os.environ if environ is None else environ
    options = {"model_config": model_dir}
    for option in request.OPTIONS.values():
        if option.serve == request.SERVE and getattr(args, option.name) is not None:
            options[option.name] = getattr(args, option.name)
        elif option.serve == request.ENV:
            options[option.name] = environ.get(option.env) == "1"
    return options


class Metrics(object):
    def __init__(self, positions):
        self.lock = threading.Lock()
        self.counters = {"prompt": 0, "generation": 0, "drafts": 0, "draft_tokens": 0,
                         "accepted": 0, "requests": 0}
        self.per_pos = [0] * positions
        self.ttft = []

    def render(self, model):
        label = 'model_name="%s"' % model
        lines = []
        with self.lock:
            c = self.counters
            for name, key, help_text in (
                    ("vllm:prompt_tokens_total", "prompt", "Number of prefill tokens."),
                    ("vllm:generation_tokens_total", "generation", "Number of generation tokens."),
                    ("vllm:request_success_total", "requests", "Finished requests."),
                    ("vllm:spec_decode_num_drafts_total", "drafts", "Number of spec decoding drafts."),
                    ("vllm:spec_decode_num_draft_tokens_total", "draft_tokens",
                     "Number of draft tokens."),
                    ("vllm:spec_decode_num_accepted_tokens_total", "accepted",
                     "Number of accepted tokens.")):
                lines += ["# HELP %s %s" % (name, help_text), "# TYPE %s counter" % name,
                          "%s{%s} %s" % (name, label, float(c[key]))]
            name = "vllm:spec_decode_num_accepted_tokens_per_pos_total"
            lines += ["# HELP %s Accepted tokens per draft position." % name,
                      "# TYPE %s counter" % name]
            for pos, value in enumerate(self.per_pos):
                lines.append('%s{%s,position="%d"} %s' % (name, label, pos, float(value)))
            name = "vllm:time_to_first_token_seconds"
            lines += ["# TYPE %s summary" % name,
                      "%s_count{%s} %d" % (name, label, len(self.ttft)),
                      "%s_sum{%s} %f" % (name, label, sum(self.ttft))]
        return "\n".join(lines) + "\n"


class Engine(object):
    """Token generation with simulated MTP acceptance."""

    def __init__(self, spec_tokens, tokens_per_s, seed=1234):
        self.spec_tokens = spec_tokens
        self.step_s = 1.0 / tokens_per_s
        self.random = random.Random(seed)
        self.metrics = Metrics(max(spec_tokens, 1))

    def reply_text(self, messages, max_tokens):
        text = " ".join(str(m.get("content", "")) for m in messages if m.get("role") == "user")
        match = re.search(r"reply with exactly[:\s]+([A-Za-z0-9_.-]+)", text, re.I)
        if match:
            return [match.group(1)]
        return [WORDS[i % len(WORDS)] for i in range(max_tokens)]

    def generate(self, messages, max_tokens, usage):
        """Yield tokens as decode steps produce them (MTP: several per step); fills ``usage``
        (per request: requests run concurrently)."""
        tokens = self.reply_text(messages, max_tokens)
        prompt = sum(len(str(m.get("content", "")).split()) for m in messages)
        with self.metrics.lock:
            self.metrics.counters["prompt"] += prompt
        time.sleep(self.step_s * 2)  # prefill
        first = True
        index = 0
        while index < len(tokens):
            accepted = 0
            if self.spec_tokens:
                with self.metrics.lock:
                    self.metrics.counters["drafts"] += 1
                    self.metrics.counters["draft_tokens"] += self.spec_tokens
                    for pos in range(self.spec_tokens):
                        if self.random.random() >= ACCEPTANCE[min(pos, len(ACCEPTANCE) - 1)]:
                            break
                        accepted += 1
                        self.metrics.per_pos[pos] += 1
                    self.metrics.counters["accepted"] += accepted
            step = tokens[index:index + 1 + accepted]
            index += len(step)
            time.sleep(self.step_s)
            with self.metrics.lock:
                self.metrics.counters["generation"] += len(step)
            yield step, first
            first = False
        with self.metrics.lock:
            self.metrics.counters["requests"] += 1
        usage.update({"prompt_tokens": prompt, "completion_tokens": len(tokens),
                      "total_tokens": prompt + len(tokens)})


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            log("%s - %s" % (self.address_string(), fmt % args))

        def send(self, code, body, ctype="application/json"):
            data = body if isinstance(body, bytes) else body.encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def authorized(self):
            key = state["api_key"]
            if not key or not self.path.startswith("/v1/"):
                return True
            if self.headers.get("Authorization") == "Bearer " + key:
                return True
            self.send(401, json.dumps({"error": "Unauthorized"}))
            return False

        def do_GET(self):
            if not self.authorized():
                return
            if self.path == "/health":
                self.send(200 if state["ready"] else 503, b"")
            elif self.path == "/v1/models":
                self.send(200, json.dumps({"object": "list", "data": [{
                    "id": state["name"], "object": "model", "owned_by": "vllm",
                    "root": state["model"], "max_model_len": state["max_model_len"]}]}))
            elif self.path == "/metrics":
                self.send(200, state["engine"].metrics.render(state["name"]),
                          "text/plain; version=0.0.4")
            else:
                self.send(404, json.dumps({"error": "not found"}))

        def do_POST(self):
            if not self.authorized():
                return
            if self.path != "/v1/chat/completions":
                self.send(404, json.dumps({"error": "not found"}))
                return
            length = int(self.headers.get("Content-Length", 0))
            request = json.loads(self.rfile.read(length) or b"{}")
            if request.get("model") not in (state["name"], state["model"]):
                self.send(404, json.dumps({"error": {"message": "The model `%s` does not exist."
                                                     % request.get("model")}}))
                return
            engine = state["engine"]
            max_tokens = int(request.get("max_tokens") or 64)
            start = time.time()
            created = int(start)
            rid = "chatcmpl-standin-%d" % int(start * 1000)
            if request.get("stream"):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()

                def chunk(payload):
                    data = ("data: %s\n\n" % payload).encode()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    self.wfile.flush()

                usage = {}
                for step, first in engine.generate(request.get("messages", []), max_tokens,
                                                   usage):
                    if first:
                        with engine.metrics.lock:
                            engine.metrics.ttft.append(time.time() - start)
                    chunk(json.dumps({"id": rid, "object": "chat.completion.chunk",
                                      "created": created, "model": state["name"],
                                      "choices": [{"index": 0, "delta": {
                                          "content": " ".join(step) + " "}}]}))
                chunk(json.dumps({"id": rid, "object": "chat.completion.chunk",
                                  "created": created, "model": state["name"],
                                  "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                                  "usage": usage}))
                chunk("[DONE]")
                self.wfile.write(b"0\r\n\r\n")
                return
            words, usage = [], {}
            for step, first in engine.generate(request.get("messages", []), max_tokens, usage):
                if first:
                    with engine.metrics.lock:
                        engine.metrics.ttft.append(time.time() - start)
                words += step
            self.send(200, json.dumps({
                "id": rid, "object": "chat.completion", "created": created,
                "model": state["name"], "usage": usage,
                "choices": [{"index": 0, "finish_reason": "stop" if len(words) < max_tokens
                             else "length", "message": {"role": "assistant",
                                                        "content": " ".join(words)}}]}))

    return Handler


def driver_env():
    """What vLLM 0.33's Ray executor hands every rank from the driver: vLLM's own
    ``get_driver_env_vars`` (the real source in this image), i.e. the driver's environment minus
    the worker-specific variables (VLLM_HOST_IP, ...) and those listed in
    ``ray_non_carry_over_env_vars.json``. The rank applies them with ``setdefault``, as
    ``RayWorkerProc.initialize_worker`` does. vLLM's package ``__init__`` files need torch, so the two
    modules are loaded under a bare ``vllm`` package."""
    import importlib
    import importlib.util
    import types

    package = sys.modules.get("vllm")
    if package is None:
        package = types.ModuleType("vllm")
        package.__path__ = list(importlib.util.find_spec("vllm").submodule_search_locations)
        sys.modules["vllm"] = package
    ray_env = importlib.import_module("vllm.ray.ray_env")
    path = os.path.join(package.__path__[0], "v1", "executor", "ray_env_utils.py")
    loader = importlib.util.spec_from_file_location("vllm_ray_env_utils", path)
    utils = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(utils)  # vllm.v1.executor's __init__ needs torch
    worker_specific = {"VLLM_HOST_IP", "VLLM_HOST_PORT", "VLLM_NIXL_SIDE_CHANNEL_HOST",
                       "LOCAL_RANK", "CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES",
                       "ROCR_VISIBLE_DEVICES"}  # vllm/v1/executor/ray_utils.py (imports torch)
    return (utils.get_driver_env_vars(worker_specific_vars=worker_specific),
            sorted(ray_env.RAY_NON_CARRY_OVER_ENV_VARS))


def place_ranks(world, timeout):
    """Join Ray, place one rank per GPU bundle and return what each rank sees."""
    import ray
    from ray.util.placement_group import placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    address = os.environ.get("RAY_ADDRESS", "auto")
    ray.init(address=address, log_to_driver=False, logging_level="ERROR")
    resources = ray.cluster_resources()
    log("Ray cluster at %s: %d node(s), %s GPU(s)" % (address, len(ray.nodes()),
                                                      resources.get("GPU", 0)))
    if resources.get("GPU", 0) < world:
        raise SystemExit("ValueError: The number of required GPUs exceeds the total number of "
                         "available GPUs in the placement group (need %d, have %s)."
                         % (world, resources.get("GPU", 0)))
    group = placement_group([{"GPU": 1, "CPU": 0.01}] * world, strategy="PACK")
    ray.get(group.ready(), timeout=timeout)
    env, excluded = driver_env()

    @ray.remote(num_gpus=1, num_cpus=0.01)
    class Rank(object):
        """One rank per GPU bundle, alive as long as the engine (vLLM's RayWorkerWrapper)."""

        def view(self, rank, carried):
            import socket
            merged = dict(os.environ)
            for key, value in carried.items():
                merged.setdefault(key, value)
            return {"rank": rank, "hostname": socket.gethostname(),
                    "node_ip": ray.util.get_node_ip_address(),
                    "VLLM_HOST_IP": merged.get("VLLM_HOST_IP"),
                    "NCCL_IB_HCA": merged.get("NCCL_IB_HCA"),
                    "NCCL_SOCKET_IFNAME": merged.get("NCCL_SOCKET_IFNAME")}

        def ping(self):
            return True

    ranks = [Rank.options(scheduling_strategy=PlacementGroupSchedulingStrategy(
        placement_group=group, placement_group_bundle_index=i)).remote() for i in range(world)]
    views = ray.get([actor.view.remote(i, env) for i, actor in enumerate(ranks)],
                    timeout=timeout)
    return views, excluded, ranks


def watch_ranks(ranks, interval=5.0):
    """Exit like vLLM's engine does when a rank's node goes away (EngineDeadError): systemd
    restarts vllm serve, which waits until every node is back."""
    import ray

    while True:
        time.sleep(interval)
        try:
            ray.get([actor.ping.remote() for actor in ranks], timeout=30)
        except Exception as exc:  # RayActorError, GetTimeoutError, lost GCS
            log("ERROR EngineCore: a worker rank died (%s: %s); vllm.v1.engine.exceptions."
                "EngineDeadError: EngineCore encountered an issue." % (
                    type(exc).__name__, str(exc).splitlines()[0] if str(exc) else ""))
            os._exit(1)


def main(argv):
    args, unknown = parse_args(argv)
    log(BANNER)
    if unknown:
        log("stand-in: accepted and ignored vLLM flags: %s" % " ".join(unknown))
    name = args.served_model_name or args.model
    options = plan_options(args, args.model)
    try:
        plan = request.PlanRequest(options)
    except ValueError as exc:  # the plan engine's input errors, as vLLM refuses bad arguments
        log("ERROR %s" % exc)
        raise SystemExit(2)
    spec = plan.as_dict()["speculative_config"] or {}
    world = plan.tensor_parallel_size * plan.pipeline_parallel_size
    log("vLLM API server version 0.33.0 (lab stand-in)")
    log("non-default args: model=%r tensor_parallel_size=%d pipeline_parallel_size=%d "
        "decode_context_parallel_size=%d speculative_config=%s" % (
            args.model, plan.tensor_parallel_size, plan.pipeline_parallel_size,
            plan.decode_context_parallel_size, json.dumps(spec) if spec else None))
    if plan.distributed_executor_backend == "ray" or world > 1:
        views, excluded, ranks = place_ranks(world, timeout=int(os.environ.get(
            "DGXSPARK_STANDIN_RAY_TIMEOUT", "120")))
        threading.Thread(target=watch_ranks, args=(ranks,), daemon=True).start()
        log("ray_non_carry_over_env_vars: %s" % ",".join(excluded))
        for view in views:
            log("rank %(rank)d on %(hostname)s (%(node_ip)s): VLLM_HOST_IP=%(VLLM_HOST_IP)s "
                "NCCL_IB_HCA=%(NCCL_IB_HCA)s NCCL_SOCKET_IFNAME=%(NCCL_SOCKET_IFNAME)s" % view)
    try:
        result = engine.evaluate(options)
    except ValueError as exc:  # an unreadable config.json
        log("ERROR %s" % exc)
        raise SystemExit(1)
    kv = result["kv_cache"]
    max_model_len = result["plan"]["max_model_len"]
    if not result["satisfiable"]:
        for violation in result["violations"]:
            log("ERROR %s" % violation["message"])
        raise SystemExit(1)
    if kv.get("tokens") is not None:
        log("GPU KV cache size: {:,} tokens, Maximum concurrency for {:,} tokens per request: "
            "{:.2f}x".format(kv["tokens"], max_model_len, kv["max_concurrency"]))
        log("stand-in: the KV-cache line above is the plan engine's estimate, not a measurement")
    state = {"ready": False, "name": name, "model": args.model, "max_model_len": max_model_len,
             "api_key": args.api_key or os.environ.get("VLLM_API_KEY"),
             "engine": Engine(int(spec.get("num_speculative_tokens") or 0),
                              float(os.environ.get("DGXSPARK_STANDIN_TOKENS_PER_S", "200")))}
    server = ThreadingHTTPServer((args.host, args.port), make_handler(state))
    state["ready"] = True
    log("Starting vLLM API server on http://%s:%d" % (args.host, args.port))
    log("Application startup complete.")
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
