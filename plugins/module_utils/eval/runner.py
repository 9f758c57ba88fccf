# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""A scenario's conversation: the model's turns, the simulated tool results, the verdict.

A *turn* is one request to the model. When the model calls tools, every call gets its simulated
result (the scenario's ``results``) and the conversation goes on; when it answers without a call,
the next follow-up user message (if any) is sent; otherwise the conversation ends. It also ends at
``max_turns``, at the wall timeout of the scenario and at the first request that fails (HTTP
error, timeout, broken answer), which is a FAIL whose reason is that failure.
"""
from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from .checks import FAIL, POINTS, Call, Transcript, check, compare
from .errors import EvalInputError

THINKING_KEYS = ("enable_thinking", "thinking")
_TRANSCRIPT_TEXT = 2000  # characters of a message kept in a saved transcript


class Settings(object):
    """How every request is made. ``extra`` is ``extra_body`` with thinking on or off in its
    ``chat_template_kwargs`` (both keys chat templates use: enable_thinking and thinking)."""

    def __init__(self, max_tokens=1024, temperature=0.0, thinking=False, extra_body=None,
                 wall_timeout=180, transcripts=False):
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise EvalInputError("max_tokens", max_tokens, "must be a whole number >= 1",
                                 "give the token budget of one answer (the published eval: 1024)")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
                or not 0 <= temperature <= 2:
            raise EvalInputError("temperature", temperature, "must be a number from 0 to 2",
                                 "keep 0 for a deterministic model")
        if isinstance(wall_timeout, bool) or not isinstance(wall_timeout, (int, float)) \
                or wall_timeout <= 0:
            raise EvalInputError("wall_timeout", wall_timeout, "must be a number of seconds > 0",
                                 "give the time one scenario may take (the published eval: 180)")
        extra = dict(extra_body or {})
        kwargs = extra.get("chat_template_kwargs") or {}
        if not isinstance(kwargs, dict):
            raise EvalInputError("extra_body", extra_body, "chat_template_kwargs must be a mapping",
                                 "write {chat_template_kwargs: {enable_thinking: false}}")
        kwargs = dict(kwargs)
        for key in THINKING_KEYS:
            kwargs[key] = bool(thinking)
        extra["chat_template_kwargs"] = kwargs
        self.max_tokens = max_tokens
        self.temperature = float(temperature)
        self.thinking = bool(thinking)
        self.extra = extra
        self.wall_timeout = wall_timeout
        self.transcripts = transcripts


def simulate(scenario, name, args, counts):
    """The simulated result of one call, as the text of the tool message."""
    offered = {tool["function"]["name"] for tool in scenario.tools}
    spec = scenario.results.get(name)
    if name not in offered:
        value = {"error": "no tool named %r is available" % name}
    elif args is None:
        value = {"error": "the arguments are not a valid JSON object"}
    elif spec is None:
        value = {"error": "%s is not available right now" % name}
    else:
        counts[name] = counts.get(name, 0) + 1
        if "result" in spec:
            value = spec["result"]
        elif "sequence" in spec:
            value = spec["sequence"][min(counts[name], len(spec["sequence"])) - 1]
        else:
            value = spec.get("default", {"error": "nothing found for these arguments"})
            for case in spec["cases"]:
                if not compare(case["when"], args)[0]:
                    value = case["result"]
                    break
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _short(message):
    message = dict(message)
    content = message.get("content")
    if isinstance(content, str) and len(content) > _TRANSCRIPT_TEXT:
        message["content"] = "%s ... (%d characters)" % (content[:_TRANSCRIPT_TEXT], len(content))
    return message


def run_scenario(scenario, client, settings, clock=time.monotonic):
    """(the scenario's record for the JSON document, the model's replies)."""
    start = clock()
    deadline = start + settings.wall_timeout
    messages = [{"role": "system", "content": scenario.system},
                {"role": "user", "content": scenario.first_message()}]
    followups = list(scenario.followups)
    said, replies, counts = [], [], {}
    user_turn, error, stopped = 1, None, None
    while True:
        if len(replies) >= scenario.max_turns:
            stopped = "stopped after %d turns (max_turns) with calls still coming" % len(replies)
            break
        remaining = deadline - clock()
        if remaining <= 0:
            error = "wall timeout: %g s spent before turn %d" % (settings.wall_timeout,
                                                                 len(replies) + 1)
            break
        reply = client.complete(messages, scenario.tools, settings.max_tokens,
                                settings.temperature, settings.extra, timeout=remaining,
                                deadline=deadline)
        replies.append(reply)
        if reply.error:
            error = "turn %d: %s" % (len(replies), reply.error)
            break
        calls = [Call(c["name"], c["arguments"], len(said), user_turn) for c in reply.tool_calls]
        said.append({"content": reply.content, "calls": calls, "turn": user_turn})
        if calls:
            ids = [c.get("id") or "call_%d_%d" % (len(replies), i)
                   for i, c in enumerate(reply.tool_calls)]
            messages.append({"role": "assistant", "content": reply.content, "tool_calls": [
                {"id": cid, "type": "function",
                 "function": {"name": c["name"], "arguments": c["arguments"]}}
                for cid, c in zip(ids, reply.tool_calls)]})
            for cid, call in zip(ids, calls):
                messages.append({"role": "tool", "tool_call_id": cid, "name": call.name,
                                 "content": simulate(scenario, call.name, call.args, counts)})
            continue
        messages.append({"role": "assistant", "content": reply.content})
        if not followups:
            break
        messages.append({"role": "user", "content": followups.pop(0)})
        user_turn += 1
    if error:
        verdict, reason = FAIL, error
    else:
        verdict, reason = check(scenario, Transcript(said, stopped))
    prompt = sum(r.prompt_tokens for r in replies)
    completion = sum(r.completion_tokens for r in replies)
    record = {
        "id": scenario.id, "category": scenario.category, "verdict": verdict,
        "points": POINTS[verdict], "reason": reason,
        "ttft_ms": replies[0].ttft_ms if replies else None,
        "turns": len(replies), "wall_s": round(clock() - start, 3),
        "prompt_tokens": prompt, "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "turn_latencies_ms": [r.latency_ms for r in replies],
        "error": error,
    }
    if settings.transcripts:
        record["transcript"] = [_short(m) for m in messages]
    return record, replies


def run_set(scenarios, client, settings, clock=time.monotonic):
    """Every scenario one after another: [(record, replies)]."""
    return [run_scenario(s, client, settings, clock) for s in scenarios]


def run_concurrently(scenarios, client, settings, level, clock=time.monotonic):
    """The scenarios run by ``level`` workers at once: ([(record, replies)] in scenario order,
    wall seconds)."""
    start = clock()
    lock = threading.Lock()
    results = [None] * len(scenarios)

    def one(index):
        outcome = run_scenario(scenarios[index], client, settings, clock)
        with lock:
            results[index] = outcome

    with ThreadPoolExecutor(max_workers=level) as pool:
        list(pool.map(one, range(len(scenarios))))
    return results, clock() - start
