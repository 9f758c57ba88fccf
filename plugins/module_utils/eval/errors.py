# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Errors for input the evaluation cannot work with; each names what is wrong and the fix.

A model that answers badly is not an error: it gets a FAIL verdict with a reason.
"""
from __future__ import annotations


class EvalInputError(ValueError):
    """An option of the run is missing, of the wrong type or out of range."""

    def __init__(self, option, value, problem, fix):
        self.option = option
        self.value = value
        self.problem = problem
        self.fix = fix
        super().__init__("%s=%r: %s. Fix: %s" % (option, value, problem, fix))


class ScenarioError(ValueError):
    """A scenario file, a scenario or a tool definition is malformed."""

    def __init__(self, path, scenario, field, problem, fix):
        self.path = path
        self.scenario = scenario
        self.field = field
        self.problem = problem
        self.fix = fix
        where = str(path)
        if scenario:
            where += ": scenario '%s'" % scenario
        if field:
            where += ": field '%s'" % field
        super().__init__("%s: %s. Fix: %s" % (where, problem, fix))


class EndpointError(RuntimeError):
    """The endpoint cannot be used at all (unreachable, wrong key, model not served)."""
