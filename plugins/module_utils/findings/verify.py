# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Every pass/fail decision of the verify stage, in plain Python.

The verify role gathers what a running cluster shows (the API's answers, the join helper's
output, the engine's log, what every rank's process sees) and ``report(inputs)`` turns it
into findings: ``lines`` to print and ``failures`` to fail on, each saying what was seen and
what to do. The checks:

* health and models: ``/health`` answers 200 and the served name is in ``/v1/models``;
* join: every node is in the cluster (Ray with its GPU, or the engine's process group of the
  Ray-free launch) -- the helper's last line is the JSON list of the nodes that joined;
* KV cache: the size the engine logged (``GPU KV cache size`` or, on vLLM's CPU build,
  ``CPU KV cache size``) is within a tolerance of the plan engine's estimate for the same
  model and budget;
* tokens: with a reference (``dgxspark-reference.json`` next to the model: greedy tokens and
  logprobs of one vLLM process), the cluster's greedy tokens must be identical and each
  logprob within a tolerance; without one, a smoke completion must contain a token;
* ranks: every rank's process sees its own node's fabric environment (``VLLM_HOST_IP``,
  ``NCCL_IB_HCA``, socket interfaces): read from the worker processes themselves with the
  Ray-free launch, or from what Ray's carry-over gives each node with Ray.

* memory: every node's ledger after the launch (module_utils/memory.py: total, available,
  the engine's weights and KV cache as vLLM logged them, what Ray holds, the margin above the
  memory guard's first threshold); a margin under the floor is a warning, not a failure.

A stand-in engine (the lab's, for the Ray executor) computes no tokens and logs the plan
engine's own KV figure: those two checks are then reported as not made, never as passed.
"""
from __future__ import annotations

import json
import re

from ..memory import ledger_lines

_KV = re.compile(r"(GPU|CPU) KV cache size: ([0-9,]+) tokens")

RANK_KEYS = ("VLLM_HOST_IP", "NCCL_IB_HCA", "NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME",
             "NCCL_IB_GID_INDEX", "NCCL_IB_DISABLE", "NCCL_NET_PLUGIN",
             "NCCL_IB_SUBNET_AWARE_ROUTING", "NCCL_IB_MERGE_NICS", "NCCL_ALGO")


class Findings(object):
    def __init__(self):
        self.lines = []
        self.failures = []
        self.warnings = []

    def ok(self, text):
        self.lines.append(text)

    def fail(self, text):
        self.failures.append(text)


def check_health(out, url, status, msg=""):
    if status == 200:
        out.ok("health: %s/health answers 200" % url)
    else:
        out.fail("health: %s/health answered %s (%s): look at the head's dgxspark-vllm.service "
                 "log" % (url, status or "nothing", msg or "no answer"))


def check_models(out, served, ids, status=None):
    ids = list(ids or [])
    if served in ids:
        out.ok("models: %s" % ", ".join(ids))
    else:
        out.fail("models: %s not in /v1/models (%s)" % (
            served, ", ".join(ids) or "HTTP %s" % (status if status is not None else "?")))


def joined_list(stdout_lines):
    """The helpers (wait-ray, dgxspark-ranks wait) print a summary, then the JSON list."""
    lines = [line for line in (stdout_lines or []) if line.strip()]
    if len(lines) < 2:
        return []
    try:
        value = json.loads(lines[-1])
    except ValueError:
        return []
    return value if isinstance(value, list) else []


def check_join(out, executor, rc, stdout_lines, stderr=""):
    lines = [line for line in (stdout_lines or []) if line.strip()]
    joined = joined_list(lines)
    what = "Ray" if executor == "ray" else "process group"
    summary = lines[0] if lines else "%s: %s" % (what, (stderr or "").strip() or "no answer")
    text = "%s (%s)" % (summary, ", ".join(joined) or "no node")
    if rc == 0:
        out.ok(text)
    else:
        out.fail(text + ": a node is missing; its dgxspark units' logs say why")
    return joined


def logged_kv_tokens(log_text):
    """The last KV-cache size the engine logged, or None."""
    found = _KV.findall(log_text or "")
    if not found:
        return None
    return int(found[-1][1].replace(",", ""))


def check_kv(out, log_text, expected, tolerance, standin=False):
    tokens = logged_kv_tokens(log_text)
    if standin:
        out.ok("kv cache: not checked -- the lab's stand-in engine logs the plan engine's own "
               "estimate (%s tokens), not a size an engine allocated"
               % ("{:,}".format(tokens) if tokens is not None else "none"))
        return tokens
    if tokens is None:
        out.fail('kv cache: no "KV cache size" line in the log of dgxspark-vllm.service since it '
                 "started")
        return None
    expected = int(expected or 0)
    if expected <= 0:
        out.ok("kv cache: logged {:,} tokens (no estimate to compare)".format(tokens))
        return tokens
    ratio = float(tokens) / expected
    line = "kv cache: logged {:,} tokens, plan engine estimate {:,} ({:+.1%})".format(
        tokens, expected, ratio - 1)
    if abs(ratio - 1) <= tolerance:
        out.ok(line)
    else:
        out.fail(line + ": more than {:.0%} apart; the plan does not match what vLLM "
                        "allocated".format(tolerance))
    return tokens


def reference_request(reference):
    """The one /v1/completions body (without ``model``) that asks for every reference request
    at once: the token-id prompts as a list, as many tokens as the longest reference answer
    (greedy, EOS ignored, so a shorter answer is the prefix of what is served), logprobs. The
    engine batches them, as the one-process reference's ``LLM.generate`` did."""
    requests = reference.get("requests") or []
    return {"prompt": [r["prompt_token_ids"] for r in requests],
            "max_tokens": max([len(r["token_ids"]) for r in requests] or [1]),
            "temperature": 0, "logprobs": 1, "ignore_eos": True,
            "return_tokens_as_token_ids": True}


def compare_reference(reference, answer, logprob_tolerance):
    """Per reference request: the served tokens and logprobs against the reference's.

    ``answer`` is the /v1/completions answer (with ``return_tokens_as_token_ids``) to
    ``reference_request``: choice ``index`` i is reference request i. Returns a list of dicts
    ``{prompt, ok, detail}``."""
    results = []
    requests = reference.get("requests") or []
    choices = {}
    if isinstance(answer, dict) and isinstance(answer.get("choices"), list):
        for position, choice in enumerate(answer["choices"]):
            if isinstance(choice, dict):
                choices[choice.get("index", position)] = choice
    for index, want in enumerate(requests):
        item = {"prompt": want.get("prompt"), "ok": False}
        try:
            choice = choices[index]
            count = len(want["token_ids"])
            tokens = [int(str(t).rsplit(":", 1)[-1])
                      for t in choice["logprobs"]["tokens"]][:count]
            logprobs = [float(v) for v in choice["logprobs"]["token_logprobs"]][:count]
        except (TypeError, KeyError, IndexError, ValueError):
            item["detail"] = "no tokens with logprobs in the answer (%s)" % (
                json.dumps(choices.get(index, answer))[:200] if answer is not None
                else "no answer")
            results.append(item)
            continue
        if tokens != want["token_ids"]:
            first = next((i for i, (a, b) in enumerate(zip(tokens, want["token_ids"])) if a != b),
                         min(len(tokens), len(want["token_ids"])))
            item["detail"] = ("token %d differs: served %s, the one-process reference %s"
                              % (first, tokens[first:first + 4], want["token_ids"][first:first + 4]))
            results.append(item)
            continue
        worst = max(abs(a - b) for a, b in zip(logprobs, want["logprobs"])) if tokens else 0.0
        item["max_logprob_diff"] = worst
        if worst > logprob_tolerance:
            item["detail"] = ("same %d tokens, but logprobs differ by up to %.2g (tolerance %.2g)"
                              % (len(tokens), worst, logprob_tolerance))
        else:
            item["ok"] = True
            item["detail"] = "same %d tokens, logprobs within %.1g" % (len(tokens), worst)
        results.append(item)
    return results


def check_reference(out, reference, answer, logprob_tolerance, standin=False):
    if standin:
        out.ok("tokens: not checked -- the lab's stand-in engine computes no tokens")
        return []
    results = compare_reference(reference, answer, logprob_tolerance)
    if not results:
        out.fail("tokens: the reference %s has no requests" % reference.get("model", "?"))
    for item in results:
        text = 'tokens: "%s" -> %s' % (item["prompt"], item["detail"])
        if item["ok"]:
            out.ok(text + " (as %s)" % reference.get("engine", "the reference"))
        else:
            out.fail(text + ": the cluster does not compute what one process computes (a rank "
                            "with other weights, another model directory, a broken exchange)")
    return results


def check_smoke(out, prompt, expect, reply, status=None, standin=False):
    reply = (reply or "").strip()
    if expect in reply:
        out.ok('smoke: "%s" -> "%s"%s' % (prompt, reply,
                                          " (the stand-in echoes)" if standin else ""))
    else:
        out.fail('smoke: expected "%s" in the reply, got "%s" (HTTP %s)'
                 % (expect, reply, status if status is not None else "?"))


def worker_list(stdout):
    """The workers worker_env.py printed on a node, or ``{"error": ...}`` when it printed none."""
    lines = [line for line in (stdout or "").splitlines() if line.strip()]
    try:
        data = json.loads(lines[-1])
        return list(data["workers"])
    except (IndexError, ValueError, KeyError, TypeError):
        return {"error": (lines[-1][:200] if lines else "no output from the vllm container")}


def check_ranks(out, executor, nodes, views, config_dir="/etc/dgxspark"):
    """``nodes``: node -> its own fabric environment. ``views``: for Ray, node IP -> what a
    rank there sees; for the Ray-free launch, node -> list of {pid, name, env} of its worker
    processes (or a dict with ``error``)."""
    if not views:
        out.fail("ranks: could not read the ranks' environment")
        return
    for node, own in nodes.items():
        if executor == "ray":
            view = views.get(own.get("VLLM_HOST_IP"))
            if view is None:
                out.fail("ranks: %s (%s) runs no Ray node with its fabric address"
                         % (node, own.get("VLLM_HOST_IP")))
                continue
            seen = [("Ray rank", view)]
        else:
            procs = views.get(node)
            if not isinstance(procs, list) or not procs:
                error = procs.get("error") if isinstance(procs, dict) else None
                out.fail("ranks: %s has no vLLM worker process to read (%s)"
                         % (node, error or "none running"))
                continue
            seen = [("%s (pid %s)" % (p.get("name", "worker"), p.get("pid")), p.get("env") or {})
                    for p in procs]
        for label, env in seen:
            wrong = ["%s=%s (node has %s)" % (key, env.get(key), own[key])
                     for key in sorted(own) if key in RANK_KEYS and env.get(key) != str(own[key])]
            if wrong:
                out.fail("ranks: %s on %s sees %s: %s/node.env on %s does not give the node its "
                         "own value (missing or changed, then empty or carried over from the "
                         "head); re-run the vllm_cluster role"
                         % (label, node, ", ".join(wrong), config_dir, node))
            else:
                out.ok("ranks: %s on %s keeps its own VLLM_HOST_IP=%s NCCL_IB_HCA=%s"
                       % (label, node, env.get("VLLM_HOST_IP"), env.get("NCCL_IB_HCA")))


def report(inputs):
    """All of verify's findings from the gathered ``inputs`` (see the verify role)."""
    out = Findings()
    standin = bool(inputs.get("standin"))
    check_health(out, inputs["url"], inputs.get("health_status"), inputs.get("health_msg"))
    check_models(out, inputs["served"], inputs.get("model_ids"), inputs.get("models_status"))
    joined = check_join(out, inputs["executor"], inputs.get("join_rc"),
                        inputs.get("join_stdout_lines"), inputs.get("join_stderr"))
    kv = check_kv(out, inputs.get("kv_log"), inputs.get("kv_expected"),
                  float(inputs.get("kv_tolerance", 0.05)), standin)
    reference = inputs.get("reference")
    if reference:
        tokens = check_reference(out, reference, inputs.get("reference_answer"),
                                 float(inputs.get("logprob_tolerance", 1e-4)), standin)
    else:
        tokens = None
        check_smoke(out, inputs.get("smoke_prompt"), inputs.get("smoke_expect"),
                    inputs.get("smoke_reply"), inputs.get("smoke_status"), standin)
    if inputs.get("check_ranks", True):
        check_ranks(out, inputs["executor"], inputs.get("rank_nodes") or {},
                    inputs.get("rank_views") or {}, inputs.get("config_dir", "/etc/dgxspark"))
    ledger = inputs.get("memory")
    if ledger:
        out.lines += ledger_lines(ledger)
        out.warnings += list(ledger.get("warnings") or [])
    return {"lines": out.lines + ["WARNING: " + w for w in out.warnings] + out.failures,
            "failures": out.failures, "warnings": out.warnings, "memory": ledger,
            "kv_logged_tokens": kv, "joined": joined, "tokens": tokens,
            "smoke_reply": inputs.get("smoke_reply")}
