# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""The plan a user asks for, validated option by option.

Option names are vLLM's own engine-argument names (``vllm serve --help`` spelling with
underscores), plus the cluster facts (``nodes``, ``gpus_per_node``), the build
(``vllm_build``) and the image's patches (``vllm_patches``). Every error names the
option, the value and the fix; nothing here raises anything else.
"""
from __future__ import annotations

from .errors import PlanInputError

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
SPEC_KEYS = ("method", "num_speculative_tokens", "draft_tensor_parallel_size", "model",
             "quantization", "moe_backend", "attention_backend", "draft_attention_backend",
             "kv_cache_dtype", "max_model_len", "draft_sample_method",
             "rejection_sample_method", "index_share_for_mtp_iteration", "parallel_drafting",
             "use_local_argmax_reduction", "prompt_lookup_max", "prompt_lookup_min")

# name: (kind, default); kinds: int, int?, bool, str, list[int]?, list[str], dict?, raw
OPTIONS = {
    "model_config": ("str", None),
    "tensor_parallel_size": ("int", 1),
    "pipeline_parallel_size": ("int", 1),
    "decode_context_parallel_size": ("int", 1),
    "cp_kv_cache_interleave_size": ("int", 1),
    "speculative_config": ("dict?", None),
    "max_cudagraph_capture_size": ("int?", None),
    "cudagraph_capture_sizes": ("list[int]?", None),
    "max_num_seqs": ("int?", None),
    "max_num_batched_tokens": ("int?", None),
    "max_model_len": ("int?", None),
    "kv_cache_dtype": ("str", "auto"),
    "kv_cache_memory_bytes": ("int?", None),
    "block_size": ("int?", None),
    "virtual_heads": ("bool", False),
    "vllm_patches": ("list[str]", []),
    "nodes": ("int?", None),
    "gpus_per_node": ("int", 1),
    "vllm_build": ("raw", None),
    "enforce_eager": ("bool", False),
    "enable_chunked_prefill": ("bool", True),
    "sequence_parallelism": ("bool", False),
    "allow_long_max_model_len": ("bool", False),
    "async_scheduling": ("bool?", None),
    "dtype": ("choice", "auto"),
    "distributed_executor_backend": ("choice?", None),
}

# Values of the choice options (vLLM's own spellings; vllm/config/model.py ModelDType,
# vllm/config/parallel.py DistributedExecutorBackend).
CHOICES = {
    "dtype": ("auto", "half", "float16", "bfloat16", "float", "float32"),
    "distributed_executor_backend": ("mp", "ray", "uni", "external_launcher"),
}

_FIX = {
    "model_config": "give the path of the model's config.json or its directory",
    "tensor_parallel_size": "use a positive integer (one rank per Spark GPU)",
    "pipeline_parallel_size": "use a positive integer",
    "decode_context_parallel_size": "use a positive integer that divides tensor_parallel_size",
    "cp_kv_cache_interleave_size": "use a positive integer (1 unless the backend supports more)",
    "max_cudagraph_capture_size": "use a positive integer, or leave it unset for vLLM's default",
    "cudagraph_capture_sizes": "give a list of positive integers, e.g. [1, 2, 4]",
    "max_num_seqs": "use a positive integer",
    "max_num_batched_tokens": "use a positive integer",
    "max_model_len": "use a positive integer (the context length in tokens)",
    "kv_cache_memory_bytes": "use a positive number of bytes per GPU, e.g. 1810000000",
    "block_size": "use a positive power of two such as 16, 32 or 64",
    "nodes": "use the number of Sparks in the cluster (a positive integer)",
    "gpus_per_node": "use 1 for a DGX Spark",
    "dtype": "use auto (the checkpoint's dtype), bfloat16, float16 or float32",
    "distributed_executor_backend": "use mp (vLLM's own multi-node launch) or ray",
}


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _coerce_int(name, value, allow_none):
    if value is None:
        if allow_none:
            return None
        raise PlanInputError(name, value, "is required", _FIX.get(name, "give a value"))
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if not _is_int(value):
        raise PlanInputError(name, value, "must be an integer", _FIX.get(name, "give an integer"))
    if value < 1:
        raise PlanInputError(name, value, "must be at least 1",
                             _FIX.get(name, "give a positive integer"))
    return value


def _coerce_bool(name, value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no",
                                                    "off", "0"):
        return value.lower() in ("true", "yes", "on", "1")
    raise PlanInputError(name, value, "must be true or false", "set %s: true or false" % name)


class PlanRequest(object):
    """Validated plan options. Attribute names are the option names."""

    def __init__(self, **options):
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise PlanInputError(unknown[0], options[unknown[0]], "is not a plan option",
                                 "use only: %s" % ", ".join(sorted(OPTIONS)))
        for name, (kind, default) in OPTIONS.items():
            value = options.get(name, default)
            if kind == "int":
                value = _coerce_int(name, value if value is not None else default, False)
            elif kind == "int?":
                value = _coerce_int(name, value, True)
            elif kind == "bool":
                value = _coerce_bool(name, default if value is None else value)
            elif kind == "bool?":
                value = None if value is None else _coerce_bool(name, value)
            elif kind == "str":
                if value is None:
                    value = default
                if value is None or not isinstance(value, str) or not value.strip():
                    raise PlanInputError(name, value, "must be a non-empty string",
                                         _FIX.get(name, "give a string"))
            elif kind == "list[int]?":
                if value is not None:
                    if not isinstance(value, (list, tuple)) or not value:
                        raise PlanInputError(name, value, "must be a non-empty list",
                                             _FIX.get(name, "give a list"))
                    value = [_coerce_int(name, item, False) for item in value]
            elif kind == "list[str]":
                value = [] if value is None else value
                if isinstance(value, str):
                    value = [v.strip() for v in value.split(",") if v.strip()]
                if not isinstance(value, (list, tuple)) or not all(
                        isinstance(v, str) for v in value):
                    raise PlanInputError(name, value, "must be a list of strings",
                                         "give e.g. %s: [draft-dcp-inherit]" % name)
                value = list(value)
            elif kind in ("choice", "choice?"):
                if value is None and kind == "choice":
                    value = default
                if value is not None and value not in CHOICES[name]:
                    raise PlanInputError(name, value, "is not one of %s"
                                         % ", ".join(CHOICES[name]), _FIX[name])
            elif kind == "dict?":
                if value is not None and not isinstance(value, dict):
                    raise PlanInputError(name, value, "must be a dict",
                                         "give e.g. {method: mtp, num_speculative_tokens: 1}")
            setattr(self, name, value)
        self.speculative_config = self._spec(self.speculative_config)

    @staticmethod
    def _spec(spec):
        if not spec:
            return None
        spec = dict(spec)
        for key in spec:
            if key == "tensor_parallel_size":
                raise PlanInputError(
                    "speculative_config.tensor_parallel_size", spec[key],
                    "is not a valid argument in the speculative_config",
                    "pass draft_tensor_parallel_size instead (vLLM's name)")
            if key not in SPEC_KEYS:
                raise PlanInputError("speculative_config.%s" % key, spec[key],
                                     "is not a speculative_config key this planner knows",
                                     "use only: %s" % ", ".join(SPEC_KEYS))
        method = spec.get("method")
        if method is None:
            raise PlanInputError("speculative_config.method", None, "is required",
                                 "give method: mtp")
        if method not in SPEC_METHODS_MTP + SPEC_METHODS_OTHER:
            raise PlanInputError("speculative_config.method", method, "is not a vLLM method",
                                 "use mtp (or one of %s)" % ", ".join(SPEC_METHODS_OTHER))
        for key in ("num_speculative_tokens", "draft_tensor_parallel_size"):
            if spec.get(key) is not None:
                value = spec[key]
                if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                    value = int(value)
                if not _is_int(value):
                    raise PlanInputError("speculative_config.%s" % key, spec[key],
                                         "must be an integer", "give a positive integer")
                if value < 1:
                    raise PlanInputError(
                        "speculative_config.%s" % key, value,
                        "must be greater than zero (vLLM: Input should be greater than 0)",
                        "use 1 or more, or drop speculative_config to disable MTP")
                spec[key] = value
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
