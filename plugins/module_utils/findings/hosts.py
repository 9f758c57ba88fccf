# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Checks of the nodes before a launch, from what the nodes report.

``preflight``: the read-only host checks of site.yml's preflight stage (node count, kernel,
GPU driver, MemAvailable floor, the model directory, the image on the nodes) and what the plan
is proven with (the head's config.json or the bundled profile; the image's patches and build
profile).

``model_parity``: the model directory exists on every node and its manifest (files, sizes,
hashes: module_utils/model_manifest.py) equals the head's.

``nccl_gate``: the NCCL the image really loads (its ``dgxspark.nccl_version`` label, read at
build time through the engine's own library path) against what the cabling needs: the ring
topologies set ``NCCL_IB_SUBNET_AWARE_ROUTING=1``, which needs NCCL 2.30 or newer (or NVIDIA's
ring branch); an older one shows up only as a hang or ``ibv_modify_qp`` error 110 minutes
into a boot. An image without NCCL (the lab's CPU engine) is reported and skipped.

``socket_interfaces``: the interfaces the node's environment names for NCCL's and Gloo's
sockets (``NCCL_SOCKET_IFNAME``, ``GLOO_SOCKET_IFNAME``) exist on the node and carry the
node's ``VLLM_HOST_IP``. The ranks bind their sockets to that interface and advertise
``VLLM_HOST_IP`` to the others: when the two disagree (a wrong interface, an interface whose
address is gone, a 169.254 link-local fallback) the ranks cannot rendezvous, and vLLM only
hangs or times out minutes into the launch.
"""
from __future__ import annotations


from ..model_manifest import differences
from ..nccl import DETAIL_LABEL, NONE, VERSION_LABEL, version_tuple
from ..node import addresses
from ..plan.errors import InputError

SOCKET_VARIABLES = ("GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME")


def interfaces(ip_json):
    """``ip -j addr show`` (text or parsed), or node_facts' addresses (already
    {interface: [IPv4 addresses]}) -> {interface: [IPv4 addresses]}."""
    if isinstance(ip_json, dict):
        return dict((str(k), list(v or [])) for k, v in ip_json.items())
    return addresses(ip_json)


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


RING_TOPOLOGIES = ("ring3", "ring4")


def nccl_needs(topology, fabric_envs):
    """Why the fabric needs a recent NCCL, or None: a ring topology (``topology``, or a node's
    fabric record) or a node environment with NCCL_IB_SUBNET_AWARE_ROUTING=1."""
    if topology in RING_TOPOLOGIES:
        return "the %s topology sets NCCL_IB_SUBNET_AWARE_ROUTING=1" % topology
    for node, env in sorted((fabric_envs or {}).items()):
        if str((env or {}).get("NCCL_IB_SUBNET_AWARE_ROUTING", "")).strip() == "1":
            return "%s's fabric environment sets NCCL_IB_SUBNET_AWARE_ROUTING=1" % node
    return None


def nccl_gate(image, topology, fabric_envs, min_version="2.30"):
    """``{"lines", "failures"}`` for the NCCL of ``image`` (a node's image record: ``ref``,
    ``labels``) on a fabric of ``topology`` whose nodes have ``fabric_envs`` (node -> env)."""
    minimum = version_tuple(min_version)
    if minimum is None:
        raise InputError("preflight_nccl_min_version", min_version, "is not a version",
                         "give the oldest NCCL a ring accepts, e.g. 2.30")
    image = image if isinstance(image, dict) else {}
    ref = image.get("ref") or "the image"
    labels = image.get("labels") or {}
    version = labels.get(VERSION_LABEL)
    detail = labels.get(DETAIL_LABEL) or "no detail"
    needs = nccl_needs(topology, fabric_envs)
    fix = ("use a base image whose NCCL is %s or newer (vllm_image_base), or point "
           "VLLM_NCCL_SO_PATH / LD_PRELOAD (dgxspark_env) at such a build, and rebuild the image "
           "(--tags image); an image with NVIDIA's dgxspark-3node-ring NCCL branch reports an "
           "older version: then lower preflight_nccl_min_version to it" % min_version)
    if not image.get("id") and not image.get("ref"):
        text = "nccl: no image recorded on the nodes yet"
        return {"lines": [text], "failures": [text + ": run the image stage (--tags image)"]
                if needs else []}
    if version is None:
        text = ("nccl: %s carries no %s label (built before the NCCL check, or not by the "
                "vllm_image role)" % (ref, VERSION_LABEL))
        if needs:
            return {"lines": [], "failures": [text + ": %s, and its NCCL cannot be checked. "
                                              "Rebuild it (--tags image)" % needs]}
        return {"lines": [text + "; the fabric needs no minimum NCCL"], "failures": []}
    if version == NONE:
        return {"lines": ["nccl: %s loads no NCCL (%s): %s, checked only for an engine that "
                          "uses NCCL -- skipped (an engine without NCCL, such as the simulated "
                          "lab's CPU build, talks Gloo)"
                          % (ref, detail, "the NCCL %s minimum of a ring" % min_version
                             if needs else "no minimum applies")], "failures": []}
    found = version_tuple(version)
    if found is None:
        return {"lines": [], "failures": ["nccl: %s has %s=%s, which is not a version: rebuild "
                                          "it (--tags image)" % (ref, VERSION_LABEL, version)]}
    if not needs:
        return {"lines": ["nccl: %s loads NCCL %s (%s); the fabric needs no minimum"
                          % (ref, version, detail)], "failures": []}
    if found < minimum:
        return {"lines": [], "failures": [
            "nccl: %s loads NCCL %s (%s), but %s, which needs NCCL %s or newer: the ring would "
            "hang or fail with ibv_modify_qp error 110 minutes into the boot. Fix: %s"
            % (ref, version, detail, needs, min_version, fix)]}
    return {"lines": ["nccl: %s loads NCCL %s (%s), at least %s as %s needs"
                      % (ref, version, detail, min_version, needs)], "failures": []}


def model_state(nodes, settings):
    """(lines, failures) about the model: the nodes' copies (``model_findings``, model_parity's)
    and the head's checkpoint (``checkpoint_findings``, the model_checkpoint module's
    findings: dicts with ``severity``, ``message``, ``fix``).

    What the model stage of this run puts right is reported, not failed: with ``model_stage``
    (the stage runs) it copies the head's model to every worker, and with ``model_source``
    (the recipe declares where the weights come from) it also fetches and assembles the
    head's checkpoint. A checkpoint warning is a line; an error fails otherwise."""
    model_dir = settings["model_dir"]
    parity = list(settings.get("model_findings") or [])
    checks = [f for f in settings.get("checkpoint_findings") or [] if isinstance(f, dict)]
    errors = ["%s -- fix: %s" % (f.get("message"), f.get("fix")) for f in checks
              if f.get("severity") == "error"]
    warnings = ["model: warning: %s -- fix: %s" % (f.get("message"), f.get("fix"))
                for f in checks if f.get("severity") != "error"]
    stage = bool(settings.get("model_stage"))
    source = bool(settings.get("model_source"))
    head_ready = bool(settings.get("head_has_config"))
    lines, failures = list(warnings), []
    if stage and (source or head_ready):
        what = ("fetches and assembles the checkpoint on %s and " % nodes[0] if source else "")
        pending = parity + (errors if source else [])
        if not source:
            failures += errors
        if pending:
            lines.append("model: the model stage %scopies it to every node; now: %s"
                         % (what, " | ".join(pending)))
        else:
            lines.append("model: the same %s on %d node(s); the model stage keeps it so"
                         % (model_dir, len(nodes)))
        return lines, failures
    failures += parity + errors
    if not parity and not errors:
        lines.append("model: the same %s on %d node(s)%s" % (
            model_dir, len(nodes), ", the head's checkpoint complete"
            if settings.get("checkpoint_findings") is not None else ""))
    return lines, failures


def _version(text):
    parts = []
    for item in str(text).replace("-", ".").split("."):
        digits = "".join(c for c in item if c.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def memory_guard_lines(node, fact):
    """What the node's memory guard is and the last kill it handled (information only)."""
    guard = (fact.get("records") or {}).get("memory_guard")
    if not isinstance(guard, dict) or guard.get("error"):
        return ["%s: no memory guard recorded (%s): the prune stage installs it (memory_guard "
                "role)" % (node, (guard or {}).get("error") or "none")]
    out = ["%s: memory guard: earlyoom %s" % (node, " ".join(guard.get("argv") or [])[:300])]
    kill = fact.get("memory_guard_last_kill")
    if isinstance(kill, dict) and kill.get("name"):
        out.append("%s: the memory guard's last kill: earlyoom killed %s (pid %s) at %s%s"
                   % (node, kill.get("name"), kill.get("pid"), kill.get("time"),
                      "; stopped %s" % ", ".join(kill["stopped"]) if kill.get("stopped")
                      else ""))
    return out


def _recorded_topology(nodes, facts):
    for node in nodes:
        fabric = ((facts.get(node) or {}).get("records") or {}).get("fabric") or {}
        if fabric.get("topology"):
            return fabric["topology"]
    return ""


def _fabric_envs(nodes, facts):
    return dict((n, (((facts.get(n) or {}).get("records") or {}).get("fabric") or {}).get("env")
                 or {}) for n in nodes)


def nccl_findings(nodes, facts, topology, min_version):
    """The NCCL gate for the image the head holds (after the image stage)."""
    head = nodes[0]
    image = ((facts.get(head) or {}).get("records") or {}).get("image") or {}
    return nccl_gate(image, topology or _recorded_topology(nodes, facts),
                     _fabric_envs(nodes, facts), min_version)


def preflight(nodes, facts, settings):
    """The preflight stage's host findings.

    ``nodes``: the sparks, head first. ``facts``: node -> node_facts result (``node``).
    ``settings``: ``plan_nodes``, ``min_kernel``, ``require_gpu``, ``min_driver``,
    ``mem_floor_gib``, ``model_dir``, ``model_findings`` (model_parity's), ``head_has_config``,
    ``fallback_model_config``, ``image_stage`` (the image stage runs in this run),
    ``declared_patches`` and ``declared_build`` (the image the recipe declares),
    ``fabric_topology`` (empty: the nodes' fabric records say) and ``nccl_min_version``;
    ``checkpoint_findings``, ``model_stage`` and ``model_source`` (see ``model_state``).
    Returns ``lines``, ``failures``, ``model_config`` (``head`` or the fallback's path),
    ``image_patches`` and ``image_build`` (what the plan is proven with)."""
    lines, failures = [], []
    plan_nodes = int(settings.get("plan_nodes") or len(nodes))
    if len(nodes) != plan_nodes:
        failures.append(
            "nodes: the plan needs %d Sparks but the group sparks has %d (%s): list %d hosts in "
            "the inventory group sparks, or set dgxspark_plan's nodes (and the parallel sizes) "
            "for %d" % (plan_nodes, len(nodes), ", ".join(nodes), plan_nodes, len(nodes)))
    else:
        lines.append("nodes: %s (head %s)" % (", ".join(nodes), nodes[0]))
    for node in nodes:
        fact = facts.get(node) or {}
        kernel = fact.get("kernel") or "unknown"
        if _version(kernel) < _version(settings["min_kernel"]):
            failures.append("%s: kernel %s is older than preflight_min_kernel %s: update the OS "
                            "(DGX OS) or lower preflight_min_kernel" % (node, kernel,
                                                                        settings["min_kernel"]))
        gpu = fact.get("gpu")
        if settings.get("require_gpu", True):
            if not gpu:
                failures.append("%s: nvidia-smi reports no GPU (%s): install the NVIDIA driver "
                                "(or set preflight_require_gpu: false for a simulated node)"
                                % (node, fact.get("gpu_error") or "not installed"))
            elif _version(gpu.get("driver")) < _version(settings["min_driver"]):
                failures.append("%s: GPU driver %s is older than preflight_min_driver %s: update "
                                "the driver" % (node, gpu.get("driver"), settings["min_driver"]))
        mem = (fact.get("memory_kib") or {}).get("MemAvailable") or 0
        mem_gib = mem / 1048576.0
        if mem_gib < float(settings["mem_floor_gib"]):
            failures.append("%s: MemAvailable %.1f GiB is below preflight_mem_available_floor_gib "
                            "%s: stop what uses the memory (the os_prune role, a stale vLLM) "
                            "before launching" % (node, mem_gib, settings["mem_floor_gib"]))
        lines.append("%s: kernel %s, GPU %s, MemAvailable %.1f GiB"
                     % (node, kernel, ("%s %s" % (gpu["name"], gpu["driver"])) if gpu else "none",
                        mem_gib))
        lines += memory_guard_lines(node, fact)
    model_lines, model_failures = model_state(nodes, settings)
    lines += model_lines
    failures += model_failures
    on_head = bool(settings.get("head_has_config"))
    model_config = "head" if on_head else settings["fallback_model_config"]
    lines.append("plan check uses %s" % ("the head's config.json" if on_head
                                         else "the bundled profile %s" % model_config))
    images = dict((n, ((facts.get(n) or {}).get("records") or {}).get("image") or {})
                  for n in nodes)
    ids = dict((n, img.get("id")) for n, img in images.items() if img.get("id"))
    declared_patches = sorted(settings.get("declared_patches") or [])
    declared_build = settings.get("declared_build")
    if settings.get("image_stage"):
        lines.append("image: the image stage builds %s with patches %s and gives every node the "
                     "same image" % (declared_build, ", ".join(declared_patches) or "none"))
        lines.append("nccl: checked right after the image stage has built the image (its "
                     "%s label)" % VERSION_LABEL)
        return {"lines": lines + failures, "failures": failures, "model_config": model_config,
                "image_patches": declared_patches, "image_build": declared_build}
    if len(set(ids.values())) > 1 or (ids and len(ids) < len(nodes)):
        failures.append("image: nodes hold different images (%s): run the image stage (--tags "
                        "image) so that every node has the identical image"
                        % ", ".join("%s=%s" % (n, (ids.get(n) or "none")[:19]) for n in nodes))
    head_image = images.get(nodes[0]) or {}
    labels = head_image.get("labels") or {}
    if not head_image.get("id"):
        failures.append("image: %s holds no image of the vllm_image role: run the image stage "
                        "(--tags image)" % nodes[0])
        return {"lines": lines + failures, "failures": failures, "model_config": model_config,
                "image_patches": declared_patches, "image_build": declared_build}
    patches = sorted(p for p in str(labels.get("dgxspark.patches", "")).split(",") if p)
    build = labels.get("dgxspark.vllm_build") or declared_build
    if patches != declared_patches or build != declared_build:
        failures.append("image: %s on the nodes carries patches %s and build profile %s, the "
                        "recipe declares %s and %s: run the image stage (--tags image) to build "
                        "the declared image" % (head_image.get("ref", "the image"),
                                                ", ".join(patches) or "none", build,
                                                ", ".join(declared_patches) or "none",
                                                declared_build))
    else:
        lines.append("image: every node has %s (patches %s, build profile %s)"
                     % (head_image.get("ref", "?"), ", ".join(patches) or "none", build))
    gate = nccl_gate(head_image, settings.get("fabric_topology") or _recorded_topology(nodes, facts),
                     _fabric_envs(nodes, facts), settings.get("nccl_min_version") or "2.30")
    lines += gate["lines"]
    failures += gate["failures"]
    return {"lines": lines + failures, "failures": failures, "model_config": model_config,
            "image_patches": patches, "image_build": build}


def planned_hca(node, env, selection):
    """The NCCL_IB_HCA the fabric plan gives ``node`` against the RoCE devices discovery found
    behind its fabric interfaces (rdma_facts' ``selection``: netdev -> {rdma, ...}). A listed
    device that is not the one behind a cabled interface (renamed by udev, another card) makes
    ncclCommInitRank fail with ibv_modify_qp 110 minutes into a launch. Empty when they agree."""
    planned = [d.strip() for d in str(env.get("NCCL_IB_HCA") or "").split(",") if d.strip()]
    found = sorted(set(entry.get("rdma") for entry in (selection or {}).values()
                       if isinstance(entry, dict) and entry.get("rdma")))
    if not found:
        return []
    if sorted(set(planned)) == found:
        return []
    return ["%s: the plan's NCCL_IB_HCA is %s, but the RoCE devices behind the fabric interfaces "
            "are %s (%s): check the cabling and the inventory order, or give the node the "
            "devices found in vllm_cluster_fabric_env"
            % (node, ",".join(planned) or "empty", ",".join(found),
               ", ".join("%s=%s" % (n, e.get("rdma")) for n, e in sorted((selection or {}).items())
                         if isinstance(e, dict)))]


def padding_agreement(engine_padding, plan_padding, model_config):
    """The virtual-head padding the engine arguments carry (``engine_padding``: the recipe's,
    computed from its bundled model profile; None when none) against the padding of the plan
    proven with the model the head really has (``plan_padding``: vllm_plan's ``padding``).
    vLLM would pad the head's model with the recipe's numbers: a model with other head counts,
    vocabulary or widths than the bundled profile loads with wrong shapes. Empty when they
    agree."""
    proven = (plan_padding or {}).get("hf_overrides") if (plan_padding or {}).get("applied") else None
    if (engine_padding or None) == (proven or None):
        return []
    return ["padding: the engine arguments pad with %s (from the recipe's bundled model profile), "
            "but the model proven (%s) pads with %s: give the recipe a model profile with this "
            "model's config.json (recipe_model_profile), or serve the model the recipe describes"
            % (engine_padding or "nothing", model_config, proven or "nothing")]
