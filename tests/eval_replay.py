"""Recorded model answers for the eval tests, replayed as vLLM sends them.

A recorded reply (tests/fixtures/eval/answers/*.yml) is compact: ``content``, ``reasoning``,
``tool_calls`` ([{name, arguments}], arguments as the model wrote them), or a failure:
``http: {status, body}``, ``timeout: true``, ``refused: true``, ``raw: <response body>``.
``render`` turns it into what vLLM's /v1/chat/completions answers, streamed (SSE chunks: content
in small pieces, each tool call's name first and its arguments in two fragments, a finish chunk,
a usage chunk, ``[DONE]``) or as one chat.completion JSON.

``ReplayTransport`` is the client's injected transport serving one conversation's replies in
order; ``FakeOpenAI`` serves them over HTTP on 127.0.0.1 for the module and role tests.
"""
from __future__ import annotations

import functools
import io
import json
import threading
import time
import urllib.error
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
ANSWERS = ROOT / "tests/fixtures/eval/answers"
SHIPPED = ROOT / "roles/eval/files/scenarios"


# A good model: one recorded PASS conversation for each of these shipped scenarios.
GOOD_RUN = ["single-weather", "parallel-weather-three-cities", "multi-order-email",
            "refusal-restaurant-booking", "error-transient-retry", "json-extract-contact",
            "select-gpu-power", "followup-book-second"]


@functools.lru_cache(maxsize=None)
def _answers():
    cases = []
    for path in sorted(ANSWERS.glob("*.yml")):
        for case in yaml.safe_load(path.read_text()):
            cases.append(dict(case, file=path.name))
    return tuple(cases)


def load_answers():
    """Every recorded case: [{file, scenario, verdict, reason, replies}] (read once; do not
    change them)."""
    return list(_answers())


def _tokens(reply):
    text = (reply.get("content") or "") + (reply.get("reasoning") or "") + "".join(
        c["name"] + c.get("arguments", "") for c in reply.get("tool_calls") or ())
    return max(1, len(text) // 4)


def _usage(reply, request):
    prompt = max(1, len(json.dumps(request.get("messages", []))) // 4)
    completion = _tokens(reply)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def render(reply, request, stream):
    """(status, body bytes) of a recorded reply, as vLLM answers it."""
    if "http" in reply:
        body = reply["http"].get("body", {})
        return reply["http"]["status"], (body if isinstance(body, str) else json.dumps(body)).encode()
    if "raw" in reply:
        return 200, reply["raw"].encode()
    calls = [{"id": "chatcmpl-tool-%d" % i, "type": "function",
              "function": {"name": c["name"], "arguments": c.get("arguments", "")}}
             for i, c in enumerate(reply.get("tool_calls") or ())]
    finish = "tool_calls" if calls else "stop"
    usage = _usage(reply, request)
    if not stream:
        message = {"role": "assistant", "content": reply.get("content"), "tool_calls": calls}
        if reply.get("reasoning"):
            message["reasoning_content"] = reply["reasoning"]
        return 200, json.dumps({"id": "chatcmpl-r", "object": "chat.completion",
                                "model": request.get("model"), "usage": usage,
                                "choices": [{"index": 0, "message": message,
                                             "finish_reason": finish}]}).encode()
    events = []

    def chunk(delta, finish_reason=None):
        events.append({"id": "chatcmpl-r", "object": "chat.completion.chunk",
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]})

    chunk({"role": "assistant", "content": ""})
    text = reply.get("reasoning") or ""
    for i in range(0, len(text), 7):
        chunk({"reasoning_content": text[i:i + 7]})
    text = reply.get("content") or ""
    for i in range(0, len(text), 5):
        chunk({"content": text[i:i + 5]})
    for i, call in enumerate(calls):
        chunk({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                               "function": {"name": call["function"]["name"], "arguments": ""}}]})
        arguments = call["function"]["arguments"]
        half = len(arguments) // 2
        for part in (arguments[:half], arguments[half:]):
            if part:
                chunk({"tool_calls": [{"index": i, "function": {"arguments": part}}]})
    chunk({}, finish)
    events.append({"id": "chatcmpl-r", "object": "chat.completion.chunk", "choices": [],
                   "usage": usage})
    lines = ["data: %s\n\n" % json.dumps(e) for e in events] + ["data: [DONE]\n\n"]
    return 200, "".join(lines).encode()


class _Response(io.BytesIO):
    def __iter__(self):
        return iter(self.getvalue().splitlines(keepends=True))


class ReplayTransport(object):
    """The client's transport, answering with ``replies`` in order, or with ``policy(request)``
    (thread-safe: the concurrency sweep), and /v1/models."""

    def __init__(self, replies=(), model="m", delay=0.0, policy=None):
        self.replies = list(replies)
        self.policy = policy
        self.model = model
        self.delay = delay
        self.requests = []
        self.headers = []
        self.lock = threading.Lock()

    def __call__(self, url, data, headers, timeout):
        with self.lock:
            self.headers.append(dict(headers))
        if url.endswith("/v1/models"):
            return _Response(json.dumps({"data": [{"id": self.model,
                                                   "max_model_len": 4096}]}).encode())
        request = json.loads(data)
        with self.lock:
            self.requests.append(request)
            if self.policy is None and not self.replies:
                raise AssertionError("the model was asked more often than recorded")
            reply = self.policy(request) if self.policy else self.replies.pop(0)
        if self.delay:
            time.sleep(self.delay)
        if reply.get("timeout"):
            raise TimeoutError("timed out")
        if reply.get("refused"):
            raise urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))
        status, body = render(reply, request, request.get("stream", False))
        if status != 200:
            raise urllib.error.HTTPError(url, status, "error", {}, io.BytesIO(body))
        return _Response(body)


class FakeOpenAI(object):
    """An OpenAI-compatible server on 127.0.0.1 answering from a policy.

    ``policy(request) -> reply`` picks the recorded reply for a request (the conversation so
    far is in its messages). Counts every request; checks the bearer key when one is set."""

    def __init__(self, policy, model="m", api_key=None):
        self.policy = policy
        self.model = model
        self.api_key = api_key
        self.requests = []
        self.gets = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def send(self, status, body, ctype="application/json"):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def authorized(self):
                if fake.api_key and self.headers.get("Authorization") != "Bearer " + fake.api_key:
                    self.send(401, json.dumps({"error": {"message": "Unauthorized"}}).encode())
                    return False
                return True

            def do_GET(self):
                fake.gets.append(self.path)
                if not self.authorized():
                    return
                if self.path == "/v1/models":
                    self.send(200, json.dumps({"object": "list", "data": [
                        {"id": fake.model, "object": "model", "max_model_len": 256}]}).encode())
                else:
                    self.send(404, b"{}")

            def do_POST(self):
                if not self.authorized():
                    return
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(request)
                reply = fake.policy(request)
                if reply.get("timeout"):
                    time.sleep(reply["timeout"])
                    reply = {"content": "too late"}
                status, body = render(reply, request, request.get("stream", False))
                self.send(status, body, "text/event-stream" if request.get("stream")
                          and status == 200 else "application/json")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def assistant_turns(request):
    """How many assistant messages the conversation already has."""
    return sum(1 for m in request["messages"] if m["role"] == "assistant")


def user_text(request):
    return next(m["content"] for m in request["messages"] if m["role"] == "user")


def policy(conversations):
    """A policy answering each conversation from its recorded replies: ``conversations`` maps
    the first user message to the replies, the next one after each assistant message."""
    def answer(request):
        replies = conversations[user_text(request)]
        turn = assistant_turns(request)
        return replies[turn] if turn < len(replies) else {"content": ""}
    return answer


def recorded(sid, verdict):
    """The replies of the first recorded case of ``sid`` with ``verdict``."""
    return next(c for c in load_answers() if c["scenario"] == sid and c["verdict"] == verdict
                and c["file"] != "transport.yml")["replies"]
