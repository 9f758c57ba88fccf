# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""What every filter of the collection shares: its errors name the filter, the argument, the
value and the fix (never a raw Python message such as "float division by zero")."""
from __future__ import annotations

import functools

from ansible.errors import AnsibleFilterError

_KINDS = {str: "text", list: "a list", dict: "a dict", int: "an integer"}


def named(name):
    """Turn the domain's ValueErrors (which name the variable, the value and the fix) into
    AnsibleFilterErrors that also name the filter ``dgxspark.cluster.<name>``."""
    def wrap(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except ValueError as exc:
                raise AnsibleFilterError("dgxspark.cluster.%s: %s" % (name, exc))
        return run
    return wrap


def need(variable, value, kind, fix):
    """``value`` if it is of ``kind`` (str, list, dict or int), else a ValueError naming it."""
    if kind is list and isinstance(value, tuple):
        return list(value)
    if isinstance(value, kind) and not isinstance(value, bool):
        return value
    text = repr(value)
    raise ValueError("%s=%s: must be %s. Fix: %s" % (
        variable, text if len(text) <= 120 else text[:120] + "...", _KINDS[kind], fix))
