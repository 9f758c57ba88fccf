"""dgxspark.cluster.vllm_benchmark as Ansible runs it, against the lab's stand-in OpenAI
server (roles/lab/files/standin/vllm_standin.py) serving on 127.0.0.1 in this process."""
from __future__ import annotations

import importlib.util
import json
import threading
from http.server import ThreadingHTTPServer

import pytest

from conftest import ROOT
from test_vllm_plan_module import adhoc_module

spec = importlib.util.spec_from_file_location(
    "vllm_standin", ROOT / "roles/lab/files/standin/vllm_standin.py")
standin = importlib.util.module_from_spec(spec)
spec.loader.exec_module(standin)

# Decode steps per second of the stand-in. The client times the chunks it reads, so a step must
# be long against a busy machine's scheduling delays (make test runs labs beside this test): at
# 20 steps/s a request's 8 or more steps span 350 ms or more.
TOKENS_PER_S = 20.0


def serve(spec_tokens, api_key=None):
    state = {"ready": True, "name": "m", "model": "/models/m", "max_model_len": 4096,
             "api_key": api_key, "engine": standin.Engine(spec_tokens, TOKENS_PER_S)}
    server = ThreadingHTTPServer(("127.0.0.1", 0), standin.make_handler(state))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, "http://127.0.0.1:%d" % server.server_address[1]


@pytest.fixture
def mtp2():
    server, url = serve(2)
    yield url
    server.shutdown()


def bench(url, **args):
    args = dict({"api_url": url, "model": "m", "max_tokens": 24, "requests": 2}, **args)
    return adhoc_module("dgxspark.cluster.vllm_benchmark", args)


def test_mtp2_measures_ttft_decode_and_acceptance_per_position(mtp2):
    rc, result = bench(mtp2, concurrency=[1, 2], bytes_per_token_per_node=5.46e9)
    assert rc == 0 and result["changed"] is False, result
    r = result["benchmark"]
    assert r["ttft_s"] > 0 and r["completion_tokens"] == 48
    # The stand-in sleeps 1/TOKENS_PER_S per decode step and MTP2 gives up to 3 tokens a step.
    assert TOKENS_PER_S * 0.5 < r["decode_tok_s"] < TOKENS_PER_S * 3.5
    spec_decode = r["spec_decode"]
    assert len(spec_decode["per_position"]) == 2
    assert spec_decode["per_position"][0] >= spec_decode["per_position"][1]
    assert spec_decode["draft_tokens"] == 2 * spec_decode["drafts"]
    assert r["ceiling_tok_s"] == pytest.approx(50.0)
    assert r["ceiling_fraction"] == pytest.approx(r["decode_tok_s"] / 50.0, rel=1e-3)
    assert [row["concurrency"] for row in r["sweep"]] == [1, 2]


def test_without_mtp_there_is_no_acceptance():
    server, url = serve(0)
    try:
        rc, result = bench(url)
    finally:
        server.shutdown()
    assert rc == 0 and result["benchmark"]["spec_decode"] is None


def test_api_key_is_required_and_never_returned():
    server, url = serve(1, api_key="s3cret-key")
    try:
        rc, result = bench(url)
        assert rc != 0 and "401" in result["msg"] and "api_key" in result["msg"]
        rc, result = bench(url, api_key="s3cret-key")
        assert rc == 0
        assert "s3cret-key" not in json.dumps(result)
    finally:
        server.shutdown()


def test_dead_endpoint_fails_naming_the_url():
    rc, result = bench("http://127.0.0.1:9", timeout=5)
    assert rc != 0 and "http://127.0.0.1:9" in result["msg"]


def test_check_mode_sends_nothing(mtp2):
    rc, result = adhoc_module("dgxspark.cluster.vllm_benchmark",
                              {"api_url": "http://127.0.0.1:9", "model": "m"}, "--check")
    assert rc == 0 and result["skipped"] is True
