# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""The vllm_plan module's options and result (its module and its action plugin share them;
module_utils/controller.py)."""
from __future__ import annotations

from .engine import evaluate, suggest
from .errors import ModelConfigError, PlanInputError, returned
from .report import render, render_suggestions
from .request import OPTIONS, argument_spec


def module_argument_spec():
    """The plan options' spec (from the one list of plan options, request.py) and the
    module's own options."""
    spec = argument_spec()
    # No plan option is a secret; saying so answers Ansible's secret-name heuristic, which
    # would otherwise flag names with "token" in them (max_num_batched_tokens).
    for entry in spec.values():
        entry["no_log"] = False
    spec.update(plan=dict(type="dict"), suggest=dict(type="bool", default=False),
                fail_on_violations=dict(type="bool", default=True))
    return spec


ARGUMENT_SPEC = module_argument_spec()


def compute(params):
    """The vllm_plan module's result for its ``params``."""
    options = dict((name, params[name]) for name in OPTIONS)
    options.update(params["plan"] or {})
    try:
        result = evaluate(options)
        rows = suggest(options) if params["suggest"] else None
    except PlanInputError as exc:
        return {"failed": True, "msg": str(exc), "option": returned(exc.option),
                "value": returned(exc.value), "fix": exc.fix}
    except ModelConfigError as exc:
        return {"failed": True, "msg": str(exc), "option": "model_config",
                "config_path": exc.path, "field": exc.field, "fix": exc.fix}
    result["report"] = render(result)
    # Findings that are not violations become task warnings (Ansible returns them as
    # `warnings`); the structured findings stay in `warning_details`.
    result["warning_details"] = result.pop("warnings")
    result["warnings"] = ["[%s] %s (hint: %s)" % (item["rule"], item["message"], item["fix"])
                          for item in result["warning_details"]]
    if rows is not None:
        result["suggestions"] = rows
        result["suggestions_report"] = render_suggestions(rows)
    result["changed"] = False
    if not result["satisfiable"] and params["fail_on_violations"]:
        lines = ["[%s] %s -- fix: %s" % (v["rule"], v["message"], v["fix"])
                 for v in result["violations"]]
        result.update(failed=True, msg="the vLLM plan is not satisfiable (%d violation%s):\n- %s" % (
            len(lines), "" if len(lines) == 1 else "s", "\n- ".join(lines)))
    return result
