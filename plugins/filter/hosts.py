# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Filters of the host checks (every decision is in module_utils/findings/hosts.py)."""
from __future__ import annotations

from ansible_collections.dgxspark.cluster.plugins.module_utils.findings import hosts
from ansible_collections.dgxspark.cluster.plugins.plugin_utils.filters import named, need


@named("socket_interface_findings")
def socket_interface_findings(env, ip_json, node):
    env = need("_input", env, dict, "give the node's environment (variable to value)")
    if not isinstance(ip_json, (str, list, dict)):
        need("ip_json", ip_json, dict, "give the output of ip -j addr show, or node_facts' "
                                       "addresses")
    return hosts.socket_interfaces(need("node", node, str, "give the node's name"), env, ip_json)


@named("model_parity_findings")
def model_parity_findings(manifests, model_dir, nodes):
    manifests = need("_input", manifests, dict, "give node name -> model_manifest result")
    nodes = need("nodes", nodes, list, "give the nodes, head first")
    for node in nodes:
        result = manifests.get(node)
        if result is not None and not isinstance(result, dict):
            need("_input.%s" % node, result, dict, "give the model_manifest module's result")
    return hosts.model_parity(need("model_dir", model_dir, str, "give the model directory"),
                              nodes, manifests)


@named("preflight_findings")
def preflight_findings(nodes, facts, settings):
    """``facts``: node -> node_facts result; ``settings``: see findings.hosts.preflight."""
    nodes = need("_input", nodes, list, "give the nodes, head first")
    if not nodes:
        raise ValueError("_input=[]: no nodes. Fix: list the Sparks in the group sparks")
    facts = need("facts", facts, dict, "give node name -> node_facts result")
    settings = need("settings", settings, dict, "give the preflight settings")
    for key in ("min_kernel", "min_driver", "mem_floor_gib", "model_dir", "fallback_model_config"):
        if key not in settings:
            raise ValueError("settings.%s is missing. Fix: give it (see the preflight role)" % key)
    return hosts.preflight(nodes, facts, settings)


@named("nccl_findings")
def nccl_findings(nodes, facts, topology="", min_version="2.30"):
    """The NCCL gate for the image the head holds: ``facts`` node -> node_facts result."""
    nodes = need("_input", nodes, list, "give the nodes, head first")
    if not nodes:
        raise ValueError("_input=[]: no nodes. Fix: list the Sparks in the group sparks")
    facts = need("facts", facts, dict, "give node name -> node_facts result")
    topology = need("topology", topology or "", str, "give the fabric topology, or \"\"")
    return hosts.nccl_findings(nodes, facts, topology, str(min_version))


@named("hca_findings")
def hca_findings(env, selection, node):
    env = need("_input", env, dict, "give the node's planned NCCL environment")
    selection = need("selection", selection or {}, dict, "give rdma_facts' selection")
    return hosts.planned_hca(need("node", node, str, "give the node's name"), env, selection)


@named("padding_findings")
def padding_findings(engine_padding, plan_padding, model_config):
    if engine_padding is not None:
        need("_input", engine_padding, dict, "give the engine's hf_overrides padding, or none")
    if plan_padding is not None:
        need("plan_padding", plan_padding, dict, "give vllm_plan's padding result")
    return hosts.padding_agreement(engine_padding, plan_padding, str(model_config))


class FilterModule(object):
    def filters(self):
        return {"socket_interface_findings": socket_interface_findings,
                "model_parity_findings": model_parity_findings,
                "preflight_findings": preflight_findings, "hca_findings": hca_findings,
                "padding_findings": padding_findings,
                "nccl_findings": nccl_findings}
