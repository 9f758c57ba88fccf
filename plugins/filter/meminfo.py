# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Filter: /proc/meminfo text to a dict of kB values."""
from __future__ import annotations


def meminfo(text):
    out = {}
    for line in (text or "").splitlines():
        if ":" not in line:
            continue
        key, value = line.split(":", 1)
        parts = value.split()
        if parts and parts[0].isdigit():
            out[key.strip()] = int(parts[0])
    return out


class FilterModule(object):
    def filters(self):
        return {"meminfo": meminfo}
