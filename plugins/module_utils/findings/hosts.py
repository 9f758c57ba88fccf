# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Checks of the nodes before a launch, from what the nodes report.

``model_parity``: the model directory exists on every node and its manifest (files, sizes,
hashes: module_utils/model_manifest.py) equals the head's.

``socket_interfaces``: the interfaces the node's environment names for NCCL's and Gloo's
sockets (``NCCL_SOCKET_IFNAME``, ``GLOO_SOCKET_IFNAME``) exist on the node and carry the
node's ``VLLM_HOST_IP``. The ranks bind their sockets to that interface and advertise
``VLLM_HOST_IP`` to the others: when the two disagree (a wrong interface, an interface whose
address is gone, a 169.254 link-local fallback) the ranks cannot rendezvous, and vLLM only
hangs or times out minutes into the launch.
"""
from __future__ import annotations

import json

from ..model_manifest import differences

SOCKET_VARIABLES = ("GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME")


def interfaces(ip_json):
    """``ip -j addr show`` -> {interface: [IPv4 addresses]} (also accepts the parsed list)."""
    data = json.loads(ip_json) if isinstance(ip_json, str) else ip_json
    out = {}
    for link in data or []:
        name = link.get("ifname")
        if not name:
            continue
        out[name] = [a.get("local") for a in link.get("addr_info") or []
                     if a.get("family") == "inet" and a.get("local")]
    return out


def socket_interfaces(node, env, ip_json):
    """Findings (strings) for ``node``: empty when every named socket interface carries
    ``VLLM_HOST_IP``."""
    try:
        links = interfaces(ip_json)
    except (TypeError, ValueError):
        return ["%s: could not read its interfaces (ip -j addr show): %s"
                % (node, str(ip_json)[:120])]
    host_ip = env.get("VLLM_HOST_IP")
    findings = []
    if not host_ip:
        findings.append("%s: VLLM_HOST_IP is not set in the node's environment: run the fabric "
                        "role (it records the node's fabric identity address)" % node)
        return findings
    for variable in SOCKET_VARIABLES:
        value = env.get(variable)
        if not value:
            continue
        # NCCL accepts a comma list and prefixes (^ excludes, = exact); check the plain names
        names = [n.lstrip("=") for n in str(value).split(",") if n and not n.startswith("^")]
        carrying = [n for n in names if host_ip in links.get(n, [])]
        if carrying:
            continue
        missing = [n for n in names if n not in links]
        if missing:
            what = "does not exist on %s" % node
        else:
            what = "does not carry VLLM_HOST_IP %s on %s (it has %s)" % (
                host_ip, node, ", ".join(a for n in names for a in links.get(n, [])) or "no "
                "IPv4 address")
        owner = [n for n, addrs in sorted(links.items()) if host_ip in addrs]
        findings.append(
            "%s: %s=%s %s: the ranks would bind their sockets there and advertise %s, and the "
            "other nodes could not reach them. Set %s to %s (re-run the fabric role, which "
            "writes the node's environment), or fix the override that changed it"
            % (node, variable, value, what, host_ip, variable,
               owner[0] if owner else "the interface that carries %s" % host_ip))
    return findings


def model_parity(model_dir, nodes, manifests):
    """Findings for the model directory on every node against the head's (``nodes[0]``).

    ``manifests``: node -> the model_manifest module's result (``exists``, ``manifest``)."""
    findings = []
    head = nodes[0] if nodes else None
    absent = [n for n in nodes if not (manifests.get(n) or {}).get("exists")]
    for node in absent:
        findings.append("%s: no model directory %s: copy the head's model directory to every node "
                        "(the same path), or set dgxspark_model_dir" % (node, model_dir))
    if head in absent:
        return findings
    reference = manifests[head]["manifest"]
    if "config.json" not in (reference.get("files") or {}):
        findings.append("%s: %s has no config.json: is it a Hugging Face model directory?"
                        % (head, model_dir))
    for node in nodes[1:]:
        if node in absent:
            continue
        diff = differences(reference, manifests[node]["manifest"])
        if diff:
            findings.append("%s: %s differs from the head's (%s): %s. Copy the head's directory "
                            "to %s (every rank loads its shard from its own node's copy)"
                            % (node, model_dir, head, "; ".join(diff), node))
    return findings
