# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Filters of the memory guard and the memory ledger (logic in module_utils/memory.py)."""
from __future__ import annotations

from ansible_collections.dgxspark.cluster.plugins.module_utils import memory
from ansible_collections.dgxspark.cluster.plugins.plugin_utils.filters import named, need


@named("earlyoom_argv")
def earlyoom_argv(settings, binary="/usr/bin/earlyoom"):
    settings = need("_input", settings, dict, "give the memory guard's settings (mem_term_kib, "
                                              "mem_kill_kib, ...)")
    return memory.earlyoom_argv(settings, need("binary", binary, str, "give earlyoom's path"))


@named("memory_ledger")
def memory_ledger(nodes, reads, settings=None):
    nodes = need("_input", nodes, list, "give the cluster's nodes, head first")
    reads = need("reads", reads, dict, "give node name -> the memory_ledger module's memory")
    for node in nodes:
        if reads.get(node) is not None:
            need("reads.%s" % node, reads[node], dict, "give the memory_ledger module's memory")
    settings = need("settings", settings or {}, dict, "give {floor_gib, lab}")
    return memory.ledgers(nodes, reads, settings)


@named("memory_ledger_lines")
def memory_ledger_lines(ledger):
    return memory.ledger_lines(need("_input", ledger, dict, "give the memory_ledger filter's "
                                                            "result"))


class FilterModule(object):
    def filters(self):
        return {"earlyoom_argv": earlyoom_argv, "memory_ledger": memory_ledger,
                "memory_ledger_lines": memory_ledger_lines}
