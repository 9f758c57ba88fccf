#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: vllm_eval
short_description: Tool-calling evaluation of an OpenAI-compatible endpoint (Quality, Responsiveness, Deployability)
version_added: "0.1.0"
description:
  - Runs tool-calling scenarios against C(/v1/chat/completions) of a vLLM (or any
    OpenAI-compatible) endpoint, as multi-turn conversations with tool definitions and simulated
    tool results, each checked deterministically to a verdict (PASS, PARTIAL or FAIL) with a reason.
  - Scenarios are data files (YAML or JSON) in O(scenario_dirs); they are validated before any
    request, and a malformed one fails naming the file, the scenario id and the field.
  - "Scores: Quality = points / max_points x 100 (PASS 2, PARTIAL 1, FAIL 0); Responsiveness =
    the mean over every turn of a latency score (100 up to 1 s, 0 from 60 s, logarithmic between;
    a turn without an answer scores 0); Deployability = 0.7 x Quality + 0.3 x Responsiveness.
    Also decode and effective tokens/s, the median turn latency and the token efficiency (points
    per 1,000 completion tokens)."
  - Thinking is off unless O(thinking) is true (C(enable_thinking) and C(thinking) in the
    request's C(chat_template_kwargs)).
  - Optionally runs a concurrency sweep over a subset of the scenarios.
  - Returns the run as a JSON document whose fields map onto the published tool-eval JSON
    (C(meta), C(aggregate), C(scenarios)), the console table and the regression gate against
    O(min_scores) and the last saved run. It writes nothing and never fails on the scores; the
    C(dgxspark.cluster.eval) role writes the JSON and fails on the gate.
  - A model that answers badly (no tool call, malformed arguments, empty content) and a request
    that fails (HTTP error, timeout, broken stream) give FAIL verdicts with the reason; the module
    fails only when the endpoint cannot be used at all (unreachable, wrong key, model not served).
author:
  - dgxspark.cluster contributors (@dgxspark)
extends_documentation_fragment:
  - dgxspark.cluster.attributes
attributes:
  check_mode:
    support: full
    details: In check mode the scenarios and options are validated and no request is sent.
  diff_mode:
    support: none
  idempotent:
    support: full
  platform:
    support: full
    platforms: posix
options:
  api_url:
    description: Base URL of the endpoint (for example C(http://10.99.0.11:8000); a trailing C(/v1) is dropped).
    type: str
    required: true
  model:
    description: The served model name; empty takes the first model C(/v1/models) lists.
    type: str
    default: ""
  api_key:
    description: API key of the endpoint (sent as a bearer token, never returned or logged).
    type: str
    default: ""
  validate_certs:
    description: Check the endpoint's TLS certificate (https URLs).
    type: bool
    default: true
  scenario_dirs:
    description:
      - Directories of scenario files, read in this order (the role passes its shipped set first,
        then yours). The format is in C(roles/eval/files/scenarios/README.md).
    type: list
    elements: path
    required: true
  select:
    description: Scenario ids or categories to run; empty runs every scenario.
    type: list
    elements: str
    default: []
  max_tokens:
    description: max_tokens of every request (the published eval uses 1024).
    type: int
    default: 1024
  temperature:
    description: Sampling temperature of every request.
    type: float
    default: 0.0
  thinking:
    description: Let the model think (reasoning on); off is what tool calling wants.
    type: bool
    default: false
  extra_body:
    description:
      - Extra fields of every request (a recipe's C(chat_template_kwargs), for example). The
        thinking keys of C(chat_template_kwargs) are set from O(thinking).
    type: dict
    default: {}
  wall_timeout:
    description: Seconds one scenario may take, all its turns together; a request gets what is left.
    type: int
    default: 180
  stream:
    description: Stream the answers (needed to measure the time to first token and the decode rate).
    type: bool
    default: true
  concurrency:
    description: Concurrency levels of the optional sweep (for example C([1, 2, 4, 8])); empty for none.
    type: list
    elements: int
    default: []
  concurrency_scenarios:
    description: How many scenarios the sweep runs at each level (taken round-robin over the categories).
    type: int
    default: 12
  min_scores:
    description:
      - Minimum scores of the regression gate, any of C(quality), C(responsiveness),
        C(deployability) (0-100). Empty disables the gate.
    type: dict
    default: {}
  baseline:
    description:
      - The last saved run to compare with, for naming the scenarios that regressed. A run's
        JSON file, or a results directory (then the newest C(eval-<UTC>.json) of the same model,
        lab or not alike). Empty compares with nothing.
    type: path
    default: ""
  label:
    description: Label of the run in the JSON (empty takes the model name).
    type: str
    default: ""
  note:
    description: Free text stored in the JSON's C(meta.note).
    type: str
    default: ""
  lab:
    description:
      - The endpoint serves the simulated lab's tiny random-weight model. The JSON and the table
        say so; its scores measure the mechanics, not a model.
    type: bool
    default: false
  context:
    description: Stored in the JSON's C(meta.context) (recipe, plan, image).
    type: dict
    default: {}
  transcripts:
    description: Keep every conversation (long messages shortened) in the JSON, for debugging a verdict.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Evaluate the cluster with the shipped scenarios, thinking off
  dgxspark.cluster.vllm_eval:
    api_url: http://10.99.0.11:8000
    model: MiMo-V2.5-NVFP4
    scenario_dirs:
      # scenarios of your own (the eval role passes the shipped set first for you)
      - "{{ playbook_dir }}/my-scenarios"
    extra_body: {chat_template_kwargs: {enable_thinking: false}}
    min_scores: {quality: 85, deployability: 80}
    baseline: "{{ playbook_dir }}/results"
  delegate_to: localhost
  run_once: true
  register: evaluation

- name: Fail below the minimum scores, naming the scenarios that regressed
  ansible.builtin.fail:
    msg: "{{ evaluation.gate.msg }}"
  when: not evaluation.gate.passed

- name: Only the refusal and error-handling scenarios, with a concurrency sweep
  dgxspark.cluster.vllm_eval:
    api_url: http://127.0.0.1:8000
    scenario_dirs: [/srv/eval/scenarios]
    select: [refusal, error_handling]
    concurrency: [1, 2, 4]
    concurrency_scenarios: 6
  delegate_to: localhost
"""

RETURN = r"""
eval:
  description:
    - The run (C(meta), C(aggregate), C(scenarios)), field for field the published tool-eval JSON
      plus the fields described in the README (C(meta.format), C(meta.lab), C(meta.scenario_set),
      C(aggregate.categories), C(scenarios[].error), ...).
  returned: success, not in check mode
  type: dict
  contains:
    meta:
      description: >-
        label, model, endpoint, utc, note, max_tokens, thinking, wall_timeout, format, lab,
        temperature, max_model_len, scenario_set, context.
      type: dict
    aggregate:
      description: >-
        scenarios, passed, partial, failed, points, max_points, quality, median_turn_latency_ms,
        responsiveness, deployability, total_tokens, completion_tokens, token_efficiency,
        tok_s_decode, tok_s_effective, stars, rating, categories.
      type: dict
    scenarios:
      description: >-
        Per scenario: id, category, verdict, points, reason, ttft_ms, turns, wall_s,
        prompt_tokens, completion_tokens, total_tokens, turn_latencies_ms, error (and transcript).
      type: list
      elements: dict
  sample:
    meta: {label: mimo_v25, model: MiMo-V2.5-NVFP4, endpoint: "http://10.99.0.11:8000", thinking: false}
    aggregate: {scenarios: 40, passed: 37, partial: 2, failed: 1, points: 76, max_points: 80,
                quality: 95.0, responsiveness: 91.2, deployability: 93.9}
concurrency:
  description: The sweep (C(meta) and C(levels[]) with the published table's columns); null without a sweep.
  returned: success, not in check mode
  type: dict
table:
  description: The console table of the run, line by line.
  returned: success, not in check mode
  type: list
  elements: str
gate:
  description: >-
    passed, minimums, below ([{score, value, minimum}]), regressed ([{id, was, now, reason}]
    against the baseline), baseline (its path or null), msg (why it failed, naming the scenarios).
  returned: success, not in check mode
  type: dict
scenarios:
  description: Ids of the scenarios selected (and validated).
  returned: always
  type: list
  elements: str
skipped:
  description: True in check mode (nothing was sent).
  returned: always
  type: bool
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url

from ansible_collections.dgxspark.cluster.plugins.module_utils.eval import (
    client as eval_client, report, runner, scenarios as eval_scenarios)
from ansible_collections.dgxspark.cluster.plugins.module_utils.eval.errors import (
    EndpointError, EvalInputError, ScenarioError)


def transport(validate_certs):
    def send(url, data, headers, timeout):
        return open_url(url, data=data, headers=headers, timeout=timeout,
                        method="POST" if data is not None else "GET",
                        validate_certs=validate_certs)
    return send


def _check_sweep(p):
    for level in p["concurrency"]:
        if not 1 <= level <= 64:
            raise EvalInputError("concurrency", p["concurrency"], "levels are from 1 to 64",
                                 "give levels such as [1, 2, 4, 8]")
    if p["concurrency_scenarios"] < 1:
        raise EvalInputError("concurrency_scenarios", p["concurrency_scenarios"],
                             "must be at least 1", "give how many scenarios each level runs")


def main():
    module = AnsibleModule(
        argument_spec=dict(
            api_url=dict(type="str", required=True),
            model=dict(type="str", default=""),
            api_key=dict(type="str", default="", no_log=True),
            validate_certs=dict(type="bool", default=True),
            scenario_dirs=dict(type="list", elements="path", required=True),
            select=dict(type="list", elements="str", default=[]),
            max_tokens=dict(type="int", default=1024, no_log=False),
            temperature=dict(type="float", default=0.0),
            thinking=dict(type="bool", default=False),
            extra_body=dict(type="dict", default={}),
            wall_timeout=dict(type="int", default=180),
            stream=dict(type="bool", default=True),
            concurrency=dict(type="list", elements="int", default=[]),
            concurrency_scenarios=dict(type="int", default=12),
            min_scores=dict(type="dict", default={}),
            baseline=dict(type="path", default=""),
            label=dict(type="str", default=""),
            note=dict(type="str", default=""),
            lab=dict(type="bool", default=False),
            context=dict(type="dict", default={}),
            transcripts=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        settings = runner.Settings(p["max_tokens"], p["temperature"], p["thinking"],
                                   p["extra_body"], p["wall_timeout"], p["transcripts"])
        minimums = report.check_minimums(p["min_scores"])
        _check_sweep(p)
        loaded = eval_scenarios.load(p["scenario_dirs"], p["select"])
    except (EvalInputError, ScenarioError) as exc:
        module.fail_json(msg=str(exc))
    ids = [s.id for s in loaded.scenarios]
    if module.check_mode:
        module.exit_json(changed=False, skipped=True, scenarios=ids,
                         msg="check mode: %d scenarios valid, no request sent" % len(ids))

    chat = eval_client.ChatClient(p["api_url"], p["model"], transport(p["validate_certs"]),
                                  api_key=p["api_key"], stream=p["stream"])
    try:
        served = chat.models()
    except EndpointError as exc:
        module.fail_json(msg="no usable OpenAI API: %s. Fix: start the cluster (site.yml --tags "
                         "cluster) or point api_url (eval_api_url) at a running endpoint"
                         % exc, scenarios=ids)
    names = [m["id"] for m in served]
    if not p["model"]:
        if not names:
            module.fail_json(msg="%s/v1/models lists no model. Fix: set model" % chat.url)
        chat.model = names[0]
    elif p["model"] not in names:
        module.fail_json(msg="model=%r is not served at %s (it serves: %s). Fix: set model "
                         "(eval_model) to the served name" % (p["model"], chat.url,
                                                              ", ".join(names) or "nothing"))
    max_model_len = next((m["max_model_len"] for m in served if m["id"] == chat.model), None)

    try:
        baseline_path, baseline = report.find_baseline(p["baseline"], chat.model, p["lab"])
    except EvalInputError as exc:
        module.fail_json(msg=str(exc))
    utc = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    run_meta = report.meta(chat.model, chat.url, utc, settings, loaded, label=p["label"],
                           note=p["note"], lab=p["lab"], context=p["context"],
                           max_model_len=max_model_len)
    outcomes = runner.run_set(loaded.scenarios, chat, settings)
    doc = report.document(outcomes, run_meta)
    sweep = None
    if p["concurrency"]:
        subset = eval_scenarios.spread(loaded.scenarios, p["concurrency_scenarios"])
        rows = []
        for level in p["concurrency"]:
            level_outcomes, wall = runner.run_concurrently(subset, chat, settings, level)
            rows.append(report.level_row(level, level_outcomes, wall))
        sweep = report.concurrency_document(run_meta, [s.id for s in subset], rows)
    gate = report.gate(doc, minimums, baseline, baseline_path)
    module.exit_json(changed=False, skipped=False, scenarios=ids, eval=doc, concurrency=sweep,
                     table=report.table(doc, sweep, gate), gate=gate)


if __name__ == "__main__":
    main()
