# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Deterministic checking of a conversation: PASS, PARTIAL or FAIL, with the reason.

``check(scenario, transcript)`` dispatches on the scenario's category; every checker is a plain
function of the expected calls, answer patterns and JSON fields the scenario declares and of
what the model did (``Transcript``). Argument and JSON values are compared with matchers:

* a literal: strings equal ignoring case and surrounding / repeated white space, numbers equal
  numerically, lists element by element, mappings key by key (extra keys are allowed);
* ``{$regex: p}`` (searched, case-insensitive), ``{$any: [a, b]}``, ``{$approx: x, $tol: t}``,
  ``{$contains: [a, b]}`` (a list holding these), ``{$type: integer}`` (a JSON type),
  ``{$present: true}`` / ``{$absent: true}`` (the key is there / is not).

A value that is right but of the wrong JSON type (``"3"`` for ``3``) is a *type problem*:
only ``argument_types`` (and the JSON of ``structured_output``) count it against the model.
"""
from __future__ import annotations

import json
import re

PASS, PARTIAL, FAIL = "PASS", "PARTIAL", "FAIL"
POINTS = {PASS: 2, PARTIAL: 1, FAIL: 0}

JSON_TYPES = ("string", "integer", "number", "boolean", "array", "object", "null")
_MATCHERS = {"$regex", "$any", "$approx", "$tol", "$contains", "$present", "$absent", "$type"}
_THINK = re.compile(r"<think>.*?(</think>|$)", re.S | re.I)
MAX_REPEATS = 3  # identical calls beyond this are a loop
# An answer that admits a tool failed (error_handling: reporting instead of recovering).
ADMITS_FAILURE = (r"error|fail|timed? ?out|unavailable|not available|could ?n[o']t|unable|"
                  r"try again|retry|problem|denied|not found")


class Call(object):
    """A tool call the model made. ``args`` is None when its arguments are not a JSON object."""

    __slots__ = ("name", "args", "raw", "message", "turn")

    def __init__(self, name, raw, message, turn):
        self.name = name
        self.raw = raw
        self.message = message
        self.turn = turn
        self.args = parse_arguments(raw)

    def describe(self):
        return "%s(%s)" % (self.name, snip(self.raw if self.args is None
                                           else json.dumps(self.args, sort_keys=True), 60))


class Transcript(object):
    """What the model said: its messages in order, each {content, calls, turn}."""

    def __init__(self, messages, stopped=None):
        self.messages = messages
        self.stopped = stopped  # why the conversation ended before a final answer, if it did
        self.calls = [c for m in messages for c in m["calls"]]

    @property
    def final(self):
        """The last answer without tool calls ("" when there is none)."""
        for message in reversed(self.messages):
            if not message["calls"]:
                return clean(message["content"])
        return ""


def parse_arguments(raw):
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw or "{}")
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def clean(text):
    """The answer without reasoning blocks a template left in the content."""
    return _THINK.sub("", text or "").strip()


def snip(text, size=80):
    text = " ".join(str(text).split())
    return text if len(text) <= size else text[:size - 3] + "..."


def _show(value):
    return snip(json.dumps(value, sort_keys=True, ensure_ascii=False), 40)


def is_matcher(value):
    return isinstance(value, dict) and bool(value) and all(str(k).startswith("$") for k in value)


def matcher_problem(expected, path=""):
    """What is wrong with a matcher expression (None when it is well formed)."""
    where = path or "value"
    if isinstance(expected, dict):
        dollars = [k for k in expected if str(k).startswith("$")]
        if dollars and len(dollars) != len(expected):
            return "%s mixes matchers (%s) with plain keys" % (where, ", ".join(dollars))
        if dollars:
            unknown = sorted(set(dollars) - _MATCHERS)
            if unknown:
                return "%s: %s is not a matcher (%s)" % (where, unknown[0],
                                                         ", ".join(sorted(_MATCHERS)))
            main = [k for k in dollars if k != "$tol"]
            if len(main) != 1 or ("$tol" in expected and main != ["$approx"]):
                return "%s: one matcher per value ($tol only with $approx)" % where
            key, arg = main[0], expected[main[0]]
            if key == "$regex":
                try:
                    re.compile(arg)
                except (re.error, TypeError) as exc:
                    return "%s: $regex %r is not a regular expression (%s)" % (where, arg, exc)
            elif key in ("$any", "$contains"):
                if not isinstance(arg, list) or not arg:
                    return "%s: %s takes a non-empty list" % (where, key)
                for item in arg:
                    problem = matcher_problem(item, where)
                    if problem:
                        return problem
            elif key == "$approx":
                numbers = [arg, expected.get("$tol", 0)]
                if any(isinstance(n, bool) or not isinstance(n, (int, float)) for n in numbers):
                    return "%s: $approx and $tol take numbers" % where
            elif key in ("$present", "$absent") and arg is not True:
                return "%s: %s takes true" % (where, key)
            elif key == "$type" and arg not in JSON_TYPES:
                return "%s: $type is one of %s" % (where, ", ".join(JSON_TYPES))
            return None
        for key, value in expected.items():
            problem = matcher_problem(value, "%s.%s" % (path, key) if path else str(key))
            if problem:
                return problem
    elif isinstance(expected, list):
        for i, value in enumerate(expected):
            problem = matcher_problem(value, "%s[%d]" % (where, i))
            if problem:
                return problem
    return None


def _norm(text):
    return " ".join(str(text).split()).casefold()


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _json_type(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return {float: "number", str: "string", list: "array", dict: "object"}.get(type(value), "?")


def compare(expected, actual, path=""):
    """(problems, type_problems) of ``actual`` against the matcher ``expected``."""
    where = path or "value"
    if is_matcher(expected):
        return _compare_matcher(expected, actual, where)
    if isinstance(expected, dict):
        if isinstance(actual, str):
            decoded = _decode(actual, dict)
            if decoded is not None:
                problems, types = compare(expected, decoded, path)
                return problems, types + ["%s is a JSON text, want an object" % where]
        if not isinstance(actual, dict):
            return ["%s is %s, want an object" % (where, _show(actual))], []
        problems, types = [], []
        for key, value in expected.items():
            sub = "%s.%s" % (path, key) if path else str(key)
            if is_matcher(value) and "$absent" in value:
                if key in actual:
                    problems.append("%s should not be given (got %s)" % (sub, _show(actual[key])))
                continue
            if key not in actual:
                problems.append("%s is missing" % sub)
                continue
            more, more_types = compare(value, actual[key], sub)
            problems += more
            types += more_types
        return problems, types
    if isinstance(expected, list):
        if isinstance(actual, str):
            decoded = _decode(actual, list)
            if decoded is not None:
                problems, types = compare(expected, decoded, path)
                return problems, types + ["%s is a JSON text, want an array" % where]
        if not isinstance(actual, list) or len(actual) != len(expected):
            return ["%s is %s, want %s" % (where, _show(actual), _show(expected))], []
        problems, types = [], []
        for i, (want, got) in enumerate(zip(expected, actual)):
            more, more_types = compare(want, got, "%s[%d]" % (where, i))
            problems += more
            types += more_types
        return problems, types
    return _compare_scalar(expected, actual, where)


def _decode(text, kind):
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, kind) else None


def _compare_scalar(expected, actual, where):
    wrong = ["%s is %s, want %s" % (where, _show(actual), _show(expected))]
    if expected is None:
        return ([] if actual is None else wrong), []
    if isinstance(expected, bool):
        if isinstance(actual, bool):
            return ([] if actual == expected else wrong), []
        if isinstance(actual, str) and actual.strip().lower() == str(expected).lower():
            return [], ["%s is the text %s, want a boolean" % (where, _show(actual))]
        return wrong, []
    if _is_number(expected):
        if _is_number(actual):
            same = abs(actual - expected) <= 1e-9 * max(1.0, abs(expected))
            if same and isinstance(expected, int) and not isinstance(actual, int):
                return [], ["%s is the number %s, want an integer" % (where, _show(actual))]
            return ([] if same else wrong), []
        if isinstance(actual, str):
            try:
                number = float(actual.strip())
            except ValueError:
                return wrong, []
            if abs(number - expected) <= 1e-9 * max(1.0, abs(expected)):
                return [], ["%s is the text %s, want %s" % (
                    where, _show(actual), "an integer" if isinstance(expected, int) else "a number")]
        return wrong, []
    if isinstance(actual, str):
        return ([] if _norm(actual) == _norm(expected) else wrong), []
    if actual is not None and not isinstance(actual, (dict, list)) \
            and _norm(json.dumps(actual)) == _norm(expected):
        return [], ["%s is %s, want the text %s" % (where, _show(actual), _show(expected))]
    return wrong, []


def _compare_matcher(expected, actual, where):
    if "$present" in expected:
        return [], []
    if "$absent" in expected:
        return ["%s should not be given" % where], []
    if "$type" in expected:
        got = _json_type(actual)
        ok = got == expected["$type"] or (expected["$type"] == "number" and got == "integer")
        return ([] if ok else ["%s is %s (%s), want %s" % (where, _show(actual), got,
                                                           expected["$type"])]), []
    if "$regex" in expected:
        pattern = expected["$regex"]
        if isinstance(actual, str):
            found = re.search(pattern, actual, re.I)
            return ([] if found else ["%s is %s, want /%s/" % (where, _show(actual), pattern)]), []
        if actual is not None and not isinstance(actual, (dict, list)) \
                and re.search(pattern, json.dumps(actual), re.I):
            return [], ["%s is %s, want a text" % (where, _show(actual))]
        return ["%s is %s, want a text matching /%s/" % (where, _show(actual), pattern)], []
    if "$approx" in expected:
        target, tol = expected["$approx"], expected.get("$tol", 1e-6)
        number, types = actual, []
        if isinstance(actual, str):
            try:
                number = float(actual.replace(",", "").strip())
                types = ["%s is the text %s, want a number" % (where, _show(actual))]
            except ValueError:
                number = None
        if _is_number(number) and abs(number - target) <= tol:
            return [], types
        return ["%s is %s, want %s +/- %s" % (where, _show(actual), target, tol)], []
    if "$any" in expected:
        type_only = None
        for option in expected["$any"]:
            problems, types = compare(option, actual, where)
            if not problems and not types:
                return [], []
            if not problems and type_only is None:
                type_only = types
        if type_only is not None:
            return [], type_only
        return ["%s is %s, want one of %s" % (where, _show(actual), _show(expected["$any"]))], []
    # $contains
    if not isinstance(actual, list):
        return ["%s is %s, want a list" % (where, _show(actual))], []
    missing = [want for want in expected["$contains"]
               if not any(not compare(want, got, where)[0] for got in actual)]
    if missing:
        return ["%s lacks %s" % (where, ", ".join(_show(m) for m in missing))], []
    return [], []


# --- Calls and answers -------------------------------------------------------------------------

def call_problems(expected, call, strict=False):
    if call.args is None:
        return ["arguments are not a JSON object: %s" % snip(call.raw, 60)]
    problems, types = compare(expected.get("args", {}), call.args)
    return problems + (types if strict else [])


def match_calls(expected_calls, calls, strict=False):
    """For each expected call, in order: (expected, the call that matches it or None, the
    problems of the closest call of that tool). A call matches one expectation at most."""
    used, out = set(), []
    for expected in expected_calls:
        found, closest, same = None, None, 0
        for i, call in enumerate(calls):
            if call.name != expected["tool"]:
                continue
            same += 1
            if i in used:
                continue
            problems = call_problems(expected, call, strict)
            if not problems:
                found = i
                break
            if closest is None or len(problems) < len(closest):
                closest = problems
        if found is not None:
            used.add(found)
            out.append((expected, calls[found], []))
        elif closest is not None:
            out.append((expected, None, closest))
        else:
            out.append((expected, None, ["no other %s call" % expected["tool"]] if same
                        else ["%s was not called" % expected["tool"]]))
    return out


def missing_patterns(patterns, text):
    return [p for p in patterns or () if not re.search(p, text, re.I | re.S)]


def found_patterns(patterns, text):
    return [p for p in patterns or () if re.search(p, text, re.I | re.S)]


def _looping(calls):
    counts = {}
    for call in calls:
        key = (call.name, call.raw if call.args is None else json.dumps(call.args, sort_keys=True))
        counts[key] = counts.get(key, 0) + 1
    worst = max(counts.values()) if counts else 0
    return worst if worst > MAX_REPEATS else 0


def _answer_problem(scenario, transcript):
    """None when the final answer matches every pattern and no forbidden one; else why not."""
    final = transcript.final
    if not final:
        return "no final answer" + (" (%s)" % transcript.stopped if transcript.stopped else "")
    missing = missing_patterns(scenario.expect.get("answer"), final)
    if missing:
        return "the answer lacks /%s/: %s" % ("/, /".join(missing), snip(final, 60))
    return None


def _forbidden(scenario, transcript):
    hits = found_patterns(scenario.expect.get("forbid"), transcript.final)
    if hits:
        return "the answer says /%s/: %s" % ("/, /".join(hits), snip(transcript.final, 60))
    return None


def _no_call(transcript):
    final = transcript.final
    return "no tool call; answered: %s" % (snip(final, 60) if final else "(nothing)")


def _first_problem(matched):
    for expected, call, problems in matched:
        if call is None:
            return "%s: %s" % (expected["tool"], "; ".join(problems[:2]))
    return ""


def _names(calls):
    return ", ".join(sorted({c.name for c in calls}))


# --- One checker per category ------------------------------------------------------------------

def _one_call(scenario, t, words):
    """single_call and tool_selection: one expected call, no other tool, an answer that fits.
    ``words`` phrases each outcome ({tool}, {called}, {problems}, {call}, {problem}, {tools})."""
    expected = scenario.expect["calls"][0]
    tool = expected["tool"]
    if not t.calls:
        return FAIL, _no_call(t)
    right = [c for c in t.calls if c.name == tool]
    if not right:
        return FAIL, words["wrong"].format(called=_names(t.calls), tool=tool)
    ((dummy, call, problems),) = match_calls([expected], right)
    if call is None:
        return PARTIAL, words["args"].format(tool=tool, problems="; ".join(problems[:2]))
    others = [c for c in t.calls if c.name != tool]
    if others:
        return PARTIAL, words["others"].format(tool=tool, called=_names(others))
    problem = _answer_problem(scenario, t) or _forbidden(scenario, t)
    if problem:
        return PARTIAL, words["answer"].format(call=call.describe(), tool=tool, problem=problem)
    return PASS, words["pass"].format(call=call.describe(), tools=len(scenario.tools))


def check_single_call(scenario, t):
    return _one_call(scenario, t, {
        "wrong": "called {called} instead of {tool}",
        "args": "{tool} called with wrong arguments: {problems}",
        "others": "also called {called}, which the request does not need",
        "answer": "{call} right, but {problem}",
        "pass": "{call}, and the answer has the expected facts"})


def check_parallel_calls(scenario, t):
    expected = scenario.expect["calls"]
    if not t.calls:
        return FAIL, _no_call(t)
    matched = match_calls(expected, t.calls)
    made = [call for dummy, call, dummy in matched if call is not None]
    if not made:
        return FAIL, "none of the %d expected calls: %s" % (len(expected), _first_problem(matched))
    if len(made) < len(expected):
        return PARTIAL, "%d of %d expected calls; missing %s" % (len(made), len(expected),
                                                                 _first_problem(matched))
    messages = sorted({call.message for call in made})
    if len(messages) > 1:
        return PARTIAL, "all %d calls made, but one after another over %d turns, not in parallel" \
            % (len(made), len(messages))
    problem = _answer_problem(scenario, t) or _forbidden(scenario, t)
    if problem:
        return PARTIAL, "all %d calls made in one turn, but %s" % (len(made), problem)
    return PASS, "all %d calls made in one turn, and the answer combines them" % len(made)


def check_argument_types(scenario, t):
    expected = scenario.expect["calls"][0]
    right = [c for c in t.calls if c.name == expected["tool"]]
    if not right:
        return FAIL, (_no_call(t) if not t.calls else "called %s instead of %s"
                      % (_names(t.calls), expected["tool"]))
    best = None
    for call in right:
        if call.args is None:
            outcome = (["arguments are not a JSON object: %s" % snip(call.raw, 60)], [])
        else:
            outcome = compare(expected.get("args", {}), call.args)
        if best is None or (len(outcome[0]), len(outcome[1])) < (len(best[1][0]), len(best[1][1])):
            best = (call, outcome)
    call, (problems, types) = best
    if call.args is None:
        return FAIL, problems[0]
    if not problems and not types:
        problem = _answer_problem(scenario, t) if scenario.expect.get("answer") else None
        if problem:
            return PARTIAL, "arguments right with their types, but %s" % problem
        return PASS, "%s: every argument right, with its JSON type" % call.describe()
    if not problems:
        return PARTIAL, "right values, wrong JSON types: %s" % "; ".join(types[:3])
    if len(problems) == 1 and len(expected.get("args", {})) > 1:
        return PARTIAL, "one argument wrong: %s" % problems[0]
    return FAIL, "%d arguments wrong: %s" % (len(problems), "; ".join(problems[:3]))


def check_multi_step(scenario, t):
    expected = scenario.expect["calls"]
    steps = [call.get("step", i + 1) for i, call in enumerate(expected)]
    if not t.calls:
        return FAIL, _no_call(t)
    matched = match_calls(expected, t.calls)
    done, previous_end = 0, -1
    for step in sorted(set(steps)):
        group = [m for m, s in zip(matched, steps) if s == step]
        if any(call is None for dummy, call, dummy in group):
            break
        messages = [call.message for dummy, call, dummy in group]
        if min(messages) <= previous_end:
            return PARTIAL, "step %d was called before the result of step %d was back" % (
                step, step - 1)
        previous_end = max(messages)
        done += 1
    total = len(set(steps))
    if done == 0:
        return FAIL, "the first step is missing: %s" % _first_problem(matched)
    if done < total:
        return PARTIAL, "%d of %d steps; then %s" % (done, total, _first_problem(matched))
    problem = _answer_problem(scenario, t) or _forbidden(scenario, t)
    if problem:
        return PARTIAL, "all %d steps in order, but %s" % (total, problem)
    return PASS, "all %d steps in order, and the answer reports the outcome" % total


def check_refusal(scenario, t):
    final = t.final
    if not final:
        return FAIL, ("called %s, then no answer" % _names(t.calls)) if t.calls else "no answer at all"
    refuses = not missing_patterns(scenario.expect["answer"], final)
    forbidden = _forbidden(scenario, t)
    if not refuses:
        if t.calls:
            return FAIL, "called %s although no offered tool fits the request" % _names(t.calls)
        if forbidden:
            return FAIL, "invented an answer: %s" % forbidden
        return FAIL, "does not say it cannot: %s" % snip(final, 60)
    if t.calls:
        return PARTIAL, "said it cannot, but only after calling %s" % _names(t.calls)
    if forbidden:
        return PARTIAL, "says it cannot, yet %s" % forbidden
    return PASS, "no tool call, and the answer says it cannot: %s" % snip(final, 60)


def check_error_handling(scenario, t):
    if not t.calls:
        return FAIL, _no_call(t)
    forbidden = _forbidden(scenario, t)
    if forbidden:
        return FAIL, "hid the tool's error: %s" % forbidden
    expected = scenario.expect["calls"]
    matched = match_calls(expected, t.calls)
    made = sum(1 for dummy, call, dummy in matched if call is not None)
    answer = _answer_problem(scenario, t)
    loop = _looping(t.calls)
    if made == len(expected) and not answer:
        if loop:
            return PARTIAL, "handled the error, but repeated one call %d times" % loop
        return PASS, "handled the error (%d expected call%s) and the answer says what happened" % (
            made, "s" if made > 1 else "")
    if made == len(expected):
        return PARTIAL, "made the expected calls, but %s" % answer
    if not answer or (t.final and re.search(ADMITS_FAILURE, t.final, re.I)):
        return PARTIAL, "reported the failure instead of recovering: %s" % _first_problem(matched)
    return FAIL, "neither recovered nor reported the error: %s; %s" % (_first_problem(matched),
                                                                       answer)


def check_long_context(scenario, t):
    expected = scenario.expect.get("calls") or []
    answer = _answer_problem(scenario, t) if scenario.expect.get("answer") else None
    if expected:
        matched = match_calls(expected, t.calls)
        made = sum(1 for dummy, call, dummy in matched if call is not None)
        if made == len(expected):
            if answer:
                return PARTIAL, "recalled the fact into the call, but %s" % answer
            return PASS, "recalled the fact into %s" % ", ".join(
                call.describe() for dummy, call, dummy in matched)
        if not t.calls:
            if scenario.expect.get("answer") and not answer:
                return PARTIAL, "recalled the fact in the answer but made no call"
            return FAIL, _no_call(t)
        if made:
            return PARTIAL, "%d of %d calls with the recalled fact: %s" % (
                made, len(expected), _first_problem(matched))
        return FAIL, "did not recall the fact: %s" % _first_problem(matched)
    patterns = scenario.expect["answer"]
    final = t.final
    if not final:
        return FAIL, "no final answer" + (" (%s)" % t.stopped if t.stopped else "")
    missing = missing_patterns(patterns, final)
    if not missing:
        return PASS, "recalled: %s" % snip(final, 60)
    if len(missing) < len(patterns):
        return PARTIAL, "recalled part of it; lacks /%s/: %s" % ("/, /".join(missing),
                                                                 snip(final, 60))
    return FAIL, "did not recall it: %s" % snip(final, 60)


def extract_json(text):
    """(the JSON object in an answer or None, whether the answer is nothing but it)."""
    text = clean(text)
    value = _decode(text, dict)
    if value is not None:
        return value, True
    fence = re.search(r"```(?:json)?\s*(.*?)```", text, re.S | re.I)
    if fence:
        value = _decode(fence.group(1).strip(), dict)
        if value is not None:
            outside = text[:fence.start()] + text[fence.end():]
            return value, not outside.strip()
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        value = _decode(text[start:end + 1], dict)
        if value is not None:
            return value, False
    return None, False


def check_structured_output(scenario, t):
    expected_calls = scenario.expect.get("calls") or []
    if not t.final:
        return FAIL, "no final answer" + (" (%s)" % t.stopped if t.stopped else "")
    value, pure = extract_json(t.final)
    if value is None:
        return FAIL, "no JSON object in the answer: %s" % snip(t.final, 60)
    problems, types = compare(scenario.expect["json"], value)
    fields = len(scenario.expect["json"])
    if problems and not (len(problems) == 1 and fields > 1):
        return FAIL, "%d field(s) wrong: %s" % (len(problems), "; ".join(problems[:3]))
    missing_calls = [m for m in match_calls(expected_calls, t.calls) if m[1] is None]
    notes = problems + types
    if missing_calls:
        notes.append("did not call %s" % ", ".join(m[0]["tool"] for m in missing_calls))
    if not pure:
        notes.append("the JSON is wrapped in prose")
    if notes:
        return PARTIAL, "JSON answer, but %s" % "; ".join(notes[:3])
    return PASS, "a JSON object with every field right"


def check_tool_selection(scenario, t):
    return _one_call(scenario, t, {
        "wrong": "picked {called} instead of {tool}",
        "args": "picked {tool}, with wrong arguments: {problems}",
        "others": "picked {tool}, but also called the look-alike {called}",
        "answer": "picked {tool}, but {problem}",
        "pass": "picked {call} among {tools} tools"})


def check_follow_up(scenario, t):
    expected = scenario.expect["calls"]
    turns = sorted({call["turn"] for call in expected})
    done = 0
    for turn in turns:
        wanted = [call for call in expected if call["turn"] == turn]
        made = [call for call in t.calls if call.turn == turn]
        matched = match_calls(wanted, made)
        if any(call is None for dummy, call, dummy in matched):
            if done == 0:
                return FAIL, "user turn %d: %s" % (turn, _first_problem(matched) if made
                                                   else _no_call(t) if not t.calls
                                                   else "no call in that turn")
            return PARTIAL, "user turn %d right, then turn %d: %s" % (
                turns[done - 1], turn, _first_problem(matched) if made else "no call in that turn")
        done += 1
    problem = _answer_problem(scenario, t) or _forbidden(scenario, t)
    if problem:
        return PARTIAL, "every turn's calls right, but %s" % problem
    return PASS, "every user turn's calls right (%d turns), and the final answer fits" % (
        1 + len(scenario.followups))


CHECKERS = {
    "single_call": check_single_call,
    "parallel_calls": check_parallel_calls,
    "argument_types": check_argument_types,
    "multi_step": check_multi_step,
    "refusal": check_refusal,
    "error_handling": check_error_handling,
    "long_context": check_long_context,
    "structured_output": check_structured_output,
    "tool_selection": check_tool_selection,
    "follow_up": check_follow_up,
}


def check(scenario, transcript):
    """(verdict, reason) of one conversation."""
    verdict, reason = CHECKERS[scenario.category](scenario, transcript)
    if transcript.stopped and verdict == PASS:  # an earlier answer passed, then it looped
        return PARTIAL, "%s; %s" % (reason, transcript.stopped)
    return verdict, reason
