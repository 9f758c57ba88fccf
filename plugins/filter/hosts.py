# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Filters of the host checks (every decision is in module_utils/findings/hosts.py)."""
from __future__ import annotations

from ansible_collections.dgxspark.cluster.plugins.module_utils.findings import hosts


def socket_interface_findings(env, ip_json, node):
    return hosts.socket_interfaces(node, env or {}, ip_json)


def model_parity_findings(manifests, model_dir, nodes):
    """``manifests``: node -> model_manifest result."""
    return hosts.model_parity(model_dir, list(nodes), dict(manifests or {}))


def preflight_findings(nodes, facts, settings):
    """``facts``: node -> node_facts result; ``settings``: see findings.hosts.preflight."""
    return hosts.preflight(list(nodes), dict(facts or {}), dict(settings or {}))


def hca_findings(env, selection, node):
    return hosts.planned_hca(node, env or {}, selection or {})


class FilterModule(object):
    def filters(self):
        return {"socket_interface_findings": socket_interface_findings,
                "model_parity_findings": model_parity_findings,
                "preflight_findings": preflight_findings, "hca_findings": hca_findings}
