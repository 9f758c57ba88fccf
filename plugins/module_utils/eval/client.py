# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""One chat completion against an OpenAI-compatible endpoint, through an injected transport.

The transport is ``transport(url, data, headers, timeout) -> response``: ``data`` is the JSON
body as bytes (None for a GET); the response iterates over its lines (bytes) and has ``read()``;
an HTTP error status raises an exception with an integer ``code`` (and ``read()`` for its body),
as ``urllib`` and Ansible's ``open_url`` do. Tests pass a transport that replays recorded answers.

``ChatClient.complete`` never raises for what the server does: an HTTP error, a timeout, a
broken stream or an answer without choices comes back as ``Reply.error``, which the runner
turns into a FAIL with that reason.
"""
from __future__ import annotations

import json
import time

from .checks import snip
from .errors import EndpointError


class Reply(object):
    """One assistant message and how it came: timings in ms, tokens from the server's usage."""

    __slots__ = ("content", "reasoning", "tool_calls", "finish_reason", "prompt_tokens",
                 "completion_tokens", "ttft_ms", "latency_ms", "decode_s", "error")

    def __init__(self, **fields):
        for name in self.__slots__:
            setattr(self, name, fields.get(name))
        self.content = self.content or ""
        self.reasoning = self.reasoning or ""
        self.tool_calls = self.tool_calls or []
        self.prompt_tokens = int(self.prompt_tokens or 0)
        self.completion_tokens = int(self.completion_tokens or 0)


def base_url(api_url):
    """The endpoint without a trailing slash or ``/v1``."""
    url = api_url.strip().rstrip("/")
    return url[:-3] if url.endswith("/v1") else url


def describe_error(exc, timeout):
    """What went wrong with a request, in one line (the server's own message for HTTP errors)."""
    code = getattr(exc, "code", None)
    if isinstance(code, int) and not isinstance(code, bool):
        detail = ""
        try:
            body = exc.read()
            text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
            try:
                data = json.loads(text)
                err = data.get("error", data) if isinstance(data, dict) else data
                detail = err.get("message") or err.get("detail") or text \
                    if isinstance(err, dict) else str(err)
            except ValueError:
                detail = text
        except Exception:  # the body is a courtesy: never let it hide the status
            detail = str(getattr(exc, "reason", "") or "")
        return "HTTP %d%s" % (code, ": " + snip(detail, 200) if str(detail).strip() else "")
    reason = getattr(exc, "reason", None)
    text = str(reason if reason is not None else exc)
    if isinstance(exc, TimeoutError) or isinstance(reason, TimeoutError) \
            or "timed out" in text.lower():
        return "timed out after %g s" % timeout
    return "no answer (%s: %s)" % (type(reason if reason is not None else exc).__name__,
                                   snip(text, 160))


class ChatClient(object):
    def __init__(self, api_url, model, transport, api_key=None, stream=True,
                 clock=time.monotonic):
        self.url = base_url(api_url)
        self.model = model
        self.transport = transport
        self.api_key = api_key or None
        self.stream = stream
        self.clock = clock

    def _headers(self):
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = "Bearer " + self.api_key
        return headers

    def models(self, timeout=30):
        """The served models ([{id, max_model_len}]); ``EndpointError`` when the API cannot be
        used at all."""
        url = self.url + "/v1/models"
        try:
            response = self.transport(url, None, self._headers(), timeout)
            data = json.loads(response.read().decode("utf-8", "replace"))
            entries = data["data"]
        except Exception as exc:
            problem = describe_error(exc, timeout)
            if getattr(exc, "code", None) in (401, 403):
                problem += ": wrong or missing api_key"
            elif isinstance(exc, (KeyError, TypeError, ValueError)):
                problem = "not an OpenAI model list (%s)" % snip(str(exc), 80)
            raise EndpointError("%s: %s" % (url, problem))
        return [{"id": e.get("id"), "max_model_len": e.get("max_model_len")}
                for e in entries if isinstance(e, dict)]

    def complete(self, messages, tools, max_tokens, temperature, extra=None, timeout=60,
                 deadline=None):
        """One assistant message for ``messages`` (a ``Reply``; ``error`` set on failure)."""
        body = {"model": self.model, "messages": messages, "max_tokens": max_tokens,
                "temperature": temperature, "stream": self.stream}
        if self.stream:
            body["stream_options"] = {"include_usage": True}
        if tools:
            body["tools"] = tools
            body["tool_choice"] = "auto"
        body.update(extra or {})
        start = self.clock()
        try:
            response = self.transport(self.url + "/v1/chat/completions",
                                      json.dumps(body).encode("utf-8"), self._headers(), timeout)
            try:
                reply = self._read(response, start, deadline)
            finally:
                close = getattr(response, "close", None)
                if close:
                    close()
        except Exception as exc:
            return Reply(error=describe_error(exc, timeout),
                         latency_ms=round((self.clock() - start) * 1000, 1))
        reply.latency_ms = round((self.clock() - start) * 1000, 1)
        if reply.ttft_ms is None and not reply.error:
            reply.ttft_ms = reply.latency_ms
        return reply

    def _read(self, response, start, deadline):
        state = {"content": [], "reasoning": [], "calls": {}, "finish": None, "usage": {},
                 "first": None, "last": None, "events": 0}
        other = []
        for raw in response:
            if deadline is not None and self.clock() > deadline:
                return Reply(error="wall timeout: the answer was still streaming")
            line = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            line = line.strip()
            if not line or line.startswith(":"):
                continue
            if not line.startswith("data:"):
                other.append(line)
                continue
            payload = line[5:].strip()
            if payload == "[DONE]":
                break
            error = self._event(payload, state)
            if error:
                return Reply(error=error)
        if not state["events"]:
            return self._whole("\n".join(other), start)
        calls = [state["calls"][i] for i in sorted(state["calls"])]
        first, last = state["first"], state["last"]
        usage = state["usage"]
        return Reply(content="".join(state["content"]), reasoning="".join(state["reasoning"]),
                     tool_calls=calls, finish_reason=state["finish"],
                     prompt_tokens=usage.get("prompt_tokens"),
                     completion_tokens=usage.get("completion_tokens"),
                     ttft_ms=round((first - start) * 1000, 1) if first is not None else None,
                     decode_s=(last - first) if first is not None and last > first else 0.0)

    def _event(self, payload, state):
        try:
            event = json.loads(payload)
        except ValueError:
            return "malformed stream event: %s" % snip(payload, 80)
        if not isinstance(event, dict):
            return "malformed stream event: %s" % snip(payload, 80)
        if event.get("error"):
            err = event["error"]
            return "error in the stream: %s" % snip(err.get("message", err)
                                                    if isinstance(err, dict) else err, 200)
        state["events"] += 1
        state["usage"] = event.get("usage") or state["usage"]
        for choice in event.get("choices") or ():
            if not isinstance(choice, dict):
                return "malformed stream event: %s" % snip(payload, 80)
            delta = choice.get("delta") or {}
            got = False
            if delta.get("content"):
                state["content"].append(str(delta["content"]))
                got = True
            thought = delta.get("reasoning_content") or delta.get("reasoning")
            if thought:
                state["reasoning"].append(str(thought))
                got = True
            for i, fragment in enumerate(delta.get("tool_calls") or ()):
                if not isinstance(fragment, dict):
                    return "malformed tool call in the stream: %s" % snip(payload, 80)
                index = fragment.get("index", i)
                entry = state["calls"].setdefault(index, {"id": None, "name": "",
                                                          "arguments": ""})
                if fragment.get("id"):
                    entry["id"] = fragment["id"]
                function = fragment.get("function") or {}
                name = function.get("name")
                if name and name != entry["name"]:
                    entry["name"] += name
                arguments = function.get("arguments")
                if arguments:
                    entry["arguments"] += arguments if isinstance(arguments, str) \
                        else json.dumps(arguments)
                got = True
            if choice.get("finish_reason"):
                state["finish"] = choice["finish_reason"]
            if got:
                now = self.clock()
                state["first"] = state["first"] if state["first"] is not None else now
                state["last"] = now
        return None

    def _whole(self, text, start):
        """A non-streamed answer (or a server that ignored ``stream``)."""
        try:
            data = json.loads(text)
            choice = data["choices"][0]
            message = choice["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            return Reply(error="not a chat completion: %s" % (snip(text, 120) or "(empty body)"))
        calls = []
        for i, call in enumerate(message.get("tool_calls") or ()):
            function = (call or {}).get("function") or {}
            arguments = function.get("arguments", "")
            calls.append({"id": call.get("id"), "name": function.get("name") or "",
                          "arguments": arguments if isinstance(arguments, str)
                          else json.dumps(arguments)})
        usage = data.get("usage") or {}
        return Reply(content=message.get("content") or "",
                     reasoning=message.get("reasoning_content") or message.get("reasoning") or "",
                     tool_calls=calls, finish_reason=choice.get("finish_reason"),
                     prompt_tokens=usage.get("prompt_tokens"),
                     completion_tokens=usage.get("completion_tokens"), ttft_ms=None,
                     decode_s=0.0)
