# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Import a recipe of eugr/spark-vllm-docker (the community's Spark launcher) as a recipe of
this collection, in plain Python.

The eugr format (``recipes/README.md`` of eugr/spark-vllm-docker, ``recipe_version: "1"``):
required ``name``, ``container``, ``command`` (a ``vllm serve`` template with ``{param}``
substitution from ``defaults``, literal braces doubled ``{{ }}``); optional ``description``,
``model`` (the Hugging Face id ``--setup`` downloads), ``cluster_only``, ``solo_only``,
``pull_image``, ``build_args``, ``mods`` (``mods/<dir>``, a ``run.sh`` applied in every
container before the launch), ``defaults``, ``env`` and ``benchmark``.

``convert`` renders the command and splits it the way ``recipe.py`` wants it: the plan options
(plan/request.py OPTIONS: TP, PP, DCP, MTP, capture sizes, KV, context, ...), the serve-only
arguments vLLM 0.33.0's parser has (vllm_args.py), the environment, the image (build profile
and catalog patches) and the model. What has no equivalent here is never dropped silently: each
such item (a mod, a build argument, a flag vLLM 0.33.0 does not have, a per-node fabric
variable, ...) is listed in ``unmapped`` with the reason and the fix; ``notes`` say where the
rest went. Input that cannot be a recipe (an unknown field, a missing one, a ``{param}`` without
a value, a command that is not ``vllm serve``, broken quoting or JSON) raises ``EugrError``,
naming the field, the value and the fix. ``preflight`` then proves the imported recipe the
way site.yml does (``recipe.inputs`` and the plan engine's ``evaluate``).
"""
from __future__ import annotations

import json
import os
import re
import shlex
import string
import textwrap

from . import recipe as recipes
from .cluster import ROLE_ARGS
from .plan.engine import evaluate
from .plan.errors import InputError
from .plan.request import OPTIONS, SERVE, closest
from .topology import NCCL_RING, NCCL_RING4, NCCL_SWITCH
from .vllm_args import SERVE_ARGS, VLLM_VERSION

RECIPE_VERSION = "1"
REQUIRED = {"name": str, "container": str, "command": str}
OPTIONAL = {"recipe_version": (str, int), "description": str, "model": str,
            "cluster_only": bool, "solo_only": bool, "pull_image": bool, "build_args": list,
            "mods": list, "defaults": dict, "env": dict, "benchmark": dict}
FIELDS = set(REQUIRED) | set(OPTIONAL)

# vllm serve's short options (vLLM's parser aliases) and the fork spellings vLLM 0.33.0 renamed.
ALIASES = {"tp": "tensor_parallel_size", "pp": "pipeline_parallel_size",
           "dp": "data_parallel_size", "dcp": "decode_context_parallel_size",
           "q": "quantization", "cc": "compilation_config"}
RENAMED = {"dcp_kv_cache_interleave_size": "cp_kv_cache_interleave_size"}

# Environment a recipe must not fix for every node: the fabric role computes it per node from
# the cabling (module_utils/topology.py) and the launch sets the rendezvous itself; as the
# recipe's environment comes last in a container's, a copied value would win on every node.
NODE_ENV = frozenset(["NCCL_IB_HCA", "NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME", "VLLM_HOST_IP",
                      "NCCL_IB_GID_INDEX", "NCCL_IB_ADDR_RANGE", "UCX_NET_DEVICES",
                      "TP_SOCKET_IFNAME", "MASTER_ADDR", "MASTER_PORT", "HOST_IP"])
# NCCL settings the fabric role chooses for the topology: a recipe may override them on purpose.
TOPOLOGY_ENV = frozenset(["NCCL_IB_DISABLE"] + list(NCCL_RING) + list(NCCL_RING4)
                         + list(NCCL_SWITCH)) - NODE_ENV
# Environment that is a plan option (preflight reads it from the plan).
ENV_OPTIONS = dict((option.env, name) for name, option in OPTIONS.items() if option.env)

# Mods whose effect the collection has, and how.
_VIRTUAL_HEADS = ["virtual-heads", "moe-zero-fill", "sink-padding"]
KNOWN_MODS = {
    "mimo-v2-tp3-virtual-heads": {
        "plan": {"virtual_heads": True}, "patches": _VIRTUAL_HEADS,
        "env": ["VLLM_MIMO_V2_TP3_VIRTUAL_HEADS"],
        "note": "TP3 with virtual heads: plan virtual_heads and the shipped patches "
                "virtual-heads, moe-zero-fill and sink-padding (the padding reaches vLLM as "
                "--hf-overrides; the mod's switch VLLM_MIMO_V2_TP3_VIRTUAL_HEADS is not needed)"},
    "drop-caches": {
        "note": "the vllm_cluster role drains swap and drops the page cache on every node "
                "before each launch (vllm_cluster_prepare)"},
    "ray-keep-node-nccl-hca": {
        "note": "the vllm_cluster role tells Ray which fabric variables it must not copy from "
                "the head (ray_non_carry_over_env_vars.json), so each node keeps its own"},
}

# Bundled config.json profiles of the collection, by Hugging Face id.
BUNDLED_PROFILES = {
    "nvidia/glm-5.2-nvfp4": "recipes/models/glm-5.2-nvfp4",
    "mapika/glm-5.2-nvfp4": "recipes/models/glm-5.2-nvfp4",
    "lukealonso/mimo-v2.5-nvfp4": "recipes/models/mimo-v2.5-nvfp4",
}

MODELS_DIR = "/var/lib/dgxspark/models"
_HF_CACHE = re.compile(r"models--([^/]+)--([^/]+)")
_PARAM = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# The argument spec of dgxspark.cluster.eugr_recipe (its documentation is tested against it).
ARGUMENT_SPEC = {
    "src": {"type": "path", "required": True},
    "dest": {"type": "path"},
    "name": {"type": "str"},
    "params": {"type": "dict", "default": {}},
    "model_dir": {"type": "str"},
    "model_profile": {"type": "path"},
    "build_profile": {"type": "str", "default": "vllm-0.33"},
    "patches": {"type": "list", "elements": "str", "default": []},
    "served_model_name": {"type": "str"},
    "preflight": {"type": "bool", "default": True},
    "fail_on_violations": {"type": "bool", "default": True},
    "strict": {"type": "bool", "default": False},
}


class EugrError(InputError):
    """An eugr recipe this importer cannot read: names the field, the value and the fix."""


def _type_name(kinds):
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    return " or ".join({str: "a string", int: "a number", bool: "true or false",
                        list: "a list", dict: "a mapping"}[k] for k in kinds)


def validate(data):
    """Check an eugr recipe's fields and their types."""
    if not isinstance(data, dict):
        raise EugrError("recipe", data, "is not a mapping of eugr recipe fields",
                        "give an eugr/spark-vllm-docker recipe (name, container, command, ...)")
    for key in data:
        if key not in FIELDS:
            near = closest(str(key), FIELDS)
            raise EugrError(str(key), data[key], "is not a field of the eugr recipe format "
                            "(recipe_version %s)" % RECIPE_VERSION,
                            ("did you mean %s? " % near if near else "") + "use only: "
                            + ", ".join(sorted(FIELDS)))
    for key, kind in REQUIRED.items():
        if key not in data or data[key] in (None, ""):
            raise EugrError(key, data.get(key), "is missing", "give %s (%s), as every eugr "
                            "recipe does" % (key, _type_name(kind)))
    for key, kind in list(REQUIRED.items()) + list(OPTIONAL.items()):
        value = data.get(key)
        if value is None:
            continue
        if not isinstance(value, kind) or (kind in (int, str, (str, int))
                                           and isinstance(value, bool)):
            raise EugrError(key, value, "must be %s" % _type_name(kind),
                            "give %s" % _type_name(kind))
    version = data.get("recipe_version", RECIPE_VERSION)
    if str(version) != RECIPE_VERSION:
        raise EugrError("recipe_version", version, "is not a recipe format this importer "
                        "reads", 'use recipe_version: "1", the format of eugr/spark-vllm-docker')
    if data.get("cluster_only") and data.get("solo_only"):
        raise EugrError("solo_only", True, "contradicts cluster_only: true",
                        "keep one of them")
    for key in ("defaults", "env"):
        for name, value in (data.get(key) or {}).items():
            if isinstance(value, (dict, list)):
                raise EugrError("%s.%s" % (key, name), value, "must be a single value",
                                "give a string or a number")
    for key in ("mods", "build_args"):
        for item in data.get(key) or []:
            if not isinstance(item, str) or not item.strip():
                raise EugrError(key, item, "must be a list of strings",
                                "give e.g. [mods/drop-caches]" if key == "mods" else
                                "give the flags of build-and-copy.sh as strings")
    return data


def render_command(command, values):
    """The command with every ``{param}`` replaced (``{{`` and ``}}`` are literal braces)."""
    out = []
    try:
        parts = list(string.Formatter().parse(command))
    except ValueError as exc:
        raise EugrError("command", command, "is not a valid template (%s)" % exc,
                        "double the literal braces of JSON values: '{{\"method\":\"mtp\"}}'")
    for literal, field, spec, conversion in parts:
        out.append(literal)
        if field is None:
            continue
        if not _PARAM.match(field) or spec or conversion:
            raise EugrError("command", "{%s}" % field, "is not a {param} of the template",
                            "double the literal braces of JSON values ('{{\"method\":\"mtp\"}}'); "
                            "{name} is for a key of defaults")
        if field not in values:
            raise EugrError("command", "{%s}" % field, "has no value",
                            "add %s under defaults (known: %s)" % (
                                field, ", ".join(sorted(values)) or "none"))
        value = values[field]
        out.append(("true" if value else "false") if isinstance(value, bool) else str(value))
    return "".join(out)


def _words(line):
    text = re.sub(r"\\\r?\n", " ", line)
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise EugrError("command", line.strip(), "cannot be split into words (%s)" % exc,
                        "close every quote of the command")


def _scalar(text):
    """A command-line value as the YAML recipe would hold it."""
    if text[:1] in "{[":
        return json.loads(text)
    if re.match(r"^[+-]?[0-9]+$", text):
        return int(text)
    if re.match(r"^[+-]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$", text):
        return float(text)
    return text


def _value(flag, name, text):
    try:
        return _scalar(text)
    except ValueError as exc:
        raise EugrError("command %s" % flag, text, "is not valid JSON (%s)" % exc,
                        "write the %s value as JSON, literal braces doubled in the template"
                        % name)


def _flag_name(word):
    """``--max-model-len=8`` -> (max_model_len, "8", None); ``-cc.mode=3`` -> dotted key."""
    body = word.lstrip("-")
    value = None
    if "=" in body:
        body, value = body.split("=", 1)
    dotted = None
    if "." in body:
        body, dotted = body.split(".", 1)
    name = body.replace("-", "_")
    if word.startswith("-") and not word.startswith("--"):
        name = ALIASES.get(body, name)
    return name, value, dotted


def parse_command(line):
    """``vllm serve MODEL --flag value ...`` -> (env, model, [(flag, name, value), ...]).

    Leading ``VAR=value`` words are environment; a flag's arity is vLLM 0.33.0's (a flag vLLM
    does not know takes the next word when it is not a flag)."""
    words = _words(line)
    env = {}
    while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
        key, value = words.pop(0).split("=", 1)
        env[key] = value
    if words and words[0] == "exec":
        words.pop(0)
    if words[:2] != ["vllm", "serve"]:
        raise EugrError("command", " ".join(words[:3]), "is not a vllm serve command",
                        "the importer reads recipes whose command is `vllm serve MODEL ...`")
    words = words[2:]
    model = None
    if words and not words[0].startswith("-"):
        model = words.pop(0)
    args = []
    while words:
        word = words.pop(0)
        if not word.startswith("-") or word in ("-", "--"):
            raise EugrError("command", word, "is a value without a flag",
                            "give every value after its --flag")
        name, value, dotted = _flag_name(word)
        kind = SERVE_ARGS.get(RENAMED.get(name, name))
        if value is not None:
            raw = value
        elif kind in ("bool", "store_true") or (
                kind is None and name.startswith("no_") and name[3:] in SERVE_ARGS):
            raw = True
        elif kind == "list":
            raw = []
            while words and not words[0].startswith("-"):
                raw.append(words.pop(0))
        elif words and not (words[0].startswith("-") and not re.match(r"^-[0-9.]", words[0])):
            raw = words.pop(0)
        elif kind is None:
            raw = True
        else:
            raise EugrError("command %s" % word, None, "has no value", "give %s a value" % word)
        if isinstance(raw, str):
            value = _value(word, name, raw)
        elif isinstance(raw, list):
            value = [_value(word, name, item) for item in raw]
        else:
            value = raw
        if dotted:
            for key in reversed(dotted.split(".")):
                value = {key: value}
        args.append((word, name, value))
    return env, model, args


def _merge(old, new):
    if isinstance(old, dict) and isinstance(new, dict):
        out = dict(old)
        for key, value in new.items():
            out[key] = _merge(out.get(key), value)
        return out
    return new


def _slug(text):
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "imported"


def _model_id(model, positional):
    """The Hugging Face id behind the recipe (the model field, or a hub cache path)."""
    if model:
        return model
    found = _HF_CACHE.search(positional or "")
    if found:
        return "%s/%s" % found.groups()
    return positional


def _env_text(value):
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _truthy(text):
    return str(text).strip().lower() in ("1", "true", "yes", "on")


def convert(data, params=None, name=None, model_dir=None, model_profile=None,
            build_profile="vllm-0.33", patches=None, served_model_name=None):
    """An eugr recipe (loaded YAML) as this collection's recipe variables.

    Returns ``recipe`` (the recipe_* variables), ``unmapped`` (what has no equivalent:
    field, value, reason, fix), ``notes`` (where the rest went) and ``command`` (the rendered
    command line)."""
    validate(data)
    unmapped, notes = [], []

    def lost(field, value, reason, fix):
        unmapped.append({"field": field, "value": value, "reason": reason, "fix": fix})

    values = dict(data.get("defaults") or {})
    for key, value in (params or {}).items():
        if key not in values and not _PARAM.match(str(key)):
            raise EugrError("params.%s" % key, value, "is not a parameter name",
                            "use a key of the recipe's defaults")
        values[key] = value
    command = render_command(data["command"], values)
    used = set(part[1] for part in string.Formatter().parse(data["command"]) if part[1])
    for key in sorted(set(data.get("defaults") or {}) - used):
        notes.append("defaults.%s is not used by the command (it has no effect in eugr either)"
                     % key)
    cmd_env, positional, args = parse_command(command)

    plan, serve = {}, {}
    served = served_model_name
    for flag, arg, value in args:
        if arg in RENAMED:
            notes.append("%s is %s in vLLM %s"
                         % (flag, RENAMED[arg].replace("_", "-"), VLLM_VERSION))
            arg = RENAMED[arg]
        if arg == "served_model_name":
            first = value[0] if isinstance(value, list) and value else value
            served = served or str(first)
        elif arg == "model":
            positional = positional or str(value)
        elif arg in ROLE_ARGS:
            notes.append("%s %s: the vllm_cluster role sets it (vllm_cluster_api_host, "
                         "vllm_cluster_api_port, the multi-node launch)" % (flag, value))
        elif arg in OPTIONS and OPTIONS[arg].serve == SERVE:
            option = OPTIONS[arg]
            if option.kind.startswith("int") and (not isinstance(value, int)
                                                  or isinstance(value, bool)):
                raise EugrError("command %s" % flag, value, "must be a whole number",
                                option.fix)
            plan[arg] = _merge(plan.get(arg), value)
        elif arg in SERVE_ARGS:
            serve[arg] = _merge(serve.get(arg), value)
        elif arg.startswith("no_") and arg[3:] in SERVE_ARGS:
            target = arg[3:]
            (plan if target in OPTIONS else serve)[target] = False
        else:
            near = closest(arg, set(SERVE_ARGS) | set(OPTIONS))
            lost("command %s" % flag, value, "is not a vllm serve argument of vLLM %s (a fork's "
                 "flag, or a typo)" % VLLM_VERSION,
                 ("did you mean --%s? " % near.replace("_", "-") if near else "")
                 + "drop it, or bring the fork's change as an image patch and set it with "
                 "dgxspark_serve_args")

    # the image and the mods
    image_patches = list(patches or [])
    mod_env = set()
    for mod in data.get("mods") or []:
        key = mod.rstrip("/").split("/")[-1]
        known = KNOWN_MODS.get(key)
        if known is None:
            lost("mods", mod, "an eugr mod is a script run in every container before the "
                 "launch; the collection changes the image only with catalog patches",
                 "port it to a patch (vllm_image_extra_patches with a catalog id, or a new "
                 "catalog patch) if the model needs it on vLLM %s; check the plan without it "
                 "first" % VLLM_VERSION)
            continue
        plan.update(known.get("plan") or {})
        mod_env.update(known.get("env") or [])
        image_patches += [p for p in known.get("patches", []) if p not in image_patches]
        notes.append("mods %s: %s" % (mod, known["note"]))
    lost("container", data["container"], "the image is built by the vllm_image role: "
         "vllm_image_base (default vllm/vllm-openai:v0.33.0) with the recipe's patches",
         "set vllm_image_base to an image of the same vLLM, or keep the default; the recipe's "
         "build profile is %s" % build_profile)
    for key in ("build_args", "pull_image", "benchmark"):
        if data.get(key) not in (None, [], {}, False):
            lost(key, data[key], {
                "build_args": "flags of eugr's build-and-copy.sh",
                "pull_image": "eugr's image pull",
                "benchmark": "eugr's llama-benchy settings"}[key],
                {"build_args": "nothing to do unless the image needs them: then build that image "
                               "and give it as vllm_image_base",
                 "pull_image": "the vllm_image role pulls vllm_image_base (vllm_image_pull)",
                 "benchmark": "the benchmark stage measures the cluster (benchmark_* "
                              "variables; site.yml --tags benchmark)"}[key])

    # the environment
    env = {}
    for key, value in list((data.get("env") or {}).items()) + list(cmd_env.items()):
        text = _env_text(value)
        if key in NODE_ENV:
            lost("env.%s" % key, text, "differs from node to node: the fabric role sets it "
                 "for each node from its cabling (module_utils/topology.py), the launch sets "
                 "the rendezvous", "nothing to do: the fabric_* variables describe the fabric")
        elif key in ENV_OPTIONS:
            if _truthy(text):
                plan[ENV_OPTIONS[key]] = True
            notes.append("env.%s: plan option %s (the plan sets the variable)"
                         % (key, ENV_OPTIONS[key]))
        elif key in mod_env:
            notes.append("env.%s: the switch of a mod the collection does otherwise" % key)
        else:
            if key in TOPOLOGY_ENV:
                notes.append("env.%s=%s overrides the fabric role's choice for the topology "
                             "(drop it from recipe_env to keep the fabric's)" % (key, text))
            env[key] = text

    if plan.get("distributed_executor_backend") == "ray":
        notes.append("the recipe runs Ray (--distributed-executor-backend ray), kept; "
                     "dgxspark_plan: {distributed_executor_backend: mp} runs vLLM's Ray-free "
                     "multi-node launch instead, the collection's default")

    # the cluster
    tp = int(plan.get("tensor_parallel_size", 1))
    pp = int(plan.get("pipeline_parallel_size", 1))
    dp = serve.get("data_parallel_size", 1)
    plan["nodes"] = tp * pp * (dp if isinstance(dp, int) and dp > 0 else 1)
    if data.get("solo_only"):
        notes.append("solo_only: a one-node plan (nodes 1)" if plan["nodes"] == 1 else
                     "solo_only, yet the command asks for %d ranks" % plan["nodes"])
    if data.get("cluster_only") and plan["nodes"] == 1:
        notes.append("cluster_only, yet the command runs one rank: check the TP and PP sizes")

    # the model
    model_id = _model_id(data.get("model"), positional)
    if not model_id:
        raise EugrError("model", None, "is not given (no model field, no model in the command)",
                        "give the recipe's model (the Hugging Face id)")
    profile = model_profile or BUNDLED_PROFILES.get(model_id.lower())
    if not profile:
        raise EugrError("model", model_id, "has no bundled config.json profile (bundled: %s)"
                        % ", ".join(sorted(BUNDLED_PROFILES)),
                        "give model_profile: the model's config.json (or its directory) on the "
                        "controller, from its Hugging Face snapshot")
    directory = model_dir or "%s/%s" % (
        MODELS_DIR, re.sub(r"[^a-z0-9.]+", "-", model_id.split("/")[-1].lower()).strip("-."))
    if positional and positional != directory:
        notes.append("the model %s is served from recipe_model_dir %s: put %s there on every "
                     "node (identical; preflight compares them)"
                     % (positional, directory, model_id))
    out = {
        "recipe_name": name or _slug(data["name"]),
        "recipe_model_profile": profile,
        "recipe_model_dir": directory,
        "recipe_served_model_name": served or positional or model_id,
        "recipe_plan": plan,
        "recipe_image": {"build_profile": build_profile, "patches": image_patches},
        "recipe_serve_args": serve,
        "recipe_env": env,
    }
    recipes.validate(out, "the imported recipe")
    return {"recipe": out, "unmapped": unmapped, "notes": notes, "command": command}


def preflight(recipe_vars, collection_root):
    """site.yml's plan proof of a recipe: the roles' inputs (``recipe.inputs``: the plan
    with its image, the engine arguments) and the plan engine's verdict with the recipe's
    model profile."""
    roles = recipes.inputs(recipe_vars, None, {"collection_root": collection_root})
    plan = dict(roles["preflight_plan"], model_config=roles["preflight_fallback_model_config"])
    result = evaluate(plan)
    return {"satisfiable": result["satisfiable"], "violations": result["violations"],
            "warnings": result["warnings"], "plan": roles["preflight_plan"],
            "engine_args": roles["vllm_cluster_engine_args"],
            "env": roles["vllm_cluster_env"]}


def dump(converted, source, dest=None):
    """The recipe vars file: what was imported from where, what was not, then the variables."""
    import yaml

    check = dest or "%s.yml" % converted["recipe"]["recipe_name"]
    head = ["Imported from the eugr/spark-vllm-docker recipe %s by dgxspark.cluster.eugr_recipe."
            % source,
            "Check it: ansible-playbook playbooks/preflight_report.yml -e '{\"report_recipes\": "
            "[\"%s\"]}'; run it: ansible-playbook site.yml -e dgxspark_recipe=%s" % (check, check)]
    if converted["unmapped"]:
        head.append("Not imported (no equivalent in this collection):")
        head += ["- %s: %s -- %s. Fix: %s"
                 % (item["field"], json.dumps(item["value"]), item["reason"], item["fix"])
                 for item in converted["unmapped"]]
    if converted["notes"]:
        head.append("Imported differently:")
        head += ["- %s" % note for note in converted["notes"]]
    lines = ["---"]
    for text in head:
        lines += textwrap.wrap(text, width=98, initial_indent="# ",
                               subsequent_indent="#   " if text.startswith("- ") else "# ",
                               break_long_words=False, break_on_hyphens=False)

    class Dumper(yaml.SafeDumper):
        def increase_indent(self, flow=False, indentless=False):
            return super(Dumper, self).increase_indent(flow, False)

    body = yaml.dump(converted["recipe"], Dumper=Dumper, sort_keys=False,
                     default_flow_style=False, width=100, allow_unicode=True)
    return "\n".join(lines) + "\n" + body


def collection_path(root, path):
    """A recipe's model profile as the recipe lookup resolves it (relative to the collection)."""
    return path if os.path.isabs(path) else os.path.join(root, path)
