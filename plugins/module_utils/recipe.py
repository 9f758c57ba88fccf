# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""A recipe, and what it means for every role: site.yml's one mapping, in plain Python.

A recipe is data (``recipes/vars/<name>.yml``): the plan, the image it runs on (build
profile and patches), the serve-only arguments, the environment, the model directory, where
its weights come from (``recipe_model_source``, checked by module_utils/model.py) and the
served name. ``inputs(recipe, overrides, context)`` turns it into the input variables of the
roles (``preflight_*``, ``model_*``, ``vllm_image_*``, ``vllm_cluster_*``, ``verify_*``,
``benchmark_*``, ``eval_*``). The ``dgxspark_*`` overrides change parts of it: ``dgxspark_plan``,
``dgxspark_serve_args`` and ``dgxspark_env`` merge key by key into the recipe's, the others
replace a value. The playbooks set a role input from here only where the inventory and ``-e``
do not set it, so the precedence is: -e, then the inventory (host_vars, group_vars), then the
dgxspark_* overrides of the recipe, then the recipe, then the roles' defaults.

One verdict per recipe: the build profile and the patches the plan is judged with are the
image's (``recipe_image``), never a second copy in the plan.
"""
from __future__ import annotations

import difflib
import os

from .cluster import engine_args, plan_env
from .model import SourceError, normalize_source
from .plan.engine import evaluate
from .nccl import LIBRARY_ENV

RECIPE_REQUIRED = {
    "recipe_name": str,
    "recipe_model_profile": str,
    "recipe_model_dir": str,
    "recipe_served_model_name": str,
    "recipe_plan": dict,
    "recipe_image": dict,
}
RECIPE_OPTIONAL = {
    "recipe_serve_args": dict,
    "recipe_env": dict,
    "recipe_request_extra_body": dict,
    "recipe_eval_min_scores": dict,
    # where the weights come from (model role): base and optional mtp part (module_utils/model.py)
    "recipe_model_source": dict,
}
IMAGE_KEYS = {"build_profile": str, "patches": list}

# Overrides of a recipe (inventory or -e): name -> (type, how it applies).
OVERRIDES = {
    "dgxspark_plan": (dict, "merge"),
    "dgxspark_serve_args": (dict, "merge"),
    "dgxspark_env": (dict, "merge"),
    "dgxspark_model_dir": (str, "replace"),
    "dgxspark_served_model_name": (str, "replace"),
    "dgxspark_image_patches": (list, "replace"),
    "dgxspark_image_build_profile": (str, "replace"),
    "dgxspark_eval_min_scores": (dict, "replace"),
    "dgxspark_model_source": (dict, "replace"),
}

# Plan keys that are the image's, not the plan's (recipe_image declares them).
IMAGE_PLAN_KEYS = ("vllm_build", "vllm_patches")

_TYPE_NAMES = {dict: "a mapping", list: "a list", str: "a string"}


class RecipeError(Exception):
    """Bad recipe or override: names the variable, the value and the fix."""

    def __init__(self, variable, value, problem, fix):
        self.variable = variable
        self.value = value
        self.fix = fix
        text = repr(value)
        if len(text) > 120:
            text = text[:117] + "..."
        super(RecipeError, self).__init__("%s=%s %s: %s" % (variable, text, problem, fix))


def closest(name, choices):
    found = difflib.get_close_matches(str(name), sorted(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def _unknown(variable, key, known, what):
    near = closest(key, known)
    hint = ("did you mean %s? " % near) if near else ""
    return RecipeError("%s.%s" % (variable, key) if variable else key, key,
                       "is not %s" % what, "%suse one of: %s" % (hint, ", ".join(sorted(known))))


def recipe_path(name, search_dirs):
    """The file of recipe ``name`` (a name under a search dir, or a path to a .yml file)."""
    if not isinstance(name, str) or not name.strip():
        raise RecipeError("dgxspark_recipe", name, "is not a recipe name",
                          "give the name of a recipe (site, glm52, mimo_v25, ...) or the "
                          "path of a recipe file")
    if name.endswith((".yml", ".yaml")) or os.sep in name:
        if os.path.isfile(name):
            return name
        raise RecipeError("dgxspark_recipe", name, "does not exist",
                          "give an existing recipe file, or a recipe name")
    known = []
    for directory in search_dirs:
        path = os.path.join(directory, name + ".yml")
        if os.path.isfile(path):
            return path
        if os.path.isdir(directory):
            known += [f[:-4] for f in os.listdir(directory) if f.endswith(".yml")]
    near = closest(name, known)
    raise RecipeError("dgxspark_recipe", name, "is not a recipe in %s" % ", ".join(search_dirs),
                      ("did you mean %s? " % near if near else "") + "known recipes: %s"
                      % ", ".join(sorted(set(known))))


def validate(recipe, source="recipe"):
    """Check a loaded recipe's keys and types (every problem names the key)."""
    if not isinstance(recipe, dict):
        raise RecipeError(source, recipe, "is not a mapping of recipe_* variables",
                          "write the recipe as YAML variables (see recipes/vars/site.yml)")
    known = set(RECIPE_REQUIRED) | set(RECIPE_OPTIONAL)
    for key in recipe:
        if key not in known:
            raise _unknown("", key, known, "a recipe variable (in %s)" % source)
    for key, kind in RECIPE_REQUIRED.items():
        if key not in recipe:
            raise RecipeError(key, None, "is missing in %s" % source,
                              "give %s (%s)" % (key, _TYPE_NAMES[kind]))
    for key, kind in list(RECIPE_REQUIRED.items()) + list(RECIPE_OPTIONAL.items()):
        if key in recipe and recipe[key] is not None and not isinstance(recipe[key], kind):
            raise RecipeError(key, recipe[key], "must be %s (in %s)" % (_TYPE_NAMES[kind], source),
                              "give %s" % _TYPE_NAMES[kind])
    for key, value in recipe["recipe_image"].items():
        if key not in IMAGE_KEYS:
            raise _unknown("recipe_image", key, IMAGE_KEYS, "a key of recipe_image")
        if not isinstance(value, IMAGE_KEYS[key]):
            raise RecipeError("recipe_image.%s" % key, value, "must be %s"
                              % _TYPE_NAMES[IMAGE_KEYS[key]], "give %s" % _TYPE_NAMES[IMAGE_KEYS[key]])
    _model_source(recipe.get("recipe_model_source"), "recipe_model_source")
    for key in IMAGE_PLAN_KEYS:
        if key in recipe["recipe_plan"]:
            raise RecipeError("recipe_plan.%s" % key, recipe["recipe_plan"][key],
                              "belongs to the image, not the plan",
                              "declare it in recipe_image (build_profile, patches): the plan "
                              "is judged with the image that runs")
    return recipe


def _model_source(source, variable):
    """The model source normalized (module_utils/model.py), its problems as RecipeError."""
    try:
        return normalize_source(source, variable)
    except SourceError as exc:
        raise RecipeError(exc.key, exc.value, exc.problem, exc.fix)


def check_overrides(overrides):
    """The dgxspark_* overrides given (None = not given), checked."""
    out = {}
    for name, value in (overrides or {}).items():
        if name not in OVERRIDES:
            raise _unknown("", name, OVERRIDES, "a recipe override")
        if value is None:
            continue
        kind, dummy = OVERRIDES[name]
        if not isinstance(value, kind):
            raise RecipeError(name, value, "must be %s" % _TYPE_NAMES[kind],
                              "give %s, e.g. %s" % (_TYPE_NAMES[kind], {
                                  dict: "{max_model_len: 65536}", list: "[draft-dcp-inherit]",
                                  str: "a name or path"}[kind]))
        out[name] = value
    plan = out.get("dgxspark_plan") or {}
    for key in IMAGE_PLAN_KEYS:
        if key in plan:
            raise RecipeError("dgxspark_plan.%s" % key, plan[key],
                              "belongs to the image, not the plan",
                              "set dgxspark_image_build_profile / dgxspark_image_patches")
    return out


def effective(recipe, overrides):
    """The recipe with the overrides applied: plan, serve args, env, image, model dir, name."""
    over = check_overrides(overrides)
    plan = {"distributed_executor_backend": "mp"}
    plan.update(recipe["recipe_plan"])
    plan.update(over.get("dgxspark_plan") or {})
    image = {"build_profile": recipe["recipe_image"].get("build_profile", "vllm-0.33"),
             "patches": list(recipe["recipe_image"].get("patches") or [])}
    if "dgxspark_image_build_profile" in over:
        image["build_profile"] = over["dgxspark_image_build_profile"]
    if "dgxspark_image_patches" in over:
        image["patches"] = list(over["dgxspark_image_patches"])
    serve = dict(recipe.get("recipe_serve_args") or {})
    serve.update(over.get("dgxspark_serve_args") or {})
    env = dict(recipe.get("recipe_env") or {})
    env.update(over.get("dgxspark_env") or {})
    return {
        "name": recipe["recipe_name"],
        "plan": plan,
        "image": image,
        "serve_args": serve,
        "env": dict((str(k), str(v)) for k, v in env.items()),
        "model_dir": over.get("dgxspark_model_dir", recipe["recipe_model_dir"]),
        "served_model_name": over.get("dgxspark_served_model_name",
                                      recipe["recipe_served_model_name"]),
        "model_profile": recipe["recipe_model_profile"],
        "request_extra_body": dict(recipe.get("recipe_request_extra_body") or {}),
        "eval_min_scores": over.get("dgxspark_eval_min_scores",
                                    dict(recipe.get("recipe_eval_min_scores") or {})),
        "model_source": _model_source(over["dgxspark_model_source"], "dgxspark_model_source")
        if "dgxspark_model_source" in over
        else _model_source(recipe.get("recipe_model_source"), "recipe_model_source"),
    }


def judged_plan(site, build_profile=None, patches=None):
    """The plan as preflight proves it: with the build profile and patches of the image that
    will run (the recipe's image unless the image on the nodes is given)."""
    plan = dict(site["plan"])
    plan["vllm_build"] = build_profile or site["image"]["build_profile"]
    plan["vllm_patches"] = sorted(set(patches if patches is not None else site["image"]["patches"]))
    return plan


def engine_padding(plan, profile):
    """The virtual-head padding vLLM gets (``--hf-overrides``) for ``plan`` (as judged), from
    the recipe's bundled model profile; None when the plan asks for no virtual heads or TP
    divides every dimension. Host preflight proves the same plan with the head's own
    config.json and fails if that padding differs (findings/hosts.padding_findings)."""
    if not plan.get("virtual_heads"):
        return None
    padding = evaluate(dict(plan, model_config=profile))["padding"]
    return padding if padding.get("applied") else None


def inputs(recipe, overrides=None, context=None):
    """The roles' input variables for ``recipe`` (validated) with ``overrides`` applied.

    ``context``: ``collection_root`` (where the bundled model profiles are), ``results_dir``
    (benchmark and eval JSON), ``lab`` (the simulated lab), ``fabric_topology``."""
    validate(recipe)
    context = context or {}
    given = check_overrides(overrides)
    site = effective(recipe, overrides)
    profile = os.path.join(context.get("collection_root", "."), site["model_profile"])
    plan = judged_plan(site)
    padding = engine_padding(plan, profile)
    # a plan key that is no plan option, a plan input among the serve args or a serve argument
    # vLLM does not have fails here, naming the key and the closest valid one (InputError)
    args = engine_args(site["plan"], site["serve_args"], padding or {"applied": False})
    env = plan_env(site["plan"])
    results = context.get("results_dir") or "results"
    lab = bool(context.get("lab"))
    summary = {"recipe": site["name"], "plan": site["plan"], "image_patches": site["image"]["patches"],
               "image_build_profile": site["image"]["build_profile"], "lab": lab}
    return {
        "dgxspark_site_plan": plan,
        "preflight_plan": plan,
        "preflight_model_dir": site["model_dir"],
        # the MTP layer's prefixes the recipe declares (else the checkpoint's config.json says)
        "preflight_model_source": site["model_source"] is not None,
        "preflight_model_mtp_prefixes": list(((site["model_source"] or {}).get("mtp") or {})
                                             .get("layer_prefixes") or []),
        "model_dir": site["model_dir"],
        "model_source": site["model_source"],
        "preflight_fallback_model_config": profile,
        "preflight_image_patches": site["image"]["patches"],
        "preflight_image_build": site["image"]["build_profile"],
        # the padding the engine arguments carry: host preflight checks the head's model pads the same
        "preflight_engine_padding": (padding or {}).get("hf_overrides"),
        "preflight_fabric_topology": context.get("fabric_topology") or "",
        "vllm_image_patches": site["image"]["patches"],
        "vllm_image_build_profile": site["image"]["build_profile"],
        # the image's NCCL is read with the containers' library variables (LD_PRELOAD, ...)
        "vllm_image_nccl_probe_env": dict((k, v) for k, v in sorted(site["env"].items())
                                          if k in LIBRARY_ENV),
        "vllm_cluster_model_dir": site["model_dir"],
        "vllm_cluster_executor": site["plan"]["distributed_executor_backend"],
        "vllm_cluster_served_model_name": site["served_model_name"],
        "vllm_cluster_engine_args": args,
        # the environment the plan implies (VLLM_ALLOW_LONG_MAX_MODEL_LEN), then the recipe's
        "vllm_cluster_env": dict(env, **site["env"]),
        "verify_smoke_extra_body": site["request_extra_body"],
        "verify_lab": lab,
        "benchmark_lab": lab,
        "benchmark_results_dir": results,
        "benchmark_extra_body": site["request_extra_body"],
        "benchmark_model_config": profile,
        "benchmark_tensor_parallel_size": int(site["plan"].get("tensor_parallel_size", 1)),
        "benchmark_context": dict(summary, fabric_topology=context.get("fabric_topology", "")),
        "eval_extra_body": site["request_extra_body"],
        "eval_results_dir": results,
        # the lab's tiny random model is no model: no minimum scores unless asked for
        "eval_min_scores": {} if lab and "dgxspark_eval_min_scores" not in given
        else site["eval_min_scores"],
        "eval_lab": lab,
        "eval_label": site["name"],
        "eval_context": summary,
    }
