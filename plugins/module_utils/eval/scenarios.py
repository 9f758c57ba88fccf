# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Scenario files: loading, validation and selection.

A scenario file (YAML, or JSON) is a mapping with ``tools`` (tool definitions, by name, shared by
every file loaded together) and ``scenarios`` (a list). Directories are read in the order given,
their ``*.yml`` / ``*.yaml`` / ``*.json`` files in name order. Every problem is a
``ScenarioError`` naming the file, the scenario id and the field. The format is described in
``roles/eval/files/scenarios/README.md``.
"""
from __future__ import annotations

import json
import os
import re
import zlib

from .checks import matcher_problem
from .errors import EvalInputError, ScenarioError

CATEGORIES = {
    "single_call": "one tool, one call, and an answer that uses its result",
    "parallel_calls": "independent calls made together in one assistant turn",
    "argument_types": "integers, numbers, booleans, enums, arrays and objects with their JSON types",
    "multi_step": "a chain of calls in which a step needs the result of the one before",
    "refusal": "no offered tool fits: no call, and an answer that says so",
    "error_handling": "a tool returns an error: retry or report it, never invent a result",
    "long_context": "a fact buried in a long context, recalled into a call or the answer",
    "structured_output": "an answer that is a JSON object with the asked fields and types",
    "tool_selection": "the one right tool among look-alikes",
    "follow_up": "a later user turn that builds on the earlier ones",
}

DEFAULT_SYSTEM = (
    "You are an assistant with access to tools. Today is 2026-12-01. Call a tool when you need "
    "it to answer; use only the tools you are given and never invent their results. When you "
    "cannot do what is asked, say so plainly.")
DEFAULT_MAX_TURNS = 8

_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_SCENARIO_KEYS = {"id", "category", "description", "system", "prompt", "followups", "tools",
                  "results", "context", "expect", "max_turns"}
_EXPECT_KEYS = {"calls", "answer", "forbid", "json"}
_CALL_KEYS = {"tool", "args", "step", "turn"}
_CONTEXT_KINDS = ("log", "customers", "config", "shipments")

# Per category: how many expected calls (min, max; None = no limit) and what else it needs.
_RULES = {
    "single_call": {"calls": (1, 1)},
    "parallel_calls": {"calls": (2, None)},
    "argument_types": {"calls": (1, 1), "args": True},
    "multi_step": {"calls": (2, None)},
    "refusal": {"calls": (0, 0), "answer": True},
    "error_handling": {"calls": (1, None), "answer": True},
    "long_context": {"calls": (0, None), "context": True, "calls_or_answer": True},
    "structured_output": {"calls": (0, None), "json": True},
    "tool_selection": {"calls": (1, 1), "min_tools": 3},
    "follow_up": {"calls": (2, None), "followups": True},
}


class Scenario(object):
    """One validated scenario. ``tools`` holds the OpenAI tool definitions sent with it."""

    __slots__ = ("id", "category", "description", "system", "prompt", "followups", "tools",
                 "results", "context", "expect", "max_turns", "source")

    def __init__(self, **fields):
        for name in self.__slots__:
            setattr(self, name, fields.get(name))

    def first_message(self):
        """The first user message: the context (if any), then the prompt."""
        if self.context:
            return "%s\n\n%s" % (self.context, self.prompt)
        return self.prompt


class ScenarioSet(object):
    def __init__(self, scenarios, tools, sources):
        self.scenarios = scenarios
        self.tools = tools
        self.sources = sources

    def categories(self):
        counts = {}
        for scenario in self.scenarios:
            counts[scenario.category] = counts.get(scenario.category, 0) + 1
        return counts


def _fail(path, scenario, field, problem, fix):
    raise ScenarioError(path, scenario, field, problem, fix)


def _read(path):
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        _fail(path, None, None, "cannot be read (%s)" % exc, "check the file's path and permissions")
    try:
        if path.endswith(".json"):
            return json.loads(text)
        import yaml  # PyYAML: Ansible's own dependency on the controller
        return yaml.safe_load(text)
    except ValueError as exc:
        _fail(path, None, None, "is not valid JSON (%s)" % exc, "fix the JSON syntax")
    except Exception as exc:  # yaml.YAMLError, without importing yaml at module level
        _fail(path, None, None, "is not valid YAML (%s)" % " ".join(str(exc).split()),
              "fix the YAML syntax at the line it names")


def scenario_files(directories):
    files = []
    for directory in directories:
        if not os.path.isdir(directory):
            raise EvalInputError("scenario_dirs", directory, "is not a directory",
                                 "give existing directories of scenario files (*.yml, *.json)")
        found = sorted(os.path.join(directory, name) for name in os.listdir(directory)
                       if name.endswith((".yml", ".yaml", ".json")) and not name.startswith("."))
        if not found:
            raise EvalInputError("scenario_dirs", directory, "holds no *.yml, *.yaml or *.json file",
                                 "put scenario files there or remove the directory from the list")
        files.extend(found)
    return files


def _check_tool(path, name, definition):
    field = "tools.%s" % name
    if not re.match(r"^[A-Za-z0-9_-]{1,64}$", str(name)):
        _fail(path, None, field, "tool names are 1-64 letters, digits, '_' or '-'",
              "rename the tool")
    if not isinstance(definition, dict) or set(definition) - {"description", "parameters"}:
        _fail(path, None, field, "a tool is a mapping with 'description' and 'parameters' only",
              "write {description: ..., parameters: {type: object, properties: {...}}}")
    if not isinstance(definition.get("description"), str) or not definition["description"].strip():
        _fail(path, None, field + ".description", "is missing or empty",
              "say in one sentence what the tool does")
    params = definition.get("parameters")
    if not isinstance(params, dict) or params.get("type") != "object" \
            or not isinstance(params.get("properties", {}), dict):
        _fail(path, None, field + ".parameters", "must be a JSON schema of type object",
              "write {type: object, properties: {name: {type: string}}, required: [name]}")
    required = params.get("required", [])
    unknown = [r for r in required if r not in params.get("properties", {})] \
        if isinstance(required, list) else [required]
    if unknown:
        _fail(path, None, field + ".parameters.required", "names %s, which are not properties"
              % unknown, "list only names that are under properties")
    return {"type": "function", "function": {"name": name, "description": definition["description"],
                                             "parameters": params}}


def _numbers(seed):
    """A deterministic stream of pseudo-random numbers (the same on every Python)."""
    counter = 0
    while True:
        counter += 1
        yield zlib.crc32(("%d:%d" % (seed, counter)).encode())


_FIRST = ["Anna", "Bilal", "Chen", "Dara", "Emil", "Farah", "Goran", "Hana", "Ivo", "Jonas",
          "Kira", "Luis", "Maya", "Nils", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq"]
_LAST = ["Berg", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ito", "Jensen",
         "Kowalski", "Larsen", "Moreau", "Novak", "Olsen", "Petrov", "Rossi", "Silva", "Tanaka"]
_EVENTS = ["ray: heartbeat ok", "vllm: decode step ok", "nccl: channel {a} NET/IB/{b} ready",
           "kernel: link enp1s0f{b}np{b} up", "gpu0 temp={t}C power={p}W", "sshd: session closed",
           "dockerd: container healthy", "vllm: prefix cache hit rate 0.{a}{b}"]


def _filler_line(kind, index, rand):
    n = [next(rand) for dummy in range(4)]
    if kind == "log":
        event = _EVENTS[n[0] % len(_EVENTS)].format(a=n[1] % 8, b=n[2] % 2, t=40 + n[1] % 30,
                                                    p=60 + n[2] % 80)
        seconds = index * 37
        return "2026-11-%02d %02d:%02d:%02d spark%d %s" % (
            28 + seconds // 86400 % 3, seconds // 3600 % 24, seconds // 60 % 60, seconds % 60,
            1 + n[3] % 4, event)
    if kind == "customers":
        first, last = _FIRST[n[0] % len(_FIRST)], _LAST[n[1] % len(_LAST)]
        return "Customer C-%04d: %s %s, %s.%s@example.com, plan %s" % (
            1000 + index, first, last, first.lower(), last.lower(),
            ("basic", "team", "pro")[n[2] % 3])
    if kind == "config":
        return "[deploy-%03d] model=%s max_num_seqs=%d max_num_batched_tokens=%d kv_cache_dtype=%s" % (
            index, ("glm-5.2", "qwen3-235b", "llama-4", "deepseek-v3")[n[0] % 4],
            (1, 2, 4, 8, 16)[n[1] % 5], (2048, 4096, 8192, 16384)[n[2] % 4],
            ("fp8", "auto", "fp8_e5m2")[n[3] % 3])
    return "Order A-%04d: tracking TRK-%06d, carrier %s, status %s" % (
        1000 + index * 3, n[0] % 1000000, ("DHL", "UPS", "GLS", "DPD")[n[1] % 4],
        ("delivered", "in transit", "at depot", "label created")[n[2] % 4])


def haystack(kind, lines, needle, position, seed):
    """A deterministic filler of ``lines`` lines of ``kind`` with ``needle`` at ``position``."""
    rand = _numbers(seed)
    body = [_filler_line(kind, i, rand) for i in range(lines)]
    body.insert(int(round(position * lines)), needle)
    return "\n".join(body)


def _context(path, sid, context):
    if isinstance(context, str):
        return context
    if not isinstance(context, dict):
        _fail(path, sid, "context", "must be a text or a mapping",
              "write the text, or {kind: log, lines: 400, needle: '...', position: 0.6}")
    unknown = set(context) - {"kind", "lines", "needle", "position", "unique"}
    if unknown:
        _fail(path, sid, "context.%s" % sorted(unknown)[0], "is not a context field",
              "use kind, lines, needle, position and unique")
    if context.get("kind") not in _CONTEXT_KINDS:
        _fail(path, sid, "context.kind", "is %r" % context.get("kind"),
              "use one of %s" % ", ".join(_CONTEXT_KINDS))
    lines = context.get("lines")
    if not isinstance(lines, int) or isinstance(lines, bool) or not 10 <= lines <= 20000:
        _fail(path, sid, "context.lines", "is %r" % lines, "give a whole number from 10 to 20000")
    needle = context.get("needle")
    if not isinstance(needle, str) or not needle.strip() or "\n" in needle:
        _fail(path, sid, "context.needle", "must be one non-empty line",
              "write the line the model has to find")
    position = context.get("position", 0.5)
    if isinstance(position, bool) or not isinstance(position, (int, float)) \
            or not 0 <= position <= 1:
        _fail(path, sid, "context.position", "is %r" % position,
              "give a fraction from 0 (top) to 1 (bottom)")
    text = haystack(context["kind"], lines, needle, position, zlib.crc32(sid.encode()))
    for unique in context.get("unique", []):
        if unique not in needle:
            _fail(path, sid, "context.unique", "%r is not in the needle" % unique,
                  "list only strings of the needle")
        if text.count(unique) != needle.count(unique):
            _fail(path, sid, "context.unique", "%r also appears in the filler" % unique,
                  "pick a value the %s filler cannot produce" % context["kind"])
    return text


def _check_results(path, sid, results, tools):
    if not isinstance(results, dict):
        _fail(path, sid, "results", "must map tool names to simulated results",
              "write {tool_name: {result: ...}}")
    for name, spec in results.items():
        field = "results.%s" % name
        if name not in tools:
            _fail(path, sid, field, "is not one of the scenario's tools %s" % tools,
                  "add the tool to 'tools' or fix the name")
        forms = [key for key in ("result", "sequence", "cases") if isinstance(spec, dict)
                 and key in spec]
        if not isinstance(spec, dict) or len(forms) != 1 \
                or set(spec) - {"result", "sequence", "cases", "default"} \
                or ("default" in spec and forms != ["cases"]):
            _fail(path, sid, field, "needs exactly one of result, sequence or cases "
                  "(default only with cases)",
                  "write {result: X}, {sequence: [X, Y]} or {cases: [{when: {...}, result: X}], "
                  "default: Y}")
        if forms == ["sequence"] and (not isinstance(spec["sequence"], list) or not spec["sequence"]):
            _fail(path, sid, field + ".sequence", "must be a non-empty list",
                  "give the result of the first call, the second, ... (the last repeats)")
        if forms == ["cases"]:
            if not isinstance(spec["cases"], list) or not spec["cases"]:
                _fail(path, sid, field + ".cases", "must be a non-empty list",
                      "write [{when: {arg: value}, result: X}]")
            for i, case in enumerate(spec["cases"]):
                if not isinstance(case, dict) or set(case) != {"when", "result"} \
                        or not isinstance(case["when"], dict):
                    _fail(path, sid, "%s.cases[%d]" % (field, i), "needs 'when' (a mapping) and "
                          "'result'", "write {when: {arg: value}, result: X}")
                problem = matcher_problem(case["when"])
                if problem:
                    _fail(path, sid, "%s.cases[%d].when" % (field, i), problem,
                          "see the matchers in the scenario format")


def _check_calls(path, sid, category, calls, tools, library, followups):
    rules = _RULES[category]
    low, high = rules["calls"]
    if not isinstance(calls, list):
        _fail(path, sid, "expect.calls", "must be a list", "write [{tool: name, args: {...}}]")
    if len(calls) < low or (high is not None and len(calls) > high):
        want = ("exactly %d" % low) if low == high else ("at least %d" % low)
        _fail(path, sid, "expect.calls", "%s expects %s call(s), got %d" % (category, want,
                                                                            len(calls)),
              "list the calls a correct answer makes")
    stepped = [isinstance(call, dict) and "step" in call for call in calls]
    if any(stepped) and not all(stepped):
        _fail(path, sid, "expect.calls", "some calls have a step and some do not",
              "give every call a step, or none (then each call is its own step, in order)")
    last_step = 0
    for i, call in enumerate(calls):
        field = "expect.calls[%d]" % i
        if not isinstance(call, dict) or set(call) - _CALL_KEYS or "tool" not in call:
            _fail(path, sid, field, "must be {tool: name, args: {...}} (optional step, turn)",
                  "fix the entry")
        if call["tool"] not in tools:
            _fail(path, sid, field + ".tool", "%r is not one of the scenario's tools %s"
                  % (call["tool"], tools), "add it to 'tools' or fix the name")
        args = call.get("args", {})
        if not isinstance(args, dict) or (rules.get("args") and not args):
            _fail(path, sid, field + ".args", "must be a mapping of argument matchers"
                  + (" (argument_types checks arguments: give them)" if rules.get("args") else ""),
                  "write {argument: value}")
        props = library[call["tool"]]["function"]["parameters"].get("properties", {})
        for name in args:
            if name not in props:
                _fail(path, sid, "%s.args.%s" % (field, name), "is not a parameter of %s (%s)"
                      % (call["tool"], ", ".join(sorted(props))), "fix the argument name")
        problem = matcher_problem(args)
        if problem:
            _fail(path, sid, field + ".args", problem, "see the matchers in the scenario format")
        if "step" in call:
            if category != "multi_step":
                _fail(path, sid, field + ".step", "only multi_step scenarios have steps",
                      "remove it")
            if not isinstance(call["step"], int) or call["step"] < max(last_step, 1):
                _fail(path, sid, field + ".step", "steps are whole numbers from 1, not decreasing",
                      "number the steps 1, 2, ... (calls of one step may share it)")
            last_step = call["step"]
    if any(stepped) and len({call["step"] for call in calls}) < 2:
        _fail(path, sid, "expect.calls", "every call has the same step",
              "a multi_step scenario has at least two steps")
        if category == "follow_up":
            turn = call.get("turn")
            if not isinstance(turn, int) or not 1 <= turn <= 1 + len(followups):
                _fail(path, sid, field + ".turn", "is %r" % (turn,),
                      "give the user turn (1 = the prompt, 2 = the first follow-up, ...) "
                      "after which the call is made")
        elif "turn" in call:
            _fail(path, sid, field + ".turn", "only follow_up scenarios have turns", "remove it")


def _patterns(path, sid, field, value):
    if not isinstance(value, list) or not all(isinstance(p, str) and p for p in value):
        _fail(path, sid, field, "must be a list of regular expressions",
              "write ['14', 'rain|shower']")
    for pattern in value:
        try:
            re.compile(pattern)
        except re.error as exc:
            _fail(path, sid, field, "%r is not a regular expression (%s)" % (pattern, exc),
                  "escape special characters such as ( ) . ? with a backslash")


def _scenario(path, raw, library):
    sid = raw.get("id") if isinstance(raw, dict) else None
    if not isinstance(raw, dict):
        _fail(path, None, "scenarios[]", "an entry is not a mapping", "write {id: ..., ...}")
    if not isinstance(sid, str) or not _ID.match(sid):
        _fail(path, sid, "id", "is missing or not lowercase letters, digits, '-', '_', '.'",
              "give the scenario a unique id such as single-weather")
    unknown = set(raw) - _SCENARIO_KEYS
    if unknown:
        _fail(path, sid, sorted(unknown)[0], "is not a scenario field",
              "use %s" % ", ".join(sorted(_SCENARIO_KEYS)))
    category = raw.get("category")
    if category not in CATEGORIES:
        _fail(path, sid, "category", "is %r" % (category,), "use one of %s" % ", ".join(CATEGORIES))
    rules = _RULES[category]
    for field in ("prompt", "system", "description"):
        value = raw.get(field, None if field == "prompt" else "-")
        if not isinstance(value, str) or not value.strip():
            _fail(path, sid, field, "must be a non-empty text", "write it, or leave it out"
                  if field != "prompt" else "write the user's request")
    followups = raw.get("followups", [])
    if not isinstance(followups, list) or not all(isinstance(f, str) and f for f in followups):
        _fail(path, sid, "followups", "must be a list of user messages", "write ['And Bergen?']")
    if rules.get("followups") and not followups:
        _fail(path, sid, "followups", "a follow_up scenario needs at least one",
              "add the later user messages")
    tools = raw.get("tools", [])
    if not isinstance(tools, list) or not all(isinstance(t, str) for t in tools) \
            or len(set(tools)) != len(tools):
        _fail(path, sid, "tools", "must be a list of distinct tool names",
              "write [get_weather, get_time]")
    for name in tools:
        if name not in library:
            _fail(path, sid, "tools", "%r is defined in no loaded file" % name,
                  "define it under 'tools:' in a scenario file (known: %s)"
                  % ", ".join(sorted(library)))
    if len(tools) < rules.get("min_tools", 0):
        _fail(path, sid, "tools", "tool_selection needs at least %d tools" % rules["min_tools"],
              "offer the right tool among look-alikes")
    results = raw.get("results", {})
    _check_results(path, sid, results, tools)
    expect = raw.get("expect")
    if not isinstance(expect, dict) or not expect or set(expect) - _EXPECT_KEYS:
        _fail(path, sid, "expect", "must be a mapping of %s" % ", ".join(sorted(_EXPECT_KEYS)),
              "say what a correct answer does")
    _check_calls(path, sid, category, expect.get("calls", []), tools, library, followups)
    for field in ("answer", "forbid"):
        if field in expect:
            _patterns(path, sid, "expect." + field, expect[field])
    if rules.get("answer") and not expect.get("answer"):
        _fail(path, sid, "expect.answer", "%s needs the patterns a good answer matches" % category,
              "write ['cannot|unable']")
    if rules.get("calls_or_answer") and not (expect.get("calls") or expect.get("answer")):
        _fail(path, sid, "expect", "long_context needs calls or answer patterns (or both)",
              "say where the recalled fact must appear")
    if "json" in expect:
        if not isinstance(expect["json"], dict) or not expect["json"]:
            _fail(path, sid, "expect.json", "must be a mapping of field matchers",
                  "write {node: spark1, healthy: true}")
        problem = matcher_problem(expect["json"])
        if problem:
            _fail(path, sid, "expect.json", problem, "see the matchers in the scenario format")
    elif rules.get("json"):
        _fail(path, sid, "expect.json", "structured_output needs the fields of the JSON answer",
              "write {field: value}")
    if rules.get("context") and "context" not in raw:
        _fail(path, sid, "context", "long_context needs a context", "add {kind, lines, needle}")
    context = _context(path, sid, raw["context"]) if "context" in raw else None
    max_turns = raw.get("max_turns", DEFAULT_MAX_TURNS)
    if not isinstance(max_turns, int) or isinstance(max_turns, bool) or not 1 <= max_turns <= 30:
        _fail(path, sid, "max_turns", "is %r" % (max_turns,), "give a whole number from 1 to 30")
    return Scenario(id=sid, category=category, description=raw.get("description", ""),
                    system=raw.get("system", DEFAULT_SYSTEM), prompt=raw["prompt"],
                    followups=list(followups), tools=[library[t] for t in tools],
                    results=results, context=context, expect=expect, max_turns=max_turns,
                    source=path)


def load(directories, select=()):
    """Every scenario of ``directories`` (validated), then the ones ``select`` names (ids or
    categories; empty: all)."""
    documents = []
    for path in scenario_files(directories):
        data = _read(path)
        if data is None:
            continue
        if not isinstance(data, dict) or {k for k in data if not str(k).startswith("x-")} \
                - {"tools", "scenarios"}:
            _fail(path, None, None, "a scenario file is a mapping with 'tools' and/or 'scenarios' "
                  "(and x-* keys for YAML anchors)", "put the definitions under those keys")
        documents.append((path, data))
    library, origin = {}, {}
    for path, data in documents:
        tools = data.get("tools") or {}
        if not isinstance(tools, dict):
            _fail(path, None, "tools", "must map tool names to definitions",
                  "write {get_weather: {description: ..., parameters: {...}}}")
        for name, definition in tools.items():
            tool = _check_tool(path, name, definition)
            if name in library and library[name] != tool:
                _fail(path, None, "tools.%s" % name, "is defined differently in %s" % origin[name],
                      "give one of them another name")
            library[name], origin[name] = tool, path
    scenarios, seen = [], {}
    for path, data in documents:
        entries = data.get("scenarios") or []
        if not isinstance(entries, list):
            _fail(path, None, "scenarios", "must be a list", "write - id: ... entries")
        for raw in entries:
            scenario = _scenario(path, raw, library)
            if scenario.id in seen:
                _fail(path, scenario.id, "id", "is already defined in %s" % seen[scenario.id],
                      "give your scenario another id")
            seen[scenario.id] = path
            scenarios.append(scenario)
    if not scenarios:
        raise EvalInputError("scenario_dirs", list(directories), "hold no scenario",
                             "add scenario files with a 'scenarios:' list")
    return ScenarioSet(_select(scenarios, select), library, list(directories))


def _select(scenarios, select):
    if not select:
        return scenarios
    ids = {s.id for s in scenarios}
    cats = {s.category for s in scenarios}
    unknown = [name for name in select if name not in ids and name not in cats]
    if unknown:
        raise EvalInputError("select", unknown, "names no scenario id or category of the loaded set",
                             "use categories (%s) or scenario ids" % ", ".join(sorted(cats)))
    return [s for s in scenarios if s.id in select or s.category in select]


def spread(scenarios, count):
    """``count`` scenarios taken round-robin over the categories (for the concurrency sweep)."""
    by_category = {}
    for scenario in scenarios:
        by_category.setdefault(scenario.category, []).append(scenario)
    queues = [by_category[c] for c in sorted(by_category)]
    picked, depth = [], 0
    while len(picked) < min(count, len(scenarios)):
        for queue in queues:
            if depth < len(queue) and len(picked) < count:
                picked.append(queue[depth])
        depth += 1
    return picked
