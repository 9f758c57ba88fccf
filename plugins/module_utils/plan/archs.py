# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""What vLLM 0.33 does per architecture before its generic checks.

vLLM adjusts some configs by model class before it validates a plan
(``vllm/model_executor/models/config.py`` ``MODELS_CONFIG_MAP``), maps each target to its
MTP draft (``vllm/config/speculative.py`` ``SpeculativeConfig.hf_config_override``) and
renames EAGLE drafts (``vllm/transformers_utils/configs/eagle.py`` ``EAGLEConfig``). The
plan engine applies the same adjustments here; an architecture not in ``KNOWN`` gets only
the generic rules, and the report says so.
"""
from __future__ import annotations

# Architectures whose vLLM-specific behaviour the engine models, each checked against vLLM
# 0.33.0 by the recorded differential suite (tests/fixtures/differential) or by the recipes.
KNOWN = {
    "DeepseekV3ForCausalLM": "deepseek-v3.1-nvfp4 (suite)",
    "DeepseekV32ForCausalLM": "deepseek-v3.2-nvfp4 (suite)",
    "Glm4MoeForCausalLM": "glm-4.7 (suite)",
    "Glm4MoeLiteForCausalLM": "glm-4.7-flash (suite)",
    "GlmMoeDsaForCausalLM": "GLM-5.2 recipe",
    "GptOssForCausalLM": "gpt-oss-120b (suite)",
    "LlamaForCausalLM": "llama-3.1-70b (suite)",
    "MiMoV2FlashForCausalLM": "mimo-v2-flash (suite)",
    "MiMoV2ForCausalLM": "MiMo V2.5 recipe",
    "MiniMaxM2ForCausalLM": "minimax-m2.5 (suite)",
    "MixtralForCausalLM": "mixtral-8x7b (suite)",
    "NemotronHForCausalLM": "nemotron-3-nano / super (suite)",
    "Qwen3ForCausalLM": "qwen3-32b (suite)",
    "Qwen3MoeForCausalLM": "qwen3-30b-a3b, qwen3-235b-a22b (suite)",
    "Qwen3NextForCausalLM": "qwen3-next-80b-a3b (suite)",
}

# Capture caps some model classes set for themselves when the user sets neither
# max_cudagraph_capture_size nor cudagraph_capture_sizes
# (vllm/model_executor/models/config.py GptOssForCausalLMConfig.verify_and_update_config).
CUDAGRAPH_MAX_DEFAULT = {"GptOssForCausalLM": 1024}
CUDAGRAPH_MAX_SOURCE = ("vllm/model_executor/models/config.py "
                        "GptOssForCausalLMConfig.verify_and_update_config")

# KV-cache dtypes some model classes replace before validation
# (vllm/model_executor/models/config.py DeepseekV32ForCausalLM.verify_and_update_config:
# "Using bfloat16 kv-cache for DeepSeekV3.2" turns bfloat16 into auto).
KV_CACHE_DTYPE_ALIASES = {"DeepseekV32ForCausalLM": {"bfloat16": "auto"}}

# SpeculativeConfig.hf_config_override: target (model_type or architecture) -> the config
# field vLLM reads as the MTP draft's n_predict and its value when the field is absent
# (None: vLLM accepts any num_speculative_tokens).
_MTP_BY_MODEL_TYPE = {
    "deepseek_v3": ("num_nextn_predict_layers", None),
    "deepseek_v32": ("num_nextn_predict_layers", None),
    "glm_moe_dsa": ("num_nextn_predict_layers", None),
    "deepseek_mtp": ("num_nextn_predict_layers", None),
    "deepseek_v4": ("num_nextn_predict_layers", None),
    "deepseek_v41": ("num_nextn_predict_layers", None),
    "pangu_ultra_moe": ("num_nextn_predict_layers", None),
    "ernie4_5_moe": ("num_nextn_predict_layers", None),
    "qwen3_next": ("num_nextn_predict_layers", None),
    "qwen3_5": ("mtp_num_hidden_layers", None),
    "qwen3_5_moe": ("mtp_num_hidden_layers", None),
    "qwen3_5_text": ("mtp_num_hidden_layers", None),
    "qwen3_5_moe_text": ("mtp_num_hidden_layers", None),
    "exaone_moe": ("num_nextn_predict_layers", None),
    "longcat_flash": ("num_nextn_predict_layers", 1),
    "step3p5": ("num_nextn_predict_layers", 1),
    "hy_v3": ("num_nextn_predict_layers", None),
    "hy_v4": ("num_nextn_predict_layers", None),
}
_MTP_BY_ARCHITECTURE = {
    "MiMoForCausalLM": ("num_nextn_predict_layers", None),
    "Glm4MoeForCausalLM": ("num_nextn_predict_layers", None),
    "Glm4MoeLiteForCausalLM": ("num_nextn_predict_layers", None),
    "GlmOcrForConditionalGeneration": ("num_nextn_predict_layers", None),
}
# vLLM fixes the MTP layer count for these ("vLLM currently supports only the first MiMo-V2
# MTP layer").
FIXED_MTP_ARCHS = {
    "MiMoV2ForCausalLM": 1,
    "MiMoV2OmniForCausalLM": 1,
    "MiMoV2FlashForCausalLM": 1,
}
MTP_SOURCE = "vllm/config/speculative.py SpeculativeConfig.hf_config_override"
# Every config field an MTP layer count is read from (checked as integers before use).
MTP_COUNT_FIELDS = tuple(sorted(set(field for field, dummy in list(_MTP_BY_MODEL_TYPE.values()) +
                                    list(_MTP_BY_ARCHITECTURE.values())) |
                                {"num_nextn_predict_layers"}))


class MtpSupport(object):
    """How vLLM builds the MTP draft of a target model."""

    __slots__ = ("supported", "layers", "field", "declared")

    def __init__(self, supported, layers, field, declared):
        self.supported = supported  # vLLM has an MTP draft class for this target
        self.layers = layers        # n_predict (None: vLLM does not check the token count)
        self.field = field          # where n_predict comes from
        self.declared = declared    # the config states the layer count


def mtp_support(architecture, model_type, data):
    """The MTP draft vLLM 0.33 derives from a target config (``data``: its text config)."""
    if architecture in FIXED_MTP_ARCHS:
        return MtpSupport(True, FIXED_MTP_ARCHS[architecture],
                          "fixed by vLLM for %s" % architecture, True)
    if model_type in ("nemotron_h", "nemotron_h_puzzle"):
        # Only a checkpoint with num_nextn_predict_layers > 0 maps to nemotron_h_mtp.
        layers = data.get("num_nextn_predict_layers") or 0
        return MtpSupport(layers > 0, layers, "num_nextn_predict_layers", True)
    entry = _MTP_BY_ARCHITECTURE.get(architecture) or _MTP_BY_MODEL_TYPE.get(model_type)
    if entry is None:
        return MtpSupport(False, 0, "no MTP draft in vLLM for %s" % (architecture or model_type),
                          True)
    field, default = entry
    value = data.get(field)
    if value is None:
        return MtpSupport(True, default, field, False)
    return MtpSupport(True, value, field, True)


# EAGLE drafts: EAGLEConfig renames the draft's architecture by method, and vLLM's model
# registry (vllm/model_executor/models/registry.py _SPECULATIVE_DECODING_MODELS) must know
# the result.
EAGLE_ARCHS = frozenset([
    "EagleCohereForCausalLM", "EagleLlamaForCausalLM", "EagleLlama4ForCausalLM",
    "EagleMiniCPMForCausalLM", "EagleMistralForCausalLM", "EagleMistralLarge3ForCausalLM",
    "EagleDeepSeekMTPModel",
])
EAGLE3_ARCHS = frozenset([
    "Eagle3LlamaForCausalLM", "Eagle3MiniMaxM2ForCausalLM", "LlamaForCausalLMEagle3",
    "Eagle3Qwen2_5vlForCausalLM", "Eagle3Qwen3vlForCausalLM", "Eagle3Qwen3ForCausalLM",
    "Eagle3DeepseekV2ForCausalLM", "Eagle3DeepseekV3ForCausalLM", "PEagleDraftModel",
    "PeagleLlamaForCausalLM", "PeagleQwen3ForCausalLM",
])
EAGLE_SOURCE = ("vllm/transformers_utils/configs/eagle.py EAGLEConfig (architecture "
                "renaming); vllm/model_executor/models/registry.py "
                "_SPECULATIVE_DECODING_MODELS")


def eagle_architecture(method, architecture):
    """(renamed architecture, vLLM has it) for an EAGLE draft under ``method``."""
    if method == "eagle":
        name = architecture if architecture.startswith("Eagle") else "Eagle" + architecture
        return name, name in EAGLE_ARCHS
    name = architecture if (architecture.startswith("Eagle3") or
                            architecture.endswith("Eagle3")) else "Eagle3" + architecture
    return name, name in EAGLE3_ARCHS
