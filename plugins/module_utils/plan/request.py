# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""The plan a user asks for: the one list of plan options, and its validation.

``OPTIONS`` is the only place the plan's option names are written. Each ``Option`` says its
kind, default and bounds, how it reaches vLLM and what to do when it is wrong. Derived from
it, never typed again:

* the ``dgxspark.cluster.vllm_plan`` module's argument spec (``argument_spec()``);
* the engine arguments of a plan (``module_utils/cluster.py`` ``engine_args``: the options
  that are ``vllm serve`` arguments, ``PLAN_ONLY`` for the others, the unknown-key and
  typo checks) and the environment a plan implies (``cluster.plan_env``);
* the lab's stand-in for ``vllm serve`` (its command-line parser).

Option names are vLLM's own engine-argument names (``vllm serve --help`` spelling with
underscores), plus the cluster facts (``nodes``, ``gpus_per_node``), the build
(``vllm_build``), the image's patches (``vllm_patches``) and the planner's own switches.
Every error names the option, the value and the fix; nothing here raises anything else.
"""
from __future__ import annotations

import difflib
import re

from .errors import PlanInputError, shown

# GB10 (DGX Spark) defaults for `vllm serve` (vllm/engine/arg_utils.py get_batch_defaults:
# compute capability 12.1 stays on the small tier).
SPARK_DEFAULT_MAX_NUM_SEQS = 256
SPARK_DEFAULT_MAX_NUM_BATCHED_TOKENS = 2048

# vllm/config/speculative.py MTPModelTypes (0.33.0): every name is normalised to "mtp".
SPEC_METHODS_MTP = ("mtp", "deepseek_mtp", "dots3_note_mtp", "mimo_mtp", "mimo_v2_mtp",
                    "glm4_moe_mtp", "glm4_moe_lite_mtp", "glm_ocr_mtp", "ernie_mtp",
                    "nemotron_h_mtp", "exaone_moe_mtp", "exaone4_5_mtp", "qwen3_next_mtp",
                    "qwen4_exp_mtp", "qwen3_5_mtp", "longcat_flash_mtp",
                    "bailing_hybrid_v3_mtp", "minimax_m3_mtp", "bailing_hybrid_mtp",
                    "kimi_k3_mtp", "pangu_ultra_moe_mtp", "step3p5_mtp", "step5_mtp",
                    "hy_v3_mtp", "hy_v4_mtp", "gemma4_mtp", "inkling_mtp", "glm5_next_mtp")
SPEC_METHODS_OTHER = ("ngram", "ngram_gpu", "suffix", "eagle", "eagle3", "draft_model",
                      "medusa", "mlp_speculator", "dflash", "dspark")

# The planner's bounds. vLLM sets no upper bounds; these keep every computation (capture
# lists, pipeline stages, the suggestion sweep) small and are far above what a Spark cluster
# runs: a switch fabric of up to 64 Sparks, 8 GPUs a node for other machines.
MAX_NODES = 64
MAX_GPUS_PER_NODE = 8
MAX_RANKS = MAX_NODES * MAX_GPUS_PER_NODE          # TP, PP, DCP: 512
MAX_SEQS = 65536                                   # max_num_seqs
MAX_TOKENS = 2 ** 26                               # max_model_len, batched tokens: 64M
MAX_CAPTURE = 65536                                # one CUDA-graph capture size
MAX_CAPTURE_SIZES = 4096                           # entries of cudagraph_capture_sizes
MAX_BLOCK = 4096                                   # block_size, cp_kv_cache_interleave_size
MAX_KV_BYTES = 2 ** 44                             # kv_cache_memory_bytes per GPU: 16 TiB
MAX_SPEC_TOKENS = 128                              # num_speculative_tokens
MAX_PROMPT_LOOKUP = 1024                           # ngram prompt_lookup_min / _max
MAX_LIST = 256                                     # vllm_patches entries

# How an option reaches vLLM.
SERVE = "serve"   # a `vllm serve` engine argument of the same name
PLAN = "plan"     # read by the planner only (the cluster, the image, the planner's switches)
ENV = "env"       # an environment variable of vLLM's (Option.env), set when the option is true

# Option kinds: the value each accepts, and the Ansible type it is documented with.
# "?" means the option may be unset (None).
_ANSIBLE_TYPES = {
    "path": ("path", None), "int": ("int", None), "int?": ("int", None),
    "bool": ("bool", None), "bool?": ("bool", None), "str": ("str", None),
    "str?": ("str", None), "choice": ("str", None), "choice?": ("str", None),
    "list[int]?": ("list", "int"), "list[str]": ("list", "str"), "dict?": ("dict", None),
    "raw": ("raw", None),
}


class Option(object):
    """One plan option: its kind, default and bounds, how it reaches vLLM, and the fix."""

    __slots__ = ("name", "kind", "default", "minimum", "maximum", "choices", "serve", "env",
                 "fix", "required", "max_items")

    def __init__(self, name, kind, default=None, bounds=None, serve=SERVE, fix=None,
                 choices=None, env=None, required=False, max_items=None):
        if kind not in _ANSIBLE_TYPES:
            raise ValueError("option %s: unknown kind %r" % (name, kind))
        if (serve == ENV) != bool(env):
            raise ValueError("option %s: an environment option needs its variable" % name)
        self.name = name
        self.kind = kind
        self.default = default
        self.minimum, self.maximum = bounds if bounds else (None, None)
        self.choices = tuple(choices) if choices else None
        self.serve = serve
        self.env = env
        self.fix = fix or ("set %s: true or false" % name if kind.startswith("bool") else
                           "give %s as a string" % name if kind.startswith("str") else
                           "see ansible-doc dgxspark.cluster.vllm_plan")
        self.required = required
        self.max_items = max_items

    def bounds_text(self):
        """The bounds as the module documentation states them ("between 1 and 512")."""
        if self.minimum is None:
            return None
        return "between %s and %s" % (self.minimum, self.maximum)

    def ansible(self):
        """This option's entry of an Ansible argument spec."""
        kind, elements = _ANSIBLE_TYPES[self.kind]
        entry = {"type": kind}
        if elements:
            entry["elements"] = elements
        if self.required:
            entry["required"] = True
        if self.default is not None:
            entry["default"] = list(self.default) if isinstance(self.default, list) \
                else self.default
        if self.choices:
            entry["choices"] = list(self.choices)
        return entry


def _options(*items):
    return dict((item.name, item) for item in items)


OPTIONS = _options(
    Option("model_config", "path", serve=PLAN, required=True,
           fix="give the path of the model's config.json or its directory"),
    Option("tensor_parallel_size", "int", 1, (1, MAX_RANKS),
           fix="use the number of ranks, one per Spark GPU (e.g. 4 on 4 Sparks)"),
    Option("pipeline_parallel_size", "int", 1, (1, MAX_RANKS),
           fix="use the number of pipeline stages, at most one per Spark"),
    Option("decode_context_parallel_size", "int", 1, (1, MAX_RANKS),
           fix="use a divisor of tensor_parallel_size (1 turns DCP off)"),
    Option("cp_kv_cache_interleave_size", "int", 1, (1, MAX_BLOCK),
           fix="use 1 unless the attention backend supports more"),
    Option("speculative_config", "dict?",
           fix="give e.g. {method: mtp, num_speculative_tokens: 1}"),
    Option("max_cudagraph_capture_size", "int?", None, (1, MAX_CAPTURE),
           fix="use a batch size such as 8 or 512, or leave it unset for vLLM's default"),
    Option("cudagraph_capture_sizes", "list[int]?", None, (1, MAX_CAPTURE),
           max_items=MAX_CAPTURE_SIZES, fix="give batch sizes such as [1, 2, 4]"),
    Option("max_num_seqs", "int?", None, (1, MAX_SEQS),
           fix="use the sequences to run at once, e.g. 256 (vLLM's default on a GB10)"),
    Option("max_num_batched_tokens", "int?", None, (1, MAX_TOKENS),
           fix="use the tokens of one scheduler step, e.g. 2048 (vLLM's default on a GB10)"),
    Option("max_model_len", "int?", None, (1, MAX_TOKENS),
           fix="use the context length in tokens, e.g. 131072"),
    Option("kv_cache_dtype", "str", "auto", fix="use auto, fp8, fp8_e4m3 or bfloat16"),
    Option("kv_cache_memory_bytes", "int?", None, (1, MAX_KV_BYTES),
           fix="use the KV-cache bytes per GPU, e.g. 1810000000"),
    Option("block_size", "int?", None, (1, MAX_BLOCK),
           fix="use a power of two such as 16, 32 or 64, or leave it unset"),
    Option("virtual_heads", "bool", False, serve=PLAN),
    Option("vllm_patches", "list[str]", [], serve=PLAN, max_items=MAX_LIST,
           fix="give e.g. vllm_patches: [draft-dcp-inherit]"),
    Option("nodes", "int?", None, (1, MAX_NODES), serve=PLAN,
           fix="use the number of Sparks in the cluster"),
    Option("gpus_per_node", "int", 1, (1, MAX_GPUS_PER_NODE), serve=PLAN,
           fix="use 1 for a DGX Spark"),
    Option("vllm_build", "raw", serve=PLAN,
           fix="give a build profile name such as vllm-0.33, or a capability dict"),
    Option("enforce_eager", "bool", False),
    Option("enable_chunked_prefill", "bool", True),
    # vLLM 0.33 has no sequence-parallelism flag: the option describes older builds' compile
    # pass (compilation_config.pass_config.enable_sequence_parallelism), which the capture
    # rules need; cluster.engine_args checks that the serve arguments agree with it.
    Option("sequence_parallelism", "bool", False, serve=PLAN),
    Option("allow_long_max_model_len", "bool", False, serve=ENV,
           env="VLLM_ALLOW_LONG_MAX_MODEL_LEN"),
    Option("async_scheduling", "bool?"),
    Option("dtype", "choice", "auto",
           choices=("auto", "half", "float16", "bfloat16", "float", "float32"),
           fix="use auto (the checkpoint's dtype), bfloat16, float16 or float32"),
    Option("distributed_executor_backend", "choice?",
           choices=("mp", "ray", "uni", "external_launcher"),
           fix="use mp (vLLM's own multi-node launch) or ray"),
)

# speculative_config's keys this planner knows (vLLM's SpeculativeConfig field names).
SPEC_OPTIONS = _options(
    Option("method", "str?", fix="use mtp (or one of %s)" % ", ".join(SPEC_METHODS_OTHER)),
    Option("num_speculative_tokens", "int?", None, (1, MAX_SPEC_TOKENS),
           fix="use 1 or more, or drop speculative_config to disable MTP"),
    Option("draft_tensor_parallel_size", "int?", None, (1, MAX_RANKS),
           fix="use 1 or the target's tensor_parallel_size"),
    Option("model", "str?", fix="give the draft checkpoint's directory or Hugging Face id"),
    Option("quantization", "str?"),
    Option("moe_backend", "str?"),
    Option("attention_backend", "str?"),
    Option("draft_attention_backend", "str?"),
    Option("kv_cache_dtype", "str?"),
    Option("max_model_len", "int?", None, (1, MAX_TOKENS),
           fix="use the draft's context length in tokens"),
    Option("draft_sample_method", "str?"),
    Option("rejection_sample_method", "str?"),
    Option("index_share_for_mtp_iteration", "bool?"),
    Option("parallel_drafting", "bool?"),
    Option("use_local_argmax_reduction", "bool?"),
    Option("prompt_lookup_max", "int?", None, (1, MAX_PROMPT_LOOKUP),
           fix="use a small number of tokens (vLLM's default is 5)"),
    Option("prompt_lookup_min", "int?", None, (1, MAX_PROMPT_LOOKUP),
           fix="use a small number of tokens (vLLM's default is 5)"),
)


def argument_spec():
    """The vllm_plan module's argument spec for the plan options (derived from OPTIONS)."""
    return dict((name, option.ansible()) for name, option in OPTIONS.items())


def closest(name, names):
    """The valid name closest to a misspelt one (difflib), or None."""
    match = difflib.get_close_matches(str(name), sorted(names), n=1, cutoff=0.6)
    return match[0] if match else None


def unknown_option(label, key, value, names, problem="is not a plan option"):
    """The error for a key that is not one of ``names``, naming the closest valid one."""
    near = closest(key, names)
    if near:
        fix = "did you mean %s? (every valid name: ansible-doc dgxspark.cluster.vllm_plan)" \
            % near
    else:
        fix = "use only: %s" % ", ".join(sorted(names))
    return PlanInputError(label, value, problem, fix)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


_INT_TEXT = re.compile(r"^\s*[+-]?[0-9]+\s*$")


def coerce_int(label, value, option):
    """An integer within the option's bounds (strings of digits and integral floats too)."""
    if isinstance(value, str):
        if not _INT_TEXT.match(value):
            raise PlanInputError(label, value, "must be an integer", option.fix)
        if len(value.strip().lstrip("+-")) > 30:  # far out of any bound; int() may refuse it
            raise PlanInputError(label, value, "must be %s" % option.bounds_text()
                                 if option.minimum is not None else "is too large", option.fix)
        value = int(value)
    elif isinstance(value, float) and value.is_integer() and abs(value) < 2 ** 53:
        value = int(value)
    if not _is_int(value):
        raise PlanInputError(label, value, "must be an integer", option.fix)
    if option.minimum is not None and not option.minimum <= value <= option.maximum:
        raise PlanInputError(label, value, "must be %s" % option.bounds_text(), option.fix)
    return value


def coerce_bool(label, value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no",
                                                    "off", "0"):
        return value.lower() in ("true", "yes", "on", "1")
    raise PlanInputError(label, value, "must be true or false", "set %s: true or false" % label)


def _coerce(option, value, label=None):
    """``value`` for ``option`` (None: unset), checked against its kind and bounds."""
    label = label or option.name
    kind = option.kind
    if value is None and option.default is not None:
        value = list(option.default) if isinstance(option.default, list) else option.default
    if value is None:
        if kind.endswith("?") or kind == "raw":
            return None
        raise PlanInputError(label, value, "is required", option.fix)
    if kind in ("int", "int?"):
        return coerce_int(label, value, option)
    if kind in ("bool", "bool?"):
        return coerce_bool(label, value)
    if kind in ("str", "str?", "path"):
        if not isinstance(value, str) or not value.strip():
            raise PlanInputError(label, value, "must be a non-empty string", option.fix)
        if kind == "path" and "\0" in value:
            raise PlanInputError(label, value, "contains a NUL byte", option.fix)
        return value
    if kind in ("choice", "choice?"):
        if not isinstance(value, str) or value not in option.choices:
            near = closest(value, option.choices) if isinstance(value, str) else None
            raise PlanInputError(label, value, "is not one of %s" % ", ".join(option.choices),
                                 ("did you mean %s? " % near if near else "") + option.fix)
        return value
    if kind == "list[int]?":
        if not isinstance(value, (list, tuple)) or not value:
            raise PlanInputError(label, value, "must be a non-empty list", option.fix)
        if len(value) > option.max_items:
            raise PlanInputError(label, value, "has %d entries, more than %d"
                                 % (len(value), option.max_items), option.fix)
        out = []
        for index, item in enumerate(value):
            try:
                out.append(coerce_int(label, item, option))
            except PlanInputError as exc:
                raise PlanInputError(label, value, "entry %d (%s) %s" % (index, shown(item),
                                                                         exc.problem),
                                     option.fix)
        return out
    if kind == "list[str]":
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise PlanInputError(label, value, "must be a list of strings", option.fix)
        if len(value) > option.max_items:
            raise PlanInputError(label, value, "has %d entries, more than %d"
                                 % (len(value), option.max_items), option.fix)
        return list(value)
    if kind == "dict?":
        if not isinstance(value, dict):
            raise PlanInputError(label, value, "must be a dict", option.fix)
        return value
    return value  # raw: the consumer validates it (vllm_build: builds.resolve_build)


def check_keys(options, label=None):
    """Refuse a key that is not a plan option, naming the closest valid one."""
    if not isinstance(options, dict):
        raise PlanInputError(label or "plan", options, "must be a dict of plan options",
                             "give the plan as a dict, e.g. {tensor_parallel_size: 4}")
    for key in sorted(options, key=str):
        if key not in OPTIONS:
            raise unknown_option(key if label is None else "%s.%s" % (label, key), key,
                                 options[key], OPTIONS)


class PlanRequest(object):
    """Validated plan options. Attribute names are the option names."""

    def __init__(self, options):
        check_keys(options)
        for name, option in OPTIONS.items():
            setattr(self, name, _coerce(option, options.get(name)))
        self.speculative_config = self._spec(self.speculative_config)

    @staticmethod
    def _spec(spec):
        if not spec:
            return None
        spec = dict(spec)
        for key in sorted(spec, key=str):
            label = "speculative_config.%s" % key
            if key == "tensor_parallel_size":
                raise PlanInputError(label, spec[key],
                                     "is not a valid argument in the speculative_config",
                                     "pass draft_tensor_parallel_size instead (vLLM's name)")
            if key not in SPEC_OPTIONS:
                raise unknown_option(label, key, spec[key], SPEC_OPTIONS,
                                     "is not a speculative_config key this planner knows")
            spec[key] = _coerce(SPEC_OPTIONS[key], spec[key], label)
        method = spec.get("method")
        if method is None:
            raise PlanInputError("speculative_config.method", None, "is required",
                                 "give method: mtp")
        if method not in SPEC_METHODS_MTP + SPEC_METHODS_OTHER:
            near = closest(method, SPEC_METHODS_MTP + SPEC_METHODS_OTHER)
            raise PlanInputError("speculative_config.method", method, "is not a vLLM method",
                                 ("did you mean %s? " % near if near else "") +
                                 SPEC_OPTIONS["method"].fix)
        spec["is_mtp"] = method in SPEC_METHODS_MTP
        if spec.get("num_speculative_tokens") is None:
            # vLLM 0.33: "num_speculative_tokens must be provided with speculative model
            # unless the draft model config contains an n_predict parameter" (raised for MTP
            # too); older builds defaulted to n_predict. Require it: the plan is explicit.
            raise PlanInputError("speculative_config.num_speculative_tokens", None,
                                 "is required", "give num_speculative_tokens, e.g. 1")
        return spec

    @property
    def num_speculative_tokens(self):
        if not self.speculative_config:
            return 0
        return self.speculative_config.get("num_speculative_tokens") or 0

    @property
    def uses_mtp(self):
        return bool(self.speculative_config and self.speculative_config["is_mtp"])

    def as_dict(self):
        data = dict((name, getattr(self, name)) for name in OPTIONS)
        if data["speculative_config"]:
            data["speculative_config"] = dict(
                (k, v) for k, v in data["speculative_config"].items() if k != "is_mtp")
        return data
