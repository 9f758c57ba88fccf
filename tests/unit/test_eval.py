"""The eval's domain logic (plugins/module_utils/eval/): the checker of every category on recorded
answers (tests/fixtures/eval/answers, replayed streamed and as one JSON), the simulated tools, the
matchers, the scenario files' validation, the scores, the JSON documents, the table and the gate.
"""
from __future__ import annotations

import json
import re

import pytest
import yaml

from ansible_collections.dgxspark.cluster.plugins.module_utils.eval import (
    checks, client, report, runner, scenarios)
from ansible_collections.dgxspark.cluster.plugins.module_utils.eval.errors import (
    EndpointError, EvalInputError, ScenarioError)
from conftest import ROOT
from eval_replay import GOOD_RUN as GOOD_IDS
from eval_replay import SHIPPED, ReplayTransport, load_answers, policy, recorded

CASES = load_answers()
SET = scenarios.load([str(SHIPPED)])
BY_ID = {s.id: s for s in SET.scenarios}
PUBLISHED_META = {"label", "model", "endpoint", "utc", "note", "max_tokens", "thinking",
                  "wall_timeout"}
PUBLISHED_AGGREGATE = {"scenarios", "passed", "partial", "failed", "points", "max_points",
                       "quality", "median_turn_latency_ms", "responsiveness", "deployability",
                       "total_tokens", "completion_tokens", "token_efficiency", "tok_s_decode",
                       "tok_s_effective", "stars", "rating"}
PUBLISHED_SCENARIO = {"id", "category", "verdict", "points", "reason", "ttft_ms", "turns",
                      "wall_s", "prompt_tokens", "completion_tokens", "total_tokens",
                      "turn_latencies_ms"}
# The published concurrency table: C | Score | Pass | Partial | Fail | Wall s | Agg out tok/s |
# Agg total tok/s | Quality | p50 turn ms | p95 turn ms | p50 TTFT ms
PUBLISHED_LEVEL = ["concurrency", "score", "passed", "partial", "failed", "wall_s",
                   "agg_out_tok_s", "agg_total_tok_s", "quality", "p50_turn_ms", "p95_turn_ms",
                   "p50_ttft_ms"]


def replay(scenario, replies, stream=True, settings=None, **transport_args):
    transport = ReplayTransport(replies, **transport_args)
    chat = client.ChatClient("http://127.0.0.1:9/v1", "m", transport, stream=stream)
    record, turns = runner.run_scenario(scenario, chat, settings or runner.Settings())
    return record, turns, transport


def case_id(case):
    return "%s:%s:%s" % (case["file"][:-4], case["scenario"], case["verdict"])


# --- The checker on recorded answers, every category both ways ----------------------------------

@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "json"])
@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_recorded_answer_gets_its_verdict_and_reason(case, stream):
    record, dummy, transport = replay(BY_ID[case["scenario"]], case["replies"], stream)
    assert (record["verdict"], record["points"]) == (case["verdict"],
                                                     checks.POINTS[case["verdict"]]), record
    assert re.search(case["reason"], record["reason"]), record["reason"]
    assert not transport.replies, "the conversation ended before every recorded reply was used"


def test_every_category_is_recorded_passing_partial_and_failing():
    seen = {(BY_ID[c["scenario"]].category, c["verdict"]) for c in CASES}
    missing = [(category, verdict) for category in scenarios.CATEGORIES
               for verdict in (checks.PASS, checks.PARTIAL, checks.FAIL)
               if (category, verdict) not in seen]
    assert not missing


def test_recorded_answers_name_shipped_scenarios_and_known_verdicts():
    for case in CASES:
        assert case["scenario"] in BY_ID, case
        assert case["verdict"] in checks.POINTS, case
        re.compile(case["reason"])


# --- What the model is sent ---------------------------------------------------------------------

def test_requests_carry_tools_thinking_off_and_the_simulated_results():
    case = next(c for c in CASES if c["scenario"] == "error-transient-retry"
                and c["verdict"] == "PASS")
    scenario = BY_ID["error-transient-retry"]
    record, turns, transport = replay(scenario, case["replies"])
    first, second, third = transport.requests
    assert first["tools"] == scenario.tools and first["tool_choice"] == "auto"
    assert first["chat_template_kwargs"] == {"enable_thinking": False, "thinking": False}
    assert first["stream"] is True and first["temperature"] == 0.0 and first["max_tokens"] == 1024
    assert [m["role"] for m in first["messages"]] == ["system", "user"]
    # The first call gets the error, the retry the quote (the sequence's second result).
    call = second["messages"][-2]["tool_calls"][0]
    tool = second["messages"][-1]
    assert tool["role"] == "tool" and tool["tool_call_id"] == call["id"]
    assert json.loads(tool["content"])["error"].startswith("503")
    assert json.loads(third["messages"][-1]["content"])["price"] == 141.07
    assert record["turns"] == 3 and len(record["turn_latencies_ms"]) == 3
    assert record["prompt_tokens"] == sum(t.prompt_tokens for t in turns) > 0
    assert record["total_tokens"] == record["prompt_tokens"] + record["completion_tokens"]


def test_follow_up_is_sent_after_the_answer_and_thinking_can_be_on():
    case = next(c for c in CASES if c["scenario"] == "followup-book-second"
                and c["verdict"] == "PASS")
    settings = runner.Settings(thinking=True,
                               extra_body={"chat_template_kwargs": {"custom": 1}, "top_k": 1})
    dummy, dummy, transport = replay(BY_ID["followup-book-second"], case["replies"], settings=settings)
    third = transport.requests[2]
    assert [m["role"] for m in third["messages"]][-2:] == ["assistant", "user"]
    assert third["messages"][-1]["content"] == "Book the second one in the list."
    assert third["chat_template_kwargs"] == {"custom": 1, "enable_thinking": True,
                                             "thinking": True}
    assert third["top_k"] == 1


def test_long_context_goes_before_the_prompt():
    scenario = BY_ID["long-log-xid-ticket"]
    dummy, dummy, transport = replay(scenario, [{"content": "no idea"}])
    text = transport.requests[0]["messages"][1]["content"]
    assert text.endswith(scenario.prompt) and text.count("Xid 79") == 1
    assert len(text.splitlines()) > 400


def test_settings_reject_bad_values_naming_the_option():
    with pytest.raises(EvalInputError, match=r"^max_tokens=0: must be a whole number"):
        runner.Settings(max_tokens=0)
    with pytest.raises(EvalInputError, match=r"^extra_body=.*chat_template_kwargs must be a"):
        runner.Settings(extra_body={"chat_template_kwargs": "off"})
    with pytest.raises(EvalInputError, match=r"^wall_timeout=-1"):
        runner.Settings(wall_timeout=-1)


def test_wall_timeout_and_max_turns_end_a_conversation():
    looping = [{"tool_calls": [{"name": "get_weather", "arguments": '{"city": "Lyon"}'}]}] * 10
    record, dummy, dummy = replay(BY_ID["single-weather"], looping,
                                  settings=runner.Settings(wall_timeout=0.25), delay=0.1)
    assert record["verdict"] == "FAIL" and "wall timeout" in record["reason"]
    assert record["error"] and record["turns"] < 10
    record, dummy, dummy = replay(BY_ID["single-weather"], looping[:8])
    assert record["verdict"] == "PARTIAL" and record["turns"] == 8
    assert "no final answer (stopped after 8 turns (max_turns)" in record["reason"]


def test_transcripts_are_kept_on_request_and_shortened():
    record, dummy, dummy = replay(BY_ID["long-config-recall"], [{"content": "7168, fp8_e4m3"}],
                                  settings=runner.Settings(transcripts=True))
    user = record["transcript"][1]["content"]
    assert len(user) < 2100 and user.endswith("characters)")
    assert record["transcript"][-1] == {"role": "assistant", "content": "7168, fp8_e4m3"}
    record, dummy, dummy = replay(BY_ID["long-config-recall"], [{"content": "x"}])
    assert "transcript" not in record


# --- Simulated tools ----------------------------------------------------------------------------

def test_simulated_results_cases_default_sequence_and_errors():
    weather = BY_ID["error-corrected-argument"]
    counts = {}
    assert "did you mean" in runner.simulate(weather, "get_weather", {"city": "Sankt"}, counts)
    assert json.loads(runner.simulate(weather, "get_weather", {"city": "saint petersburg"},
                                      counts))["temperature_c"] == -6
    stock = BY_ID["error-transient-retry"]
    counts = {}
    results = [json.loads(runner.simulate(stock, "get_stock_price", {"symbol": "AMD"}, counts))
               for dummy in range(3)]
    assert "error" in results[0] and results[1] == results[2] and results[2]["price"] == 141.07
    assert "no tool named 'rm_rf'" in runner.simulate(stock, "rm_rf", {}, {})
    assert "not a valid JSON object" in runner.simulate(stock, "get_stock_price", None, {})
    assert "not available right now" in runner.simulate(stock, "get_weather", {"city": "x"}, {})


# --- Matchers -----------------------------------------------------------------------------------

@pytest.mark.parametrize("expected, actual, problems, types", [
    ("Lyon", "  lyon ", 0, 0),
    ("Lyon", "Paris", 1, 0),
    (45, 45, 0, 0),
    (45, 45.0, 0, 1),
    (45, "45", 0, 1),
    (18.5, 18, 1, 0),
    (True, "true", 0, 1),
    (True, False, 1, 0),
    ("12", 12, 0, 1),
    ({"$regex": "^saint"}, "Saint Petersburg", 0, 0),
    ({"$regex": "^saint"}, "Sankt", 1, 0),
    ({"$any": ["a", "b"]}, "B", 0, 0),
    ({"$approx": 1062.36, "$tol": 1}, 1062.0, 0, 0),
    ({"$approx": 1062.36, "$tol": 1}, "1,062.5", 0, 1),
    ({"$contains": ["a@x", "b@x"]}, ["b@x", "c@x", "a@x"], 0, 0),
    ({"$contains": ["a@x", "b@x"]}, ["a@x"], 1, 0),
    ({"$type": "integer"}, 3, 0, 0),
    ({"$type": "integer"}, "3", 1, 0),
    ({"a": {"b": 1}}, {"a": {"b": 1, "c": 2}, "d": 3}, 0, 0),
    ({"a": {"b": 1}}, {"a": {}}, 1, 0),
    ({"a": {"$absent": True}}, {"a": 1}, 1, 0),
    ({"a": {"$present": True}}, {"a": None}, 0, 0),
    ([1, 2], [1, 2], 0, 0),
    ([1, 2], "[1, 2]", 0, 1),
    ([1, 2], [2, 1], 2, 0),
    ({"k": 1}, '{"k": 1}', 0, 1),
])
def test_compare(expected, actual, problems, types):
    found, found_types = checks.compare(expected, actual)
    assert (len(found), len(found_types)) == (problems, types), (found, found_types)


@pytest.mark.parametrize("expression, problem", [
    ({"city": {"$regex": "("}}, "not a regular expression"),
    ({"city": {"$regx": "a"}}, "$regx is not a matcher"),
    ({"city": {"$regex": "a", "other": 1}}, "mixes matchers"),
    ({"n": {"$approx": "x"}}, "take numbers"),
    ({"n": {"$type": "float"}}, "$type is one of"),
    ({"n": {"$tol": 1}}, "one matcher per value"),
    ({"l": [{"$any": []}]}, "takes a non-empty list"),
])
def test_matcher_problems(expression, problem):
    assert problem in checks.matcher_problem(expression)


def test_extract_json():
    assert checks.extract_json('{"a": 1}') == ({"a": 1}, True)
    assert checks.extract_json('```json\n{"a": 1}\n```') == ({"a": 1}, True)
    assert checks.extract_json('<think>{"b": 2}</think>{"a": 1}') == ({"a": 1}, True)
    assert checks.extract_json('Sure: {"a": 1}.') == ({"a": 1}, False)
    assert checks.extract_json("no json [1, 2]") == (None, False)


# --- Scenario files -----------------------------------------------------------------------------

def test_shipped_set_covers_the_issue():
    counts = SET.categories()
    assert len(SET.scenarios) >= 30 and len(counts) >= 8
    assert set(counts) == set(scenarios.CATEGORIES) and min(counts.values()) >= 3
    assert len({s.id for s in SET.scenarios}) == len(SET.scenarios)


def test_haystack_is_deterministic_with_one_needle():
    one = scenarios.haystack("shipments", 50, "NEEDLE", 0.5, 7)
    assert one == scenarios.haystack("shipments", 50, "NEEDLE", 0.5, 7)
    assert one != scenarios.haystack("shipments", 50, "NEEDLE", 0.5, 8)
    lines = one.splitlines()
    assert len(lines) == 51 and lines[25] == "NEEDLE"


GOOD = {
    "tools": {"probe": {"description": "Probe a node.", "parameters": {
        "type": "object", "properties": {"node": {"type": "string"}}, "required": ["node"]}}},
    "scenarios": [{"id": "mine-probe", "category": "single_call", "prompt": "Probe spark1.",
                   "tools": ["probe"], "results": {"probe": {"result": {"ok": True}}},
                   "expect": {"calls": [{"tool": "probe", "args": {"node": "spark1"}}]}}],
}


def _write(tmp_path, data, name="mine.yml"):
    directory = tmp_path / "scenarios"
    directory.mkdir(exist_ok=True)
    (directory / name).write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return str(directory)


def _broken(path, value):
    data = json.loads(json.dumps(GOOD))
    target = data
    keys = path.split("/")
    for key in keys[:-1]:
        target = target[int(key)] if isinstance(target, list) else target[key]
    last = keys[-1]
    if value is KeyError:
        del target[last]
    else:
        target[int(last) if isinstance(target, list) else last] = value
    return data


@pytest.mark.parametrize("path, value, where", [
    ("scenarios/0/category", "smalltalk", "field 'category': is 'smalltalk'"),
    ("scenarios/0/id", "Bad Id", "field 'id'"),
    ("scenarios/0/prompt", KeyError, "field 'prompt'"),
    ("scenarios/0/colour", "red", "field 'colour': is not a scenario field"),
    ("scenarios/0/tools", ["probe", "nope"], "'nope' is defined in no loaded file"),
    ("scenarios/0/expect/calls/0/tool", "other", "field 'expect.calls[0].tool'"),
    ("scenarios/0/expect/calls/0/args", {"host": "spark1"}, "field 'expect.calls[0].args.host'"),
    ("scenarios/0/expect/calls/0/args", {"node": {"$regex": "("}}, "not a regular expression"),
    ("scenarios/0/expect/calls", [], "single_call expects exactly 1 call(s), got 0"),
    ("scenarios/0/expect/answer", ["(unclosed"], "field 'expect.answer'"),
    ("scenarios/0/results", {"probe": {"result": 1, "sequence": [1]}}, "field 'results.probe'"),
    ("scenarios/0/results", {"ghost": {"result": 1}}, "field 'results.ghost'"),
    ("scenarios/0/max_turns", 0, "field 'max_turns'"),
    ("scenarios/0/context", {"kind": "log", "lines": 20, "needle": "spark1 ok",
                             "unique": ["spark1"]}, "'spark1' also appears in the filler"),
    ("tools/probe/parameters", {"type": "array"}, "field 'tools.probe.parameters'"),
])
def test_a_broken_scenario_names_file_scenario_and_field(tmp_path, path, value, where):
    directory = _write(tmp_path, _broken(path, value))
    with pytest.raises(ScenarioError) as error:
        scenarios.load([directory])
    message = str(error.value)
    assert message.startswith(directory + "/mine.yml")
    assert where in message and "Fix: " in message
    if path.startswith("scenarios/0/") and path != "scenarios/0/id":
        assert "scenario 'mine-probe'" in message


def test_own_directory_extends_the_shipped_set(tmp_path):
    mine = _write(tmp_path, GOOD)
    loaded = scenarios.load([str(SHIPPED), mine])
    assert loaded.scenarios[-1].id == "mine-probe"
    assert len(loaded.scenarios) == len(SET.scenarios) + 1
    assert loaded.sources == [str(SHIPPED), mine]


def test_duplicates_yaml_errors_and_selection(tmp_path):
    data = json.loads(json.dumps(GOOD))
    data["scenarios"][0]["id"] = "single-weather"
    with pytest.raises(ScenarioError, match="'single-weather'.*already defined in .*single_call"):
        scenarios.load([str(SHIPPED), _write(tmp_path, data)])
    clash = {"tools": {"get_weather": GOOD["tools"]["probe"]}}
    with pytest.raises(ScenarioError, match="tools.get_weather.*defined differently"):
        scenarios.load([str(SHIPPED), _write(tmp_path, clash, "clash.yml")])
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.yml").write_text("scenarios: [id: a\n")
    with pytest.raises(ScenarioError, match=r"x.yml: is not valid YAML .*line"):
        scenarios.load([str(broken)])
    with pytest.raises(EvalInputError, match=r"^scenario_dirs='/nonexistent': is not a directory"):
        scenarios.load(["/nonexistent"])
    with pytest.raises(EvalInputError, match=r"^select=\['smalltalk'\]: names no scenario"):
        scenarios.load([str(SHIPPED)], ["smalltalk"])
    picked = scenarios.load([str(SHIPPED)], ["refusal", "single-weather"]).scenarios
    assert [s.category for s in picked].count("refusal") == 4 and len(picked) == 5


def test_spread_takes_every_category_round_robin():
    picked = scenarios.spread(SET.scenarios, 12)
    assert len(picked) == 12 and len({s.category for s in picked}) == 10
    assert len(scenarios.spread(SET.scenarios[:3], 12)) == 3


# --- Scores ---------------------------------------------------------------------------------------

def test_turn_score_is_the_documented_curve():
    assert report.turn_score(400) == report.turn_score(1000) == 100.0
    assert report.turn_score(60000) == report.turn_score(120000) == 0.0
    assert report.turn_score(2000) == pytest.approx(83.07, abs=0.01)
    assert report.turn_score(5000) == pytest.approx(60.69, abs=0.01)
    assert report.turn_score(15000) == pytest.approx(33.86, abs=0.01)
    assert report.turn_score(30000) == pytest.approx(16.93, abs=0.01)
    assert report.turn_score(None) == 0.0


def reply(latency_ms, completion=10, decode_s=0.5, ttft_ms=100.0, error=None):
    return client.Reply(latency_ms=latency_ms, completion_tokens=completion, prompt_tokens=100,
                        decode_s=decode_s, ttft_ms=ttft_ms, error=error)


def record(sid, category, verdict, replies):
    prompt = sum(r.prompt_tokens for r in replies)
    completion = sum(r.completion_tokens for r in replies)
    return ({"id": sid, "category": category, "verdict": verdict,
             "points": checks.POINTS[verdict], "reason": verdict.lower(), "ttft_ms": 100.0,
             "turns": len(replies), "wall_s": 1.0, "prompt_tokens": prompt,
             "completion_tokens": completion, "total_tokens": prompt + completion,
             "turn_latencies_ms": [r.latency_ms for r in replies],
             "error": replies[-1].error if replies else None}, replies)


OUTCOMES = [
    record("a", "single_call", "PASS", [reply(500), reply(2000, 21, 1.0)]),
    record("b", "single_call", "PARTIAL", [reply(5000, 41, 2.0)]),
    record("c", "refusal", "FAIL", [reply(30, 0, 0.0, None, "HTTP 400: too long")]),
    record("d", "refusal", "PASS", [reply(1000, 1, 0.0)]),
]


def test_aggregate_scores_as_documented():
    a = report.aggregate(OUTCOMES)
    assert (a["scenarios"], a["passed"], a["partial"], a["failed"]) == (4, 2, 1, 1)
    assert (a["points"], a["max_points"], a["quality"]) == (5, 8, 62.5)
    # turns: 500 ms -> 100, 2 s -> 83.07, 5 s -> 60.69, the failed turn -> 0, 1 s -> 100
    assert a["responsiveness"] == pytest.approx((100 + 83.07 + 60.69 + 0 + 100) / 5, abs=0.05)
    assert a["deployability"] == pytest.approx(0.7 * 62.5 + 0.3 * a["responsiveness"], abs=0.05)
    assert a["median_turn_latency_ms"] == 1500.0  # of the answered turns 500, 2000, 5000, 1000
    assert a["completion_tokens"] == 73 and a["token_efficiency"] == pytest.approx(5 / 0.073, 0.01)
    # decode: (10-1) + (21-1) + (41-1) tokens over 0.5 + 1.0 + 2.0 s; the 1-token turn has none
    assert a["tok_s_decode"] == pytest.approx(69 / 3.5, abs=0.05)
    assert a["tok_s_effective"] == pytest.approx(73 / 8.5, abs=0.05)
    assert (a["stars"], a["rating"]) == (3, "usable")
    assert a["categories"]["refusal"] == {"scenarios": 2, "passed": 1, "partial": 0, "failed": 1,
                                          "points": 2, "max_points": 4, "quality": 50.0}


@pytest.mark.parametrize("deployability, stars, rating", [
    (97.3, 5, "excellent"), (90, 5, "excellent"), (89.9, 4, "good"), (60, 3, "usable"),
    (45, 2, "weak"), (20, 1, "poor"), (3, 0, "failing")])
def test_stars_and_rating(deployability, stars, rating):
    assert report.stars_and_rating(deployability) == (stars, rating)


def test_percentile():
    assert report.percentile([4, 1, 3, 2], 0.5) == 2.5
    assert report.percentile([10, 20, 30, 40, 50], 0.95) == pytest.approx(48.0)
    assert report.percentile([None], 0.5) is None


def test_empty_run_scores_zero_without_dividing_by_zero():
    a = report.aggregate([record("x", "refusal", "FAIL", [])])
    assert a["quality"] == 0 and a["responsiveness"] == 0 and a["tok_s_decode"] is None
    assert a["median_turn_latency_ms"] is None and a["token_efficiency"] is None


# --- The JSON documents and the table -----------------------------------------------------------

def document(verdicts, lab=False, model="m", utc="2026-12-01T10:00:00Z"):
    """A run of the scenarios named in ``verdicts``, each answered by a recorded case of that
    verdict: (its JSON document, the client, the scenarios)."""
    picked = [BY_ID[sid] for sid in verdicts]
    transport = ReplayTransport(policy=policy({
        BY_ID[sid].first_message(): recorded(sid, verdict) for sid, verdict in verdicts.items()}))
    chat = client.ChatClient("http://127.0.0.1:9", model, transport)
    settings = runner.Settings()
    outcomes = runner.run_set(picked, chat, settings)
    meta = report.meta(model, chat.url, utc, settings,
                       scenarios.ScenarioSet(picked, SET.tools, [str(SHIPPED)]),
                       label="site", lab=lab, context={"recipe": "site"}, max_model_len=4096)
    return report.document(outcomes, meta), chat, picked


GOOD_RUN = {sid: "PASS" for sid in GOOD_IDS}


def test_document_fields_map_onto_the_published_format():
    doc, dummy, dummy = document(GOOD_RUN)
    assert set(doc) == {"meta", "aggregate", "scenarios"}
    assert PUBLISHED_META <= set(doc["meta"]) and PUBLISHED_AGGREGATE <= set(doc["aggregate"])
    assert all(PUBLISHED_SCENARIO <= set(s) for s in doc["scenarios"])
    assert doc["meta"]["format"] == report.FORMAT and doc["meta"]["lab"] is False
    assert doc["meta"]["note"] == "" and doc["meta"]["thinking"] is False
    assert (doc["meta"]["max_tokens"], doc["meta"]["wall_timeout"]) == (1024, 180)
    assert doc["aggregate"]["quality"] == 100.0 and doc["aggregate"]["passed"] == 8
    assert [s["id"] for s in doc["scenarios"]] == list(GOOD_RUN)
    assert json.loads(json.dumps(doc)) == doc


def test_readme_documents_every_field_of_the_json():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## The eval stage"):]
    section = section[:section.index("\n## ", 4)]
    doc, dummy, dummy = document({"single-weather": "PASS"})
    documented = set(re.findall(r"`([a-z_0-9]+)`", section))
    fields = (set(doc["meta"]) | set(doc["aggregate"]) | set(doc["scenarios"][0])
              | {"transcript"} | set(PUBLISHED_LEVEL))
    assert not fields - documented, sorted(fields - documented)


def test_lab_run_says_so_in_meta_and_table():
    doc, dummy, dummy = document({"single-weather": "FAIL"}, lab=True)
    assert doc["meta"]["lab"] is True and "tiny random-weight model" in doc["meta"]["note"]
    lines = report.table(doc)
    assert lines[1].startswith("NOTE: lab run: the served model is the simulated lab's tiny")


def test_table_lists_every_scenario_the_scores_and_the_sweep():
    doc, chat, picked = document(GOOD_RUN)
    rows, wall = runner.run_concurrently(picked, chat, runner.Settings(), 4)
    sweep = report.concurrency_document(doc["meta"], [s.id for s in picked],
                                        [report.level_row(4, rows, wall)])
    gate = report.gate(doc, {"quality": 90})
    lines = report.table(doc, sweep, gate)
    for sid in GOOD_RUN:
        assert any(line.startswith(sid + " ") and " PASS " in line for line in lines)
    assert any(line.startswith("Quality 100.0 | Responsiveness ") for line in lines)
    assert ("| C | Score | Pass | Partial | Fail | Wall s | Agg out tok/s | Agg total tok/s | "
            "Quality | p50 turn ms | p95 turn ms | p50 TTFT ms |") in lines
    assert any(line.startswith("| 4 | ") for line in lines) and lines[-1] == "Gate: passed"


def test_concurrency_sweep_document():
    doc, chat, picked = document(GOOD_RUN)
    rows = []
    for level in (1, 3):
        outcomes, wall = runner.run_concurrently(picked, chat, runner.Settings(), level)
        assert [r["id"] for r, dummy in outcomes] == list(GOOD_RUN)
        rows.append(report.level_row(level, outcomes, wall))
    sweep = report.concurrency_document(doc["meta"], list(GOOD_RUN), rows)
    assert set(sweep) == {"meta", "levels"}
    assert sweep["meta"]["format"] == report.CONCURRENCY_FORMAT
    assert sweep["meta"]["levels"] == [1, 3] and sweep["meta"]["scenarios"] == list(GOOD_RUN)
    for row in sweep["levels"]:
        assert list(row) == PUBLISHED_LEVEL
        assert row["quality"] == 100.0 and row["passed"] == 8
        assert row["agg_out_tok_s"] > 0 and row["p95_turn_ms"] >= row["p50_turn_ms"]


# --- The regression gate ------------------------------------------------------------------------

REGRESSED_RUN = dict(GOOD_RUN, **{"multi-order-email": "FAIL", "json-extract-contact": "PARTIAL"})


def save(directory, doc, stamp):
    path = directory / ("eval-%s.json" % stamp)
    path.write_text(json.dumps(doc))
    return str(path)


def test_gate_fails_a_regressed_run_naming_the_scenarios_that_regressed(tmp_path):
    earlier = save(tmp_path, document(GOOD_RUN)[0], "20261130T120000Z")
    # Newer runs that are not comparable are passed over: another model, a lab run, a broken file.
    save(tmp_path, document(GOOD_RUN, model="other")[0], "20261201T090000Z")
    save(tmp_path, document(GOOD_RUN, lab=True)[0], "20261201T091000Z")
    (tmp_path / "eval-20261201T092000Z.json").write_text("{not json")
    (tmp_path / "eval-concurrency-20261201T093000Z.json").write_text("{}")
    path, baseline = report.find_baseline(str(tmp_path), "m", False)
    assert path == earlier
    doc, dummy, dummy = document(REGRESSED_RUN)
    gate = report.gate(doc, report.check_minimums({"quality": 95, "deployability": 50}),
                       baseline, path)
    assert gate["passed"] is False
    assert gate["below"] == [{"score": "quality", "value": doc["aggregate"]["quality"],
                              "minimum": 95.0}]
    assert [(r["id"], r["was"], r["now"]) for r in gate["regressed"]] == [
        ("multi-order-email", "PASS", "FAIL"), ("json-extract-contact", "PASS", "PARTIAL")]
    assert "quality 81.2 < 95" in gate["msg"] and earlier in gate["msg"]
    assert "multi-order-email (PASS -> FAIL: the first step is missing" in gate["msg"]
    assert "json-extract-contact (PASS -> PARTIAL:" in gate["msg"]
    assert "single-weather" not in gate["msg"]


def test_gate_passes_at_the_minimum_and_without_minimums(tmp_path):
    doc, dummy, dummy = document(REGRESSED_RUN)
    assert report.gate(doc, {"quality": doc["aggregate"]["quality"]})["passed"] is True
    gate = report.gate(doc, {})
    assert gate["passed"] is True and gate["msg"] == "" and gate["regressed"] == []


def test_gate_without_an_earlier_run_names_what_does_not_pass():
    doc, dummy, dummy = document(REGRESSED_RUN)
    gate = report.gate(doc, {"deployability": 99})
    assert gate["passed"] is False and gate["baseline"] is None
    assert "No earlier run of m to compare with; not passing now: multi-order-email (FAIL:" \
        in gate["msg"]


def test_gate_against_a_run_saved_by_an_earlier_version():
    """tests/fixtures/eval/runs holds a run as the role saved it (meta + scenarios)."""
    path, baseline = report.find_baseline(str(ROOT / "tests/fixtures/eval/runs"),
                                          "MiMo-V2.5-NVFP4", False)
    assert path.endswith("eval-20261130T120000Z.json")
    doc, dummy, dummy = document(REGRESSED_RUN, model="MiMo-V2.5-NVFP4")
    regressed = report.regressions(doc, baseline)
    assert [r["id"] for r in regressed] == ["multi-order-email", "json-extract-contact"]
    assert report.find_baseline(path, "ignored", True)[0] == path  # a file is taken as it is


@pytest.mark.parametrize("minimums, message", [
    ({"qualty": 80}, "'qualty' is not a score"),
    ({"quality": 120}, "quality=120 is not a number from 0 to 100"),
    ({"quality": "high"}, "quality='high' is not a number"),
    ({"quality": True}, "quality=True is not a number"),
    ([80], "must be a mapping"),
])
def test_bad_minimums_name_the_option_value_and_fix(minimums, message):
    with pytest.raises(EvalInputError) as error:
        report.check_minimums(minimums)
    assert str(error.value).startswith("min_scores=") and message in str(error.value)
    assert "Fix: " in str(error.value)


def test_bad_baseline_file_is_an_input_error(tmp_path):
    bad = tmp_path / "eval-20261130T120000Z.json"
    bad.write_text("[]")
    with pytest.raises(EvalInputError, match=r"^baseline=.*is not an eval JSON document"):
        report.find_baseline(str(bad), "m", False)
    assert report.find_baseline(str(tmp_path / "missing"), "m", False) == (None, None)
    assert report.find_baseline("", "m", False) == (None, None)


# --- The client ---------------------------------------------------------------------------------

def test_client_url_key_and_model_list():
    transport = ReplayTransport([{"content": "hi"}], model="served")
    chat = client.ChatClient("http://h:8000/v1/", "served", transport, api_key="k3y")
    assert chat.url == "http://h:8000"
    assert chat.models() == [{"id": "served", "max_model_len": 4096}]
    assert chat.complete([{"role": "user", "content": "x"}], [], 8, 0.0).content == "hi"
    assert all(h["Authorization"] == "Bearer k3y" for h in transport.headers)
    assert "tools" not in transport.requests[0]


def test_client_models_errors_say_what_to_fix():
    def unauthorized(url, data, headers, timeout):
        import io
        import urllib.error
        raise urllib.error.HTTPError(url, 401, "Unauthorized", {}, io.BytesIO(b'{"error": "x"}'))

    with pytest.raises(EndpointError, match=r"/v1/models: HTTP 401.*wrong or missing api_key"):
        client.ChatClient("http://h", "m", unauthorized).models()

    def refused(url, data, headers, timeout):
        raise ConnectionRefusedError(111, "Connection refused")

    with pytest.raises(EndpointError, match=r"no answer \(ConnectionRefusedError"):
        client.ChatClient("http://h", "m", refused).models()


def test_client_times_a_streamed_answer():
    transport = ReplayTransport([{"content": "x" * 200}], delay=0.05)
    reply = client.ChatClient("http://h", "m", transport).complete(
        [{"role": "user", "content": "x"}], [], 64, 0.0)
    assert reply.error is None and reply.latency_ms >= 50 and reply.ttft_ms >= 50
    assert reply.completion_tokens == 50 and reply.content == "x" * 200
