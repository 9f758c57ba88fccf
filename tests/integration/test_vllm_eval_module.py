"""dgxspark.cluster.vllm_eval as Ansible runs it (ad hoc from the repo root, Ansible's open_url),
against a fake OpenAI server on 127.0.0.1 (tests/eval_replay.py): recorded good answers, an
engine like the lab's tiny random model (context-length 400s, noise, malformed tool calls, empty
answers, a 500, a reply slower than the wall timeout), check mode, bad input, the API key.
"""
from __future__ import annotations

import itertools
import json

import pytest

from ansible_collections.dgxspark.cluster.plugins.module_utils.eval import scenarios
from eval_replay import GOOD_RUN, SHIPPED, FakeOpenAI, policy, recorded, user_text
from test_vllm_plan_module import adhoc_module

SET = {s.id: s for s in scenarios.load([str(SHIPPED)]).scenarios}
GOOD = policy({SET[sid].first_message(): recorded(sid, "PASS") for sid in GOOD_RUN})


def lab_engine():
    """What the lab's engine does with tool-calling prompts: each conversation gets one kind
    of garbage, in turn."""
    kinds = itertools.cycle([
        {"http": {"status": 400, "body": {"object": "error", "code": 400, "message":
                  "This model's maximum context length is 256 tokens. However, you requested "
                                          "1310 tokens (286 in the messages, 1024 in the completion)."}}},
        {"content": "weather the the ,, Lyon Lyon spark"},
        {"tool_calls": [{"name": "get_weather", "arguments": '{"city": Lyon'}]},
        {"content": ""},
        {"tool_calls": [{"name": "xq_tool", "arguments": "{}"}]},
        {"http": {"status": 500, "body": {"error": {"message": "EngineCore encountered an issue"}}}},
    ])
    chosen = {}

    def answer(request):
        key = json.dumps(request["messages"][:2])
        if key not in chosen:
            chosen[key] = next(kinds)
        reply = chosen[key]
        # garbage after a garbage tool call: noise that ends the conversation
        return reply if not any(m["role"] == "tool" for m in request["messages"]) \
            else {"content": "the the"}
    return answer


def run(url, *extra, **args):
    args = dict({"api_url": url, "scenario_dirs": [str(SHIPPED)]}, **args)
    return adhoc_module("dgxspark.cluster.vllm_eval", args, *extra)


@pytest.fixture
def good():
    fake = FakeOpenAI(GOOD)
    yield fake
    fake.close()


def test_good_answers_pass_with_the_published_fields(good):
    rc, result = run(good.url, select=GOOD_RUN, min_scores={"quality": 90, "deployability": 80},
                     label="site", context={"recipe": "site"})
    assert rc == 0 and result["changed"] is False and not result.get("skipped"), result
    doc = result["eval"]
    assert [s["id"] for s in doc["scenarios"]] == [sid for sid in SET if sid in GOOD_RUN]
    assert all(s["verdict"] == "PASS" and s["error"] is None for s in doc["scenarios"]), doc
    meta = doc["meta"]
    assert meta["model"] == "m" and meta["max_model_len"] == 256  # discovered from /v1/models
    assert meta["endpoint"] == good.url and meta["label"] == "site"
    assert meta["lab"] is False and meta["note"] == "" and meta["thinking"] is False
    assert meta["context"] == {"recipe": "site"}
    assert doc["aggregate"]["quality"] == 100.0 and doc["aggregate"]["points"] == 16
    assert doc["aggregate"]["tok_s_decode"] and doc["aggregate"]["median_turn_latency_ms"]
    assert result["gate"]["passed"] is True and result["concurrency"] is None
    assert result["table"][-1] == "Gate: passed"
    # What the server was asked: tools, thinking off, the simulated tool results.
    weather = [r for r in good.requests if user_text(r) == SET["single-weather"].prompt]
    first = weather[0]
    assert first["model"] == "m" and first["stream"] is True and first["tool_choice"] == "auto"
    assert first["chat_template_kwargs"] == {"enable_thinking": False, "thinking": False}
    assert {t["function"]["name"] for t in first["tools"]} == {"get_weather", "get_time"}
    assert json.loads(weather[1]["messages"][-1]["content"])["temperature_c"] == 14


def test_thinking_on_and_a_concurrency_sweep(good):
    rc, result = run(good.url, select=GOOD_RUN[:4], thinking=True,
                     extra_body={"chat_template_kwargs": {"enable_thinking": False, "x": 1}},
                     concurrency=[1, 2], concurrency_scenarios=3, stream=False)
    assert rc == 0, result
    assert all(r["chat_template_kwargs"] == {"enable_thinking": True, "thinking": True, "x": 1}
               and r["stream"] is False and "stream_options" not in r for r in good.requests)
    sweep = result["concurrency"]
    assert [row["concurrency"] for row in sweep["levels"]] == [1, 2]
    assert len(sweep["meta"]["scenarios"]) == 3 and sweep["meta"]["thinking"] is True
    assert all(row["quality"] == 100.0 for row in sweep["levels"])
    assert any(line.startswith("| 2 | ") for line in result["table"])


def test_an_engine_like_the_labs_fails_every_scenario_with_a_reason():
    fake = FakeOpenAI(lab_engine(), model="tiny")
    try:
        rc, result = run(fake.url, lab=True, max_tokens=64)
    finally:
        fake.close()
    assert rc == 0, result
    doc = result["eval"]
    assert doc["meta"]["lab"] is True and doc["meta"]["model"] == "tiny"
    assert "tiny random-weight model" in doc["meta"]["note"]
    assert result["table"][1].startswith("NOTE: lab run")
    assert len(doc["scenarios"]) == 40
    verdicts = {s["verdict"] for s in doc["scenarios"]}
    assert verdicts == {"FAIL"}, [(s["id"], s["verdict"], s["reason"]) for s in doc["scenarios"]
                                  if s["verdict"] != "FAIL"]
    reasons = " | ".join(s["reason"] for s in doc["scenarios"])
    for expected in ("HTTP 400: This model's maximum context length is 256 tokens",
                     "HTTP 500: EngineCore encountered an issue", "no tool call",
                     "arguments are not a JSON object"):
        assert expected in reasons
    assert all(s["reason"] for s in doc["scenarios"])
    assert doc["aggregate"]["quality"] == 0.0 and doc["aggregate"]["rating"] in ("failing", "poor")
    assert "Traceback" not in json.dumps(result)


def test_a_reply_slower_than_the_wall_timeout_is_a_fail():
    fake = FakeOpenAI(lambda request: {"timeout": 4})
    try:
        rc, result = run(fake.url, select=["single-weather"], wall_timeout=1)
    finally:
        fake.close()
    assert rc == 0, result
    (scenario,) = result["eval"]["scenarios"]
    assert scenario["verdict"] == "FAIL" and "timed out after" in scenario["reason"]
    assert result["eval"]["aggregate"]["responsiveness"] == 0.0


def test_check_mode_validates_and_sends_nothing(good):
    rc, result = run(good.url, "--check", select=["refusal"])
    assert rc == 0 and result["skipped"] is True, result
    assert len(result["scenarios"]) == 4 and "eval" not in result
    assert good.requests == [] and good.gets == []


def test_a_broken_scenario_file_fails_naming_file_scenario_and_field(tmp_path, good):
    (tmp_path / "mine.yml").write_text(
        "scenarios:\n  - id: mine-1\n    category: single_call\n    prompt: hi\n"
        "    tools: [get_weather]\n    expect:\n      calls: [{tool: get_weathr}]\n")
    for extra in ((), ("--check",)):
        rc, result = run(good.url, *extra, scenario_dirs=[str(SHIPPED), str(tmp_path)])
        assert rc != 0
        assert result["msg"].startswith(str(tmp_path / "mine.yml") + ": scenario 'mine-1': "
                                        "field 'expect.calls[0].tool'"), result["msg"]
    assert good.requests == []


def test_bad_options_name_the_option_and_the_fix(good):
    rc, result = run(good.url, min_scores={"qualty": 80})
    assert rc != 0 and result["msg"].startswith("min_scores=") and "Fix:" in result["msg"]
    rc, result = run(good.url, select=["smalltalk"])
    assert rc != 0 and result["msg"].startswith("select=['smalltalk']")
    rc, result = run(good.url, concurrency=[0])
    assert rc != 0 and result["msg"].startswith("concurrency=[0]")
    rc, result = run(good.url, model="other")
    assert rc != 0 and "model='other' is not served" in result["msg"] and "serves: m" in result["msg"]
    assert good.requests == []


def test_api_key_is_required_and_never_returned():
    fake = FakeOpenAI(GOOD, api_key="s3cret-key")
    try:
        rc, result = run(fake.url, select=["single-weather"])
        assert rc != 0 and "HTTP 401" in result["msg"] and "api_key" in result["msg"]
        rc, result = run(fake.url, select=["single-weather"], api_key="s3cret-key")
        assert rc == 0 and result["eval"]["scenarios"][0]["verdict"] == "PASS"
        assert "s3cret-key" not in json.dumps(result)
    finally:
        fake.close()


def test_dead_endpoint_fails_naming_the_url():
    rc, result = run("http://127.0.0.1:9", select=["single-weather"])
    assert rc != 0 and "http://127.0.0.1:9/v1/models" in result["msg"]
    assert "no usable OpenAI API" in result["msg"]
