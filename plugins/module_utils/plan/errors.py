# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Errors raised by the plan engine for input it cannot work with.

Violations of vLLM's rules are not exceptions: they are collected and returned
(see ``rules.Violation``). These exceptions are for input that is malformed,
so the engine cannot even evaluate a plan; each names the offending option or
config field, the value seen and what to do.
"""
from __future__ import annotations


class PlanInputError(ValueError):
    """A plan option is missing, of the wrong type or out of range."""

    def __init__(self, option, value, problem, fix):
        self.option = option
        self.value = value
        self.problem = problem
        self.fix = fix
        super().__init__(
            "%s=%r: %s. Fix: %s" % (option, value, problem, fix)
        )


class ModelConfigError(ValueError):
    """The model's config.json lacks a field the plan engine needs, or is unreadable."""

    def __init__(self, path, field, problem, fix=None):
        self.path = path
        self.field = field
        self.problem = problem
        self.fix = fix or (
            "use the model's own config.json from its Hugging Face snapshot, "
            "or add the field '%s' to it" % field
        )
        super().__init__(
            "model config %s: field '%s' %s. Fix: %s" % (path, field, problem, self.fix)
        )
