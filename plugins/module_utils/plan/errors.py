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

SHOWN_CHARS = 120


def shown(value, limit=SHOWN_CHARS):
    """``repr(value)`` for a message, cut to ``limit`` characters.

    Never raises: an integer beyond Python's digit limit for ``repr`` (4300 digits) is
    described by its size, so the error about it can still be written.
    """
    try:
        text = repr(value)
    except ValueError:
        text = "<an integer of %d bits>" % value.bit_length() if isinstance(value, int) \
            else "<%s>" % type(value).__name__
    except Exception:  # a value whose repr fails is described by its type
        text = "<%s>" % type(value).__name__
    if len(text) > limit:
        text = "%s... (%d characters)" % (text[:limit], len(text))
    return text


def returned(value):
    """``value`` as a module may return it: itself when small and JSON-safe, else ``shown``."""
    if value is None or isinstance(value, (bool, float)):
        return value
    if isinstance(value, int) and abs(value) < 2 ** 63:
        return value
    if isinstance(value, str) and len(value) <= SHOWN_CHARS:
        return value
    return shown(value)


class InputError(ValueError):
    """Input the code cannot work with: names the variable, the value and the fix.

    The message is ``VARIABLE=VALUE: PROBLEM. Fix: FIX`` with the value cut short (``shown``).
    """

    def __init__(self, variable, value, problem, fix):
        self.variable = variable
        self.value = value
        self.problem = problem
        self.fix = fix
        super().__init__("%s=%s: %s. Fix: %s" % (variable, shown(value), problem, fix))


class PlanInputError(InputError):
    """A plan option is missing, of the wrong type or out of range (``option`` names it)."""

    def __init__(self, option, value, problem, fix):
        super().__init__(option, value, problem, fix)
        self.option = option


class ModelConfigError(ValueError):
    """The model's config.json lacks a field the plan engine needs, or is unreadable.

    ``field`` is None when the file itself is the problem (missing, a directory, too big,
    not JSON); the message then speaks of the file, not of a field.
    """

    def __init__(self, path, field, problem, fix=None):
        self.path = path
        self.field = field
        self.problem = problem
        if field is None:
            self.fix = fix or "point model_config at the model directory or its config.json"
            message = "model config %s: %s. Fix: %s" % (path, problem, self.fix)
        else:
            self.fix = fix or (
                "use the model's own config.json from its Hugging Face snapshot, "
                "or add the field '%s' to it" % field
            )
            message = "model config %s: field '%s' %s. Fix: %s" % (path, field, problem,
                                                                   self.fix)
        super().__init__(message)
