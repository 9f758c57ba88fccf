# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Read the facts a plan needs from a Hugging Face ``config.json``.

Only the standard library is used: the module runs on the controller or on the head
node, wherever the model's config.json is. Field names are those of the real configs
and of the vLLM model code that reads them (vLLM 0.33):

* GQA/MQA: ``num_attention_heads``, ``num_key_value_heads``, ``head_dim``.
* MLA (DeepSeek V3/V3.2, GLM-5 ``glm_moe_dsa``, Kimi K2): ``kv_lora_rank``,
  ``qk_rope_head_dim``, ``qk_nope_head_dim``, ``v_head_dim``; the DSA indexer
  ``index_topk``, ``index_head_dim``, ``index_n_heads`` and the index-sharing fields vLLM
  reads, ``index_topk_pattern`` or ``index_topk_freq`` + ``index_skip_topk_offset``.
* Hybrid sliding-window models: MiMo V2 (``hybrid_layer_pattern`` with 1 = SWA layer,
  ``swa_num_attention_heads``, ``swa_num_key_value_heads``, ``swa_head_dim``,
  ``swa_v_head_dim``, ``sliding_window_size``, ``add_swa_attention_sink_bias``), and
  ``layer_types`` + ``sliding_window`` models.
* MTP: ``num_nextn_predict_layers`` (vLLM loads only the first MiMo V2 MTP layer).
* MoE: ``n_routed_experts`` / ``num_experts`` / ``num_local_experts``,
  ``moe_intermediate_size``, ``n_shared_experts``, ``intermediate_size``,
  ``first_k_dense_replace`` / ``moe_layer_freq``.
* ``quantization_config``: ModelOpt NVFP4 (``quant_algo: NVFP4``, ``group_size``),
  compressed-tensors ``nvfp4-pack-quantized``, FP8 block (``weight_block_size``).
"""
from __future__ import annotations

import errno
import json
import os
import stat

from .archs import CUDAGRAPH_MAX_DEFAULT, FIXED_MTP_ARCHS, KNOWN, MTP_COUNT_FIELDS, mtp_support
from .errors import ModelConfigError, shown

MLA_MODEL_TYPES = frozenset([
    "deepseek_v2", "deepseek_v3", "deepseek_v32", "deepseek_mtp", "glm_moe_dsa", "kimi_k2",
    "kimi_linear", "longcat_flash", "pangu_ultra_moe", "pangu_ultra_moe_mtp",
])


class AttentionType(object):
    """One kind of attention layer (all layers of the kind share head counts).

    ``fields`` names the config.json fields that hold its q and KV head counts (what virtual
    heads pad: ``swa_num_attention_heads`` / ``swa_num_key_value_heads`` for MiMo's
    sliding-window layers)."""

    __slots__ = ("name", "num_layers", "q_heads", "kv_heads", "head_dim", "v_head_dim",
                 "sliding_window", "sinks", "fields")

    def __init__(self, name, num_layers, q_heads, kv_heads, head_dim, v_head_dim,
                 sliding_window=None, sinks=False,
                 fields=("num_attention_heads", "num_key_value_heads")):
        self.name = name
        self.num_layers = num_layers
        self.q_heads = q_heads
        self.kv_heads = kv_heads
        self.head_dim = head_dim
        self.v_head_dim = v_head_dim
        self.sliding_window = sliding_window
        self.sinks = sinks
        self.fields = tuple(fields)

    def as_dict(self):
        return dict((key, getattr(self, key)) for key in self.__slots__)


class ModelSpec(object):
    """Everything the plan engine knows about a model, read from config.json."""

    def __init__(self, **kw):
        self.path = kw["path"]
        self.model_type = kw["model_type"]
        self.architecture = kw["architecture"]
        self.num_layers = kw["num_layers"]
        self.hidden_size = kw["hidden_size"]
        self.vocab_size = kw["vocab_size"]
        self.max_position_embeddings = kw["max_position_embeddings"]
        self.num_attention_heads = kw["num_attention_heads"]
        self.attention = kw["attention"]          # list of AttentionType (empty for MLA)
        self.mla = kw["mla"]                      # dict or None
        self.indexer = kw["indexer"]              # dict or None (DSA)
        self.mtp_layers = kw["mtp_layers"]        # MTP layers vLLM can load (n_predict)
        self.mtp_layers_field = kw["mtp_layers_field"]
        self.mtp = kw["mtp"]                      # archs.MtpSupport: vLLM's MTP draft
        self.cudagraph_max_default = kw.get("cudagraph_max_default")
        self.auto_kv_cache_dtype = kw.get("auto_kv_cache_dtype")  # what "auto" becomes
        self.mtp_attention = kw["mtp_attention"]  # name of the attention type of MTP layers
        self.moe = kw["moe"]                      # dict or None
        self.dense_intermediate_size = kw["dense_intermediate_size"]
        self.dense_layers = kw["dense_layers"]
        self.quant = kw["quant"]                  # dict: method, group, block
        # the raw quantization_config (memory.py reads its ignore / quantized_layers)
        self.quant_config = kw.get("quant_config") or {}
        self.tie_word_embeddings = bool(kw.get("tie_word_embeddings", False))
        self.dtype = kw["dtype"]
        self.notes = kw.get("notes", [])

    @property
    def known_architecture(self):
        """vLLM's per-architecture behaviour for this model is modelled (archs.KNOWN)."""
        return self.architecture in KNOWN

    @property
    def use_mla(self):
        return self.mla is not None

    @property
    def is_hybrid(self):
        return any(t.sliding_window for t in self.attention)

    @property
    def has_sinks(self):
        return any(t.sinks for t in self.attention)

    def summary(self):
        data = {
            "path": self.path,
            "model_type": self.model_type,
            "architecture": self.architecture,
            "num_layers": self.num_layers,
            "vocab_size": self.vocab_size,
            "max_position_embeddings": self.max_position_embeddings,
            "num_attention_heads": self.num_attention_heads,
            "attention": [t.as_dict() for t in self.attention],
            "mla": self.mla,
            "indexer": self.indexer,
            "mtp_layers": self.mtp_layers,
            "moe": self.moe,
            "dense_intermediate_size": self.dense_intermediate_size,
            "quantization": self.quant,
        }
        return data


# Bounds of config.json integers: far above any real model, low enough that the planner's
# per-layer work stays small and its arithmetic exact.
MAX_LAYERS = 10000
MAX_HEADS = 65536
MAX_FIELD = 2 ** 40


_CORRECT = ("use the model's own config.json from its Hugging Face snapshot, or correct the "
            "field '%s'")


class _Reader(object):
    """Typed field access; every error names the field, the value and the fix."""

    def __init__(self, path, data):
        self.path = path
        self.data = data

    def has(self, key):
        return self.data.get(key) is not None

    def get(self, key, default=None):
        value = self.data.get(key)
        return default if value is None else value

    def need(self, key, why):
        if self.data.get(key) is None:
            raise ModelConfigError(self.path, key, "is missing (needed for %s)" % why)
        return self.data[key]

    def _int(self, key, value, minimum, maximum):
        if isinstance(value, bool) or not isinstance(value, int) or \
                not minimum <= value <= maximum:
            raise ModelConfigError(self.path, key, "must be an integer from %d to %d, got %s"
                                   % (minimum, maximum, shown(value)), _CORRECT % key)
        return value

    def need_int(self, key, why, minimum=1, maximum=MAX_FIELD):
        return self._int(key, self.need(key, why), minimum, maximum)

    def int_or(self, key, default, minimum=0, maximum=MAX_FIELD):
        if self.data.get(key) is None:
            return default
        return self._int(key, self.data[key], minimum, maximum)

    def need_str(self, key, why):
        value = self.need(key, why)
        if not isinstance(value, str) or not value:
            raise ModelConfigError(self.path, key, "must be a non-empty string, got %s"
                                   % shown(value), _CORRECT % key)
        return value


def _text_config(data):
    # Multimodal wrappers keep the language model under text_config (e.g. Omni models).
    if isinstance(data.get("text_config"), dict) and "num_attention_heads" not in data:
        merged = dict(data["text_config"])
        for key in ("architectures", "quantization_config", "torch_dtype"):
            if key in data and key not in merged:
                merged[key] = data[key]
        return merged
    return data


# A model's config.json is kilobytes (the biggest real ones, with long label maps, are well
# under 1 MiB); anything larger is not one, and is refused before it is read.
MAX_CONFIG_BYTES = 16 * 2 ** 20

_FILE_KINDS = ((stat.S_ISDIR, "is a directory, not a file"),
               (stat.S_ISFIFO, "is a FIFO (named pipe), not a file"),
               (stat.S_ISCHR, "is a character device, not a file"),
               (stat.S_ISBLK, "is a block device, not a file"),
               (stat.S_ISSOCK, "is a socket, not a file"))


def _not_a_file(mode):
    for test, problem in _FILE_KINDS:
        if test(mode):
            return problem
    return None if stat.S_ISREG(mode) else "is not a regular file"


def _os_problem(exc):
    if exc.errno == errno.ENOENT:
        return "does not exist"
    if exc.errno == errno.ELOOP:
        return "is a symbolic link loop"
    if exc.errno == errno.ENOTDIR:
        return "does not exist (a part of the path is not a directory)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "cannot be read (permission denied)"
    return "cannot be read (%s)" % (exc.strerror or exc)


def read_json_file(path, name=None, fix=None):
    """Read one JSON object from a regular file of at most MAX_CONFIG_BYTES.

    Every way the file can be wrong is its own ModelConfigError: missing, a symbolic-link
    loop, a directory, a FIFO or device (never opened: a FIFO would block, /dev/zero never
    ends), too big, unreadable, not JSON, nested too deeply, or not an object. ``name``
    (config.json, hf_quant_config.json) starts the messages when the path is such a file.
    """
    fix = fix or "point model_config at the model directory or its config.json"
    replace = "replace it with the model's original %s" % (name or "config.json")

    def error(problem, fix):
        return ModelConfigError(path, None, "%s %s" % (name, problem) if name else problem,
                                fix)

    try:
        info = os.stat(path)
    except OSError as exc:
        raise error(_os_problem(exc), fix)
    except ValueError:  # a NUL byte in the path
        raise error("is not a valid path", fix)
    problem = _not_a_file(info.st_mode)
    if problem:
        raise error(problem, fix)
    if info.st_size > MAX_CONFIG_BYTES:
        raise error("is %d bytes, larger than any model config (at most %d)"
                    % (info.st_size, MAX_CONFIG_BYTES), replace)
    try:
        # O_NONBLOCK: should the file have become a FIFO since the stat, do not hang on it.
        handle = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        try:
            problem = _not_a_file(os.fstat(handle).st_mode)
            if problem:
                raise error(problem, fix)
            chunks, size = [], 0
            while size <= MAX_CONFIG_BYTES:
                chunk = os.read(handle, min(1 << 20, MAX_CONFIG_BYTES + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        finally:
            os.close(handle)
    except OSError as exc:
        raise error(_os_problem(exc), fix)
    if size > MAX_CONFIG_BYTES:
        raise error("is larger than any model config (more than %d bytes)" % MAX_CONFIG_BYTES,
                    replace)
    try:
        data = json.loads(b"".join(chunks))
    except RecursionError:
        raise error("nests its JSON too deeply to be a model config", replace)
    except ValueError as exc:  # also UnicodeDecodeError and over-long integers
        raise error("is not valid JSON (%s)" % shown(str(exc), 200), replace)
    if not isinstance(data, dict):
        raise error("is not a JSON object", replace)
    return data


def load_config(path):
    """Load config.json from a file or a model directory; returns (file path, dict)."""
    if not isinstance(path, str) or path == "":
        raise ModelConfigError(shown(path), None, "model_config is empty or not a path",
                               "give the path of the model's config.json or its directory")
    try:
        if os.path.isdir(path):
            path = os.path.join(path, "config.json")
    except ValueError:  # a NUL byte in the path
        raise ModelConfigError(shown(path), None, "is not a valid path",
                               "give the path of the model's config.json or its directory")
    data = read_json_file(path, "config.json" if os.path.basename(path) == "config.json"
                          else None)
    # ModelOpt 0.29 and before keep the quantization in hf_quant_config.json next to
    # config.json; vLLM reads it when config.json has none (vllm/transformers_utils/config.py).
    quant_path = os.path.join(os.path.dirname(path), "hf_quant_config.json")
    if data.get("quantization_config") is None and os.path.isfile(quant_path):
        data = dict(data, quantization_config=read_json_file(
            quant_path, "hf_quant_config.json",
            "replace it with the checkpoint's original hf_quant_config.json, or remove it"))
    return path, data


def _quantization(reader):
    qc = reader.get("quantization_config")
    if qc is None:
        return {"method": "none", "group_size": None, "block": None, "kv_cache": None}
    if not isinstance(qc, dict):
        raise ModelConfigError(reader.path, "quantization_config", "must be an object")
    method = str(qc.get("quant_method", "")).lower()
    producer = qc.get("producer") if isinstance(qc.get("producer"), dict) else {}
    # ModelOpt's hf_quant_config.json nests its fields under "quantization".
    nested = qc.get("quantization") if isinstance(qc.get("quantization"), dict) else {}
    if nested and not method:
        qc = dict(qc, **nested)
    algo = str(qc.get("quant_algo", "")).upper()
    kv_algo = qc.get("kv_cache_quant_algo")
    if method in ("modelopt", "modelopt_fp4") or producer.get("name") == "modelopt" or \
            (nested and algo):
        if algo in ("NVFP4", "W4A16_NVFP4", "MIXED_PRECISION") or method == "modelopt_fp4":
            group = qc.get("group_size") or 16
            if isinstance(group, bool) or not isinstance(group, int) or not 1 <= group <= 4096:
                raise ModelConfigError(reader.path, "quantization_config.group_size",
                                       "must be an integer from 1 to 4096, got %s"
                                       % shown(group))
            return {"method": "nvfp4", "group_size": group,
                    "block": None, "kv_cache": kv_algo, "quant_method": method or "modelopt"}
        if algo.startswith("FP8"):
            return {"method": "fp8", "group_size": None, "block": None, "kv_cache": kv_algo,
                    "quant_method": method}
        raise ModelConfigError(reader.path, "quantization_config.quant_algo",
                               "has an unsupported value %r" % algo,
                               "use a NVFP4 or FP8 ModelOpt checkpoint")
    if method == "compressed-tensors":
        fmt = str(qc.get("format", "")).lower()
        if "nvfp4" in fmt:
            return {"method": "nvfp4", "group_size": 16, "block": None, "kv_cache": kv_algo,
                    "quant_method": method}
        if "fp8" in fmt or "float" in fmt:
            return {"method": "fp8", "group_size": None, "block": None, "kv_cache": kv_algo,
                    "quant_method": method}
        return {"method": method, "group_size": None, "block": None, "kv_cache": kv_algo,
                "quant_method": method}
    if method == "fp8":
        block = qc.get("weight_block_size")
        if block is not None:
            if (not isinstance(block, list) or len(block) != 2
                    or not all(isinstance(b, int) and not isinstance(b, bool) and
                               0 < b <= 65536 for b in block)):
                raise ModelConfigError(reader.path, "quantization_config.weight_block_size",
                                       "must be two positive integers, got %r" % (block,))
            return {"method": "fp8_block", "group_size": None, "block": list(block),
                    "kv_cache": kv_algo, "quant_method": method}
        return {"method": "fp8", "group_size": None, "block": None, "kv_cache": kv_algo,
                "quant_method": method}
    return {"method": method or "unknown", "group_size": None, "block": None,
            "kv_cache": kv_algo, "quant_method": method}


# vllm/utils/torch_utils.py MODELOPT_TO_VLLM_KV_CACHE_DTYPE_MAP
_MODELOPT_KV_DTYPES = {"fp8": "fp8_e4m3", "nvfp4": "nvfp4"}


def _auto_kv_cache_dtype(qc):
    """What ``--kv-cache-dtype auto`` becomes for this checkpoint, or None (stays auto).

    vLLM 0.33 (vllm/utils/torch_utils.py resolve_kv_cache_dtype_string) takes the KV format
    of a ModelOpt checkpoint (quant_method modelopt*, which vLLM sets for producer
    "modelopt" or the legacy modelopt_quant_config layout, model_arch_config_convertor.py):
    kv_cache_scheme, else kv_cache_quant_algo, on the quantization dict or its top level.
    """
    if not isinstance(qc, dict):
        return None
    nested = qc.get("quantization") if isinstance(qc.get("quantization"), dict) else {}
    producer = qc.get("producer") if isinstance(qc.get("producer"), dict) else {}
    modelopt = str(qc.get("quant_method", "")).startswith("modelopt") or \
        producer.get("name") == "modelopt" or "modelopt_quant_config" in nested
    if not modelopt:
        return None
    inner = nested or qc
    algo = (inner.get("kv_cache_scheme") or qc.get("kv_cache_scheme") or
            inner.get("kv_cache_quant_algo") or qc.get("kv_cache_quant_algo"))
    if isinstance(algo, dict):
        if algo.get("dynamic") is False and algo.get("num_bits") == 8 and \
                algo.get("type") == "float":
            algo = "fp8"
        elif algo.get("num_bits") == 4 and algo.get("type") == "float":
            algo = "nvfp4"
        else:
            return "auto"
    if isinstance(algo, str):
        return _MODELOPT_KV_DTYPES.get(algo.lower(), "auto")
    return None


def _indexer_layers(reader, num_layers):
    """Count DSA layers that keep their own indexer cache ("full" indexer layers).

    As vLLM 0.33 decides it (model_executor/models/deepseek_v2.py, deepseek_v32 attention):
    ``index_topk_pattern`` (F = own indexer, S = reuse the previous top-k) when set, else a
    layer is shared when ``max(layer - index_skip_topk_offset + 1, 0) % index_topk_freq``
    is non-zero (defaults 1 and 2: every layer has one). ``indexer_types`` (transformers)
    is not read by vLLM. The MTP layer always has its own indexer (added by the caller).
    """
    pattern = reader.get("index_topk_pattern")
    if pattern is not None:
        if not isinstance(pattern, str) or len(pattern) != num_layers:
            raise ModelConfigError(reader.path, "index_topk_pattern",
                                   "must be a string of F/S, one per layer (%d)" % num_layers)
        return pattern.upper().count("F"), "index_topk_pattern"
    freq = reader.int_or("index_topk_freq", 1, minimum=1, maximum=MAX_LAYERS)
    if freq <= 1:
        return num_layers, "every layer (index_topk_freq 1)"
    offset = reader.int_or("index_skip_topk_offset", 2, minimum=0, maximum=MAX_LAYERS)
    full = sum(1 for layer in range(num_layers)
               if max(layer - offset + 1, 0) % freq == 0)
    return full, "index_topk_freq=%d, index_skip_topk_offset=%d" % (freq, offset)


def _attention_types(reader, num_layers, num_heads, model_type):
    """Attention layer kinds of a non-MLA model."""
    kv = reader.int_or("num_key_value_heads", num_heads, minimum=1, maximum=MAX_HEADS)
    head_dim = reader.int_or("head_dim", None, minimum=1, maximum=MAX_HEADS)
    if head_dim is None:
        hidden = reader.need_int("hidden_size", "the attention head size (head_dim is absent)")
        if hidden % num_heads or hidden // num_heads > MAX_HEADS:
            raise ModelConfigError(reader.path, "head_dim",
                                   "is missing and hidden_size %d is not a multiple of "
                                   "num_attention_heads %d" % (hidden, num_heads))
        head_dim = hidden // num_heads
    v_head_dim = reader.int_or("v_head_dim", head_dim, minimum=1, maximum=MAX_HEADS)

    pattern = reader.get("hybrid_layer_pattern")
    if pattern is not None:  # MiMo V2: 1 = sliding-window ("compressed softmax") layer
        if not isinstance(pattern, list) or len(pattern) != num_layers or \
                not all(p in (0, 1) and not isinstance(p, float) for p in pattern):
            raise ModelConfigError(reader.path, "hybrid_layer_pattern",
                                   "must list one 0/1 entry per layer (%d)" % num_layers)
        swa_layers = sum(1 for p in pattern if p == 1)
        types = []
        if num_layers - swa_layers:
            # vLLM 0.33 never gives MiMo's full-attention layers sinks
            # (add_full_attention_sink_bias is not read by mimo_v2.py).
            types.append(AttentionType(
                "full", num_layers - swa_layers, num_heads, kv, head_dim, v_head_dim))
        if swa_layers:
            swa_q = reader.need_int("swa_num_attention_heads", "the sliding-window layers' heads",
                                    maximum=MAX_HEADS)
            swa_kv = reader.need_int("swa_num_key_value_heads",
                                     "the sliding-window layers' KV heads", maximum=MAX_HEADS)
            swa_hd = reader.int_or("swa_head_dim", head_dim, minimum=1, maximum=MAX_HEADS)
            swa_vhd = reader.int_or("swa_v_head_dim", swa_hd if reader.has("swa_head_dim")
                                    else v_head_dim, minimum=1, maximum=MAX_HEADS)
            key = "sliding_window_size" if reader.has("sliding_window_size") else \
                "sliding_window"
            window = reader.int_or(key, None, minimum=1)
            if window is None:
                raise ModelConfigError(reader.path, "sliding_window_size",
                                       "is missing (needed to bound the sliding-window KV cache)")
            types.append(AttentionType(
                "sliding_window", swa_layers, swa_q, swa_kv, swa_hd, swa_vhd,
                sliding_window=window,
                sinks=bool(reader.get("add_swa_attention_sink_bias", False)),
                fields=("swa_num_attention_heads", "swa_num_key_value_heads")))
        return types

    layer_types = reader.get("layer_types")
    window = reader.int_or("sliding_window", None, minimum=0) \
        if reader.get("sliding_window") is not False else None
    sinks = model_type == "gpt_oss"
    if isinstance(layer_types, list) and window and any(
            "sliding" in str(t) for t in layer_types):
        swa_layers = sum(1 for t in layer_types if "sliding" in str(t))
        types = []
        if num_layers - swa_layers:
            types.append(AttentionType("full", num_layers - swa_layers, num_heads, kv,
                                       head_dim, v_head_dim, sinks=sinks))
        types.append(AttentionType("sliding_window", swa_layers, num_heads, kv, head_dim,
                                   v_head_dim, sliding_window=window, sinks=sinks))
        return types
    return [AttentionType("full", num_layers, num_heads, kv, head_dim, v_head_dim, sinks=sinks)]


def _moe(reader, num_layers):
    experts = None
    for key in ("n_routed_experts", "num_experts", "num_local_experts"):
        if reader.has(key):
            experts = reader.int_or(key, 0, minimum=1, maximum=MAX_HEADS)
            break
    if experts is None:
        return None, 0
    field = "moe_intermediate_size"
    width = reader.int_or(field, None, minimum=1)
    if width is None:
        # MiniMax-style configs keep the per-expert width in intermediate_size.
        field = "intermediate_size"
        width = reader.need_int(field, "the MoE expert width "
                                "(moe_intermediate_size is absent)")
    freq = reader.get("moe_layer_freq")
    if isinstance(freq, list):
        dense_layers = sum(1 for f in freq if not f)
    else:
        dense_layers = reader.int_or("first_k_dense_replace", 0, maximum=num_layers)
    return {
        "experts": experts,
        "experts_per_token": reader.int_or("num_experts_per_tok", 0, maximum=MAX_HEADS),
        "shared_experts": reader.int_or("n_shared_experts", 0, maximum=MAX_HEADS),
        "intermediate_size": width,
        "field": field,
    }, dense_layers


# quantization_config methods whose weight-shape rules the engine models (others: a note).
_QUANT_MODELLED = ("none", "nvfp4", "fp8", "fp8_block", "compressed-tensors")
_MODELLED_LAYER_TYPES = ("full_attention", "sliding_attention", "attention",
                         "sliding_window_attention")


def _unmodelled_layer_types(data):
    layer_types = data.get("layer_types")
    if not isinstance(layer_types, list):
        return set()
    return set(str(t) for t in layer_types) - set(_MODELLED_LAYER_TYPES)


def _architecture(path, data, raw):
    """The first of ``architectures`` (None when the config lists none)."""
    archs = data.get("architectures") or raw.get("architectures") or []
    if not isinstance(archs, list) or not all(isinstance(a, str) and a for a in archs):
        raise ModelConfigError(path, "architectures", "must be a list of model class names, "
                               "got %s" % shown(archs), _CORRECT % "architectures")
    return archs[0] if archs else None


def parse_model(path):
    """Parse config.json at ``path`` (a file or a model directory) into a ModelSpec."""
    path, raw = load_config(path)
    data = _text_config(raw)
    reader = _Reader(path, data)
    architecture = _architecture(path, data, raw)
    model_type = reader.need_str("model_type", "choosing the model family's rules")
    num_layers = reader.need_int("num_hidden_layers", "per-rank layer and KV-cache sizes",
                                 maximum=MAX_LAYERS)
    num_heads = reader.need_int("num_attention_heads", "the attention-heads vs TP rule",
                                maximum=MAX_HEADS)
    vocab = reader.need_int("vocab_size", "the vocabulary-padding vs TP rule")
    max_pos = reader.int_or("max_position_embeddings", None, minimum=1)
    hidden = reader.int_or("hidden_size", None, minimum=1)

    mla = None
    indexer = None
    attention = []
    if reader.has("kv_lora_rank") or model_type in MLA_MODEL_TYPES:
        mla = {
            "q_heads": num_heads,
            "kv_lora_rank": reader.need_int("kv_lora_rank", "the MLA latent KV-cache size",
                                            maximum=MAX_HEADS),
            "qk_rope_head_dim": reader.need_int("qk_rope_head_dim",
                                                "the MLA latent KV-cache size",
                                                maximum=MAX_HEADS),
            "qk_nope_head_dim": reader.int_or("qk_nope_head_dim", 0, maximum=MAX_HEADS),
            "v_head_dim": reader.int_or("v_head_dim", 0, maximum=MAX_HEADS),
            "q_lora_rank": reader.int_or("q_lora_rank", None),
        }
        if reader.has("index_topk"):
            full, basis = _indexer_layers(reader, num_layers)
            indexer = {
                "topk": reader.need_int("index_topk", "the DSA indexer"),
                "head_dim": reader.need_int("index_head_dim", "the DSA indexer cache size",
                                            maximum=MAX_HEADS),
                "n_heads": reader.int_or("index_n_heads", 0, maximum=MAX_HEADS),
                "cache_layers": full,
                "cache_layers_basis": basis,
            }
    else:
        attention = _attention_types(reader, num_layers, num_heads, model_type)

    for field in MTP_COUNT_FIELDS:  # a malformed count is a config error
        reader.int_or(field, 0, maximum=MAX_LAYERS)
    mtp = mtp_support(architecture, model_type, data)
    # Without a declared count vLLM builds one MTP layer (the KV estimate uses it).
    mtp_layers = (mtp.layers if mtp.layers is not None else 1) if mtp.supported else 0
    mtp_field = mtp.field
    mtp_attention = None
    if attention:
        swa = [t for t in attention if t.sliding_window]
        # MiMo's MTP layers are sliding-window layers; others repeat the full layer.
        mtp_attention = "sliding_window" if swa and architecture in FIXED_MTP_ARCHS else "full"

    moe, dense_layers = _moe(reader, num_layers)
    dense_width = reader.int_or("intermediate_size", None, minimum=1) if moe is None or \
        reader.has("moe_intermediate_size") else None
    if moe is None:
        dense_layers = num_layers
    notes = []
    for kind in sorted(_unmodelled_layer_types(data)):
        notes.append("layer_types lists %r layers, which this engine does not model (their "
                     "heads, state and cache are not checked)" % kind)
    if reader.has("full_attention_interval") or reader.has("linear_num_value_heads"):
        notes.append("the model interleaves linear-attention (Gated DeltaNet) layers, which "
                     "this engine does not model (their heads, state and cache are not "
                     "checked)")
    if reader.has("hybrid_override_pattern"):
        notes.append("hybrid_override_pattern has Mamba layers, which this engine does not "
                     "model (their heads, state and cache are not checked)")
    quant = _quantization(reader)
    if quant["method"] not in _QUANT_MODELLED:
        notes.append("quantization_config quant_method %r is not modelled (its weight-shape "
                     "rules are not checked)" % quant["method"])
    return ModelSpec(
        path=path,
        model_type=model_type,
        architecture=architecture,
        num_layers=num_layers,
        hidden_size=hidden,
        vocab_size=vocab,
        max_position_embeddings=max_pos,
        num_attention_heads=num_heads,
        attention=attention,
        mla=mla,
        indexer=indexer,
        mtp_layers=mtp_layers,
        mtp_layers_field=mtp_field,
        mtp=mtp,
        cudagraph_max_default=CUDAGRAPH_MAX_DEFAULT.get(architecture),
        auto_kv_cache_dtype=_auto_kv_cache_dtype(data.get("quantization_config")),
        notes=notes,
        mtp_attention=mtp_attention,
        moe=moe,
        dense_intermediate_size=dense_width,
        dense_layers=dense_layers if dense_width else 0,
        quant=quant,
        quant_config=reader.get("quantization_config") if isinstance(
            reader.get("quantization_config"), dict) else {},
        tie_word_embeddings=reader.get("tie_word_embeddings", False) is True,
        dtype=str(reader.get("torch_dtype", reader.get("dtype", "bfloat16"))),
    )


def read_draft(spec):
    """Facts about a speculative draft checkpoint (None when the method has no draft).

    ``spec`` is the validated speculative_config. A draft that is not a readable local
    config gives ``error`` instead of failing the plan (it may be a Hugging Face id).
    """
    if not spec or spec.get("is_mtp") or not spec.get("model"):
        return None
    path = spec["model"]
    try:
        dummy, raw = load_config(path)
    except ModelConfigError as exc:
        return {"path": path, "architecture": None, "error": exc.problem}
    data = _text_config(raw)
    try:
        architecture = _architecture(path, data, raw)
    except ModelConfigError as exc:
        return {"path": path, "architecture": None, "error": str(exc)}
    return {"path": path, "architecture": architecture, "error": None,
            "max_position_embeddings": data.get("max_position_embeddings")}
