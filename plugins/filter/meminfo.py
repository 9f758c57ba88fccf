# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Filter: /proc/meminfo text to a dict of kB values."""
from __future__ import annotations


from ansible_collections.dgxspark.cluster.plugins.plugin_utils.filters import named, need


@named("meminfo")
def meminfo(text):
    out = {}
    for line in need("_input", text or "", str, "pass the text of /proc/meminfo").splitlines():
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
