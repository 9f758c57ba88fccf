# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""A Hugging Face safetensors checkpoint directory, read without loading a tensor.

A safetensors file starts with 8 bytes (little-endian unsigned length ``N``), then ``N``
bytes of JSON: for every tensor its ``dtype``, ``shape`` and ``data_offsets`` (begin, end,
relative to the data that follows the header), plus an optional ``__metadata__`` object
of strings. A sharded checkpoint has ``model.safetensors.index.json`` whose ``weight_map``
names, for every tensor, the shard that holds it. vLLM (0.33, ``model_loader/
weight_utils.py``) globs ``*.safetensors`` and, when the index exists, keeps only the
shards the index names; then it loads *every* tensor of those shards.

Only the standard library is used: this runs on the controller or on a node.

* ``read_header(path)``: one shard's header (tensors with dtype, shape, offsets, bytes).
* ``load_index(directory)``: the index (``weight_map``, ``metadata``) or None.
* ``tensors(directory)``: every tensor vLLM would load, with its dtype, shape, bytes and
  the file it is in.
* ``mtp_prefixes(config, expect)``: the weight-name prefixes of the MTP layers the config
  declares (GLM-5 / DeepSeek V3: ``model.layers.<num_hidden_layers + i>.``; MiMo V2:
  ``model.mtp.layers.<i>.``).
* ``check(directory, expect)``: findings (dicts: ``severity``, ``file``, ``message``,
  ``fix``): the index is complete (every shard it names exists, every tensor it maps is in
  that shard, no shard is cut short), the MTP layers are there when MTP is planned, and the
  quantization of config.json is the one the recipe's model profile was proven with.

Every problem with a file -- missing, unreadable, not JSON, a header that lies about its
size -- is a ``CheckpointError`` (``read_header``, ``load_index``, ``tensors``) or a finding
(``check``) that names the file and the fix; never a traceback.
"""
from __future__ import annotations

import json
import os
import re
import stat
import struct

INDEX = "model.safetensors.index.json"
CONFIG = "config.json"
QUANT_CONFIG = "hf_quant_config.json"
MAX_HEADER = 100 * 1024 * 1024  # what the safetensors library itself refuses beyond
MAX_JSON = 64 * 1024 * 1024     # an index of a 1T-parameter model is a few MB

# Bits per element of the safetensors dtypes (for the consistency of shape and offsets).
# Unknown dtypes are accepted: their size comes from the offsets alone.
DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "E8M0": 8,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32,
    "I64": 64, "U64": 64, "F64": 64,
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}

# Where a model's MTP layers live in its weights, by architecture (vLLM's loaders):
# "after": model.layers.<num_hidden_layers + i>. (deepseek_v2.py / glm_moe_dsa
# get_spec_layer_idx_from_weight_name); "mtp": model.mtp.layers.<i>. (mimo_v2_mtp.py).
_MTP_AFTER_LAYERS = "model.layers.%d."
_MTP_MIMO_V2 = "model.mtp.layers.%d."
MIMO_V2_ARCHS = frozenset(["MiMoV2ForCausalLM", "MiMoV2OmniForCausalLM",
                           "MiMoV2FlashForCausalLM"])
# vLLM loads only the first MiMo V2 MTP layer ("supports only the first MiMo-V2 MTP layer").
MIMO_V2_MTP_LAYERS = 1
AFTER_LAYERS_MODEL_TYPES = frozenset([
    "deepseek_v3", "deepseek_v32", "deepseek_v2", "glm_moe_dsa", "glm4_moe", "glm4_moe_lite",
    "kimi_k2", "pangu_ultra_moe", "ernie4_5_moe", "longcat_flash", "exaone_moe", "hy_v3",
    "hy_v4", "step3p5",
])


class CheckpointError(Exception):
    """A checkpoint file that cannot be used: names the file, the problem and the fix."""

    def __init__(self, path, problem, fix):
        self.path = path
        self.problem = problem
        self.fix = fix
        super(CheckpointError, self).__init__("%s: %s. Fix: %s" % (path, problem, fix))


def finding(severity, path, message, fix):
    return {"severity": severity, "file": path, "message": message, "fix": fix}


def text(item):
    """One finding as a line: ``<message> -- fix: <fix>``."""
    return "%s -- fix: %s" % (item["message"], item["fix"])


def _human(size):
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return ("%d %s" % (size, unit)) if unit == "bytes" else ("%.1f %s" % (size, unit))
        size /= 1024.0
    return str(size)


def _few(names, limit=5):
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown + (" and %d more" % (len(names) - limit) if len(names) > limit else "")


def _regular(path, fix):
    """os.stat of a regular file, or a CheckpointError that says what the path is instead."""
    try:
        info = os.stat(path)
    except OSError as exc:
        problem = "does not exist" if not os.path.lexists(path) else \
            "cannot be read (%s)" % (exc.strerror or exc)
        raise CheckpointError(path, problem, fix)
    except ValueError:
        raise CheckpointError(path, "is not a valid path", fix)
    if not stat.S_ISREG(info.st_mode):
        raise CheckpointError(path, "is not a regular file", fix)
    return info


def read_json(path, fix, limit=MAX_JSON):
    """One JSON object from a regular file of at most ``limit`` bytes."""
    info = _regular(path, fix)
    if info.st_size > limit:
        raise CheckpointError(path, "is %s, larger than any such file (at most %s)"
                              % (_human(info.st_size), _human(limit)), fix)
    try:
        with open(path, "rb") as handle:
            data = json.loads(handle.read())
    except OSError as exc:
        raise CheckpointError(path, "cannot be read (%s)" % (exc.strerror or exc), fix)
    except RecursionError:
        raise CheckpointError(path, "nests its JSON too deeply", fix)
    except ValueError as exc:
        raise CheckpointError(path, "is not valid JSON (%s)" % str(exc)[:160], fix)
    if not isinstance(data, dict):
        raise CheckpointError(path, "is not a JSON object", fix)
    return data


def _refetch(path):
    return ("copy %s again from its source (the model role re-fetches a file whose size or "
            "header differs), or re-download the checkpoint" % os.path.basename(path))


def read_header(path):
    """The header of the safetensors file ``path``.

    Returns ``{"tensors": {name: {"dtype", "shape", "data_offsets", "bytes"}}, "metadata":
    {...}, "header_bytes": 8 + N, "data_bytes": the data the header describes,
    "file_bytes": the file's size}``. Raises CheckpointError when the file is missing, is
    not a safetensors file, or is shorter than its header says (a copy cut short)."""
    fix = _refetch(path)
    info = _regular(path, fix)
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                raise CheckpointError(path, "is %d bytes, too short for a safetensors file "
                                      "(8-byte header length first)" % len(head), fix)
            (length,) = struct.unpack("<Q", head)
            if length > MAX_HEADER or length + 8 > info.st_size:
                raise CheckpointError(
                    path, "is not a safetensors file: its first 8 bytes give a header of "
                    "%d bytes, the file has %d" % (length, info.st_size), fix)
            body = handle.read(length)
    except OSError as exc:
        raise CheckpointError(path, "cannot be read (%s)" % (exc.strerror or exc), fix)
    try:
        header = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise CheckpointError(path, "has a safetensors header that is not JSON (%s)"
                              % str(exc)[:160], fix)
    if not isinstance(header, dict):
        raise CheckpointError(path, "has a safetensors header that is not a JSON object", fix)
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise CheckpointError(path, "has a __metadata__ that is not a JSON object", fix)
    out = {}
    end_max = 0
    for name, entry in header.items():
        where = "tensor %s" % name
        if not isinstance(entry, dict):
            raise CheckpointError(path, "%s is not described by an object" % where, fix)
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if not isinstance(dtype, str):
            raise CheckpointError(path, "%s has no dtype" % where, fix)
        if not isinstance(shape, list) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise CheckpointError(path, "%s has a shape that is not a list of sizes: %r"
                                  % (where, shape), fix)
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) and o >= 0
                           for o in offsets) or offsets[0] > offsets[1]):
            raise CheckpointError(path, "%s has data_offsets that are not [begin, end]: %r"
                                  % (where, offsets), fix)
        size = offsets[1] - offsets[0]
        bits = DTYPE_BITS.get(dtype)
        if bits is not None:
            count = 1
            for d in shape:
                count *= d
            if (count * bits + 7) // 8 != size:
                raise CheckpointError(
                    path, "%s is %s %s (%d bytes) but its data_offsets span %d bytes"
                    % (where, dtype, shape, (count * bits + 7) // 8, size), fix)
        end_max = max(end_max, offsets[1])
        out[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets),
                     "bytes": size}
    data_size = info.st_size - 8 - length
    if end_max > data_size:
        raise CheckpointError(
            path, "is cut short: its header describes %d bytes of tensor data, the file holds "
            "%d (%s missing)" % (end_max, data_size, _human(end_max - data_size)), fix)
    return {"tensors": out, "metadata": metadata, "header_bytes": 8 + length,
            "data_bytes": end_max, "file_bytes": info.st_size}


def load_index(directory):
    """The checkpoint's ``model.safetensors.index.json`` as ``{"weight_map": {tensor:
    shard}, "metadata": {...}}``, or None when there is none (a one-file checkpoint)."""
    path = os.path.join(directory, INDEX)
    if not os.path.lexists(path):
        return None
    fix = ("replace %s with the checkpoint's original (re-download it, or re-run the model "
           "role, which writes it when it assembles a hybrid checkpoint)" % INDEX)
    data = read_json(path, fix)
    weight_map = data.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(path, "has no weight_map (a mapping of tensor names to shard "
                              "files)", fix)
    for name, shard in weight_map.items():
        if not isinstance(shard, str) or not shard or shard.startswith("/") or \
                ".." in shard.split("/"):
            raise CheckpointError(path, "maps tensor %s to %r, which is not a file name in "
                                  "the checkpoint directory" % (name, shard), fix)
    metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    return {"weight_map": dict(weight_map), "metadata": metadata}


def shard_files(directory, index=None):
    """The safetensors files vLLM loads: those the index names, else every
    ``*.safetensors`` in the directory (sorted)."""
    if index is not None:
        return sorted(set(index["weight_map"].values()))
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(n for n in names if n.endswith(".safetensors") and not n.startswith("."))


def tensors(directory):
    """Every tensor vLLM would load from ``directory``: ``{name: {"dtype", "shape",
    "bytes", "file"}}`` (``file`` relative to the directory). Raises CheckpointError for a
    missing directory, index or shard, or a malformed one."""
    if not os.path.isdir(directory):
        raise CheckpointError(directory, "is not a directory",
                              "give the model directory (the one with config.json and the "
                              "safetensors files)")
    index = load_index(directory)
    files = shard_files(directory, index)
    if not files:
        raise CheckpointError(directory, "has no *.safetensors file",
                              "put the checkpoint's safetensors files there (the model role "
                              "does), or point the recipe at the directory that has them")
    out = {}
    for name in files:
        header = read_header(os.path.join(directory, name))
        for tensor, info in header["tensors"].items():
            out[tensor] = {"dtype": info["dtype"], "shape": info["shape"],
                           "bytes": info["bytes"], "file": name}
    return out


def _int(value):
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 \
        else None


def _text_config(config):
    text = config.get("text_config")
    return text if isinstance(text, dict) else config


def mtp_prefixes(config, expect=None):
    """The weight-name prefixes of the MTP layers vLLM loads for ``config`` (a parsed
    config.json), or None when this module does not know where the architecture keeps them.

    ``expect`` may give ``mtp_prefixes`` (a list: the recipe's word, e.g. a hybrid part's
    ``layer_prefix``), which wins."""
    expect = expect or {}
    if expect.get("mtp_prefixes"):
        return [str(p) for p in expect["mtp_prefixes"]]
    archs = config.get("architectures") or []
    arch = archs[0] if isinstance(archs, list) and archs else None
    text = _text_config(config)
    declared = _int(text.get("num_nextn_predict_layers"))
    if arch in MIMO_V2_ARCHS:
        return [_MTP_MIMO_V2 % i for i in range(MIMO_V2_MTP_LAYERS)]
    if text.get("model_type") in AFTER_LAYERS_MODEL_TYPES or \
            str(arch).startswith(("Deepseek", "Glm", "Kimi")):
        layers = _int(text.get("num_hidden_layers"))
        if layers is None or not declared:
            return []
        return [_MTP_AFTER_LAYERS % (layers + i) for i in range(declared)]
    return None


def _quantization(config, quant_file=None):
    """(quant_method, quant_algo or format) of a config, ("none", None) without one."""
    qc = config.get("quantization_config")
    if qc is None and isinstance(quant_file, dict):
        qc = quant_file
    if not isinstance(qc, dict):
        return ("none", None)
    nested = qc.get("quantization") if isinstance(qc.get("quantization"), dict) else {}
    producer = qc.get("producer") if isinstance(qc.get("producer"), dict) else {}
    method = str(qc.get("quant_method") or ("modelopt" if producer.get("name") == "modelopt"
                                            else "")).lower() or "unknown"
    algo = qc.get("quant_algo") or nested.get("quant_algo") or qc.get("format")
    return (method, str(algo).upper() if algo is not None else None)


def _describe_quant(quant):
    method, algo = quant
    if method == "none":
        return "no quantization (full-precision weights)"
    return "%s %s" % (method, algo) if algo else method


def read_config(directory, findings):
    """config.json (with hf_quant_config.json's quantization when config.json has none) or
    None with a finding."""
    path = os.path.join(directory, CONFIG)
    fix = ("put the checkpoint's original config.json in %s (re-download it, or re-run the "
           "model role)" % directory)
    try:
        config = read_json(path, fix, limit=16 * 1024 * 1024)
    except CheckpointError as exc:
        findings.append(finding("error", path, "%s %s" % (path, exc.problem), exc.fix))
        return None, None
    quant_path = os.path.join(directory, QUANT_CONFIG)
    quant = None
    if config.get("quantization_config") is None and os.path.lexists(quant_path):
        try:
            quant = read_json(quant_path, "replace it with the checkpoint's original %s"
                              % QUANT_CONFIG, limit=16 * 1024 * 1024)
        except CheckpointError as exc:
            findings.append(finding("error", quant_path, "%s %s" % (quant_path, exc.problem),
                                    exc.fix))
    return config, quant


def check(directory, expect=None):
    """Findings for the checkpoint in ``directory`` (empty: it is complete and as expected).

    ``expect``: ``mtp`` (bool: the plan drafts with MTP), ``mtp_prefixes`` (optional list:
    the MTP layers' weight prefixes, when the recipe declares them), ``profile`` (optional:
    the recipe's model profile, a parsed config.json) and ``profile_name`` (how to name it).
    """
    expect = expect or {}
    out = []
    if not os.path.isdir(directory):
        return [finding("error", directory, "%s is not a directory" % directory,
                        "put the model there (the model stage does: --tags model), or set "
                        "dgxspark_model_dir to where it is")]
    config, quant_file = read_config(directory, out)
    try:
        index = load_index(directory)
    except CheckpointError as exc:
        out.append(finding("error", exc.path, "%s %s" % (exc.path, exc.problem), exc.fix))
        return out
    files = shard_files(directory, index)
    if not files:
        out.append(finding("error", directory, "%s has no *.safetensors file" % directory,
                           "put the checkpoint's safetensors files there (the model stage "
                           "does), or point the recipe at the directory that has them"))
        return out
    wanted = {}  # shard -> tensors the index maps to it
    if index is not None:
        for tensor, shard in index["weight_map"].items():
            wanted.setdefault(shard, []).append(tensor)
    loaded = {}
    seen_in = {}
    missing_shards = []
    for name in files:
        path = os.path.join(directory, name)
        if not os.path.lexists(path):
            missing_shards.append(name)
            continue
        try:
            header = read_header(path)
        except CheckpointError as exc:
            out.append(finding("error", path, "%s %s" % (path, exc.problem), exc.fix))
            continue
        have = header["tensors"]
        absent = [t for t in wanted.get(name, ()) if t not in have]
        if absent:
            out.append(finding(
                "error", path, "%s does not hold %d tensor(s) the index maps to it: %s"
                % (path, len(absent), _few(absent)),
                "%s and %s are from different checkpoints: fetch both from one revision "
                "(re-run the model stage)" % (INDEX, name)))
        for tensor in have:
            if tensor in loaded:
                seen_in.setdefault(tensor, [loaded[tensor]]).append(name)
            loaded[tensor] = name
    if missing_shards:
        mtp = mtp_prefixes(config or {}, expect) or []
        lost = [t for s in missing_shards for t in wanted.get(s, ())]
        lost_mtp = [t for t in lost if t.startswith(tuple(mtp))] if mtp else []
        message = "%s: the index names %d shard(s) that are not there: %s (%d tensors%s)" % (
            directory, len(missing_shards), _few(missing_shards), len(lost),
            ", %d of them of the MTP layer %s*" % (len(lost_mtp), "*, ".join(
                sorted(set(p for p in mtp if any(t.startswith(p) for t in lost_mtp)))))
            if lost_mtp else "")
        out.append(finding(
            "error", os.path.join(directory, missing_shards[0]), message,
            "fetch the missing shard(s) from the source the index comes from (re-run the "
            "model stage: --tags model; for a hybrid checkpoint the MTP part's shards)"))
    if seen_in:
        out.append(finding(
            "warning", directory, "%s: %d tensor(s) are in more than one shard vLLM loads "
            "(%s): the last one read wins" % (directory, len(seen_in), _few(
                "%s in %s" % (t, " and ".join(s)) for t, s in seen_in.items())),
            "keep each tensor in one shard: remove the stray shard or rebuild the index"))
    if config is None:
        return out
    if expect.get("mtp"):
        prefixes = mtp_prefixes(config, expect)
        if prefixes is None:
            out.append(finding(
                "warning", os.path.join(directory, CONFIG),
                "MTP is planned, but where %s keeps its MTP layers is not known here: their "
                "tensors were not checked" % ((config.get("architectures") or ["the model"])[0]),
                "declare the MTP layer's weight prefix in the recipe (recipe_model_source "
                "part layer_prefix)"))
        elif not prefixes:
            out.append(finding(
                "error", os.path.join(directory, CONFIG),
                "MTP is planned, but %s declares no MTP layer (num_nextn_predict_layers is "
                "%r)" % (os.path.join(directory, CONFIG),
                         _text_config(config).get("num_nextn_predict_layers")),
                "use the checkpoint's config.json with num_nextn_predict_layers, or plan "
                "without MTP (remove speculative_config)"))
        else:
            names = set(index["weight_map"]) if index is not None else set(loaded)
            for prefix in prefixes:
                if any(n.startswith(prefix) for n in names):
                    continue
                out.append(finding(
                    "error", os.path.join(directory, INDEX if index is not None else ""),
                    "%s has no %s* tensor: the MTP layer the plan drafts with is not in the "
                    "checkpoint (vLLM would fail at load, or draft with random weights)"
                    % (directory, prefix),
                    "assemble a hybrid checkpoint with the MTP layer (recipe_model_source "
                    "with an mtp part whose layer_prefix is %s; the model stage merges it), "
                    "or plan without MTP" % prefix))
    profile = expect.get("profile")
    if isinstance(profile, dict):
        have, want = _quantization(config, quant_file), _quantization(profile)
        if have != want:
            out.append(finding(
                "error", os.path.join(directory, CONFIG),
                "%s is quantized as %s, the recipe's model profile %s as %s: the plan (memory, "
                "kernels, --quantization) was proven for the profile's"
                % (os.path.join(directory, CONFIG), _describe_quant(have),
                   expect.get("profile_name") or "", _describe_quant(want)),
                "fetch the checkpoint the recipe names (recipe_model_source), or use a recipe "
                "whose recipe_model_profile is this checkpoint's quantization"))
    return out


_LAYER = re.compile(r"^(.*\.layers\.)(\d+)\.")


# The options of the model_checkpoint module and of node_facts' ``checkpoint`` (report's).
OPTIONS = dict(
    path=dict(type="path", required=True),
    mtp=dict(type="bool", default=False),
    mtp_prefixes=dict(type="list", elements="str", default=[]),
    profile=dict(type="dict"),
    profile_name=dict(type="str", default=""),
)


def report(directory, mtp=False, mtp_prefixes=None, profile=None, profile_name=""):
    """What the model_checkpoint module (and node_facts' ``checkpoint``) returns for the
    checkpoint in ``directory``: ``exists`` (no finding when it does not), ``findings``, and
    the ``errors`` and ``warnings`` as lines."""
    if not os.path.isdir(directory):
        return {"exists": False, "findings": [], "errors": [], "warnings": []}
    expect = {"mtp": bool(mtp), "profile": profile, "profile_name": profile_name or ""}
    if mtp_prefixes:
        expect["mtp_prefixes"] = list(mtp_prefixes)
    found = check(directory, expect)
    return {"exists": True, "findings": found,
            "errors": [text(f) for f in found if f["severity"] == "error"],
            "warnings": [text(f) for f in found if f["severity"] != "error"]}


def layer_prefixes(names):
    """The ``<...>.layers.<n>.`` prefixes among tensor ``names`` (sorted by layer)."""
    found = set()
    for name in names:
        match = _LAYER.match(name)
        if match:
            found.add((match.group(1), int(match.group(2))))
    return ["%s%d." % (p, n) for p, n in sorted(found)]


def _header_bytes(entries, metadata):
    header = {}
    offset = 0
    for name, dtype, shape, size in entries:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    if metadata:
        header["__metadata__"] = dict((str(k), str(v)) for k, v in metadata.items())
    body = json.dumps(header, separators=(",", ":"), sort_keys=True).encode("utf-8")
    body += b" " * (-len(body) % 8)  # the data starts 8-byte aligned, as safetensors writes it
    return struct.pack("<Q", len(body)) + body


def write_safetensors(path, tensors_data, metadata=None):
    """Write a safetensors file: ``tensors_data`` is ``{name: (dtype, shape, raw bytes)}``
    (tests, and the lab's split of a checkpoint). Written to ``path`` + ``.tmp``, then
    renamed."""
    names = sorted(tensors_data)
    entries = [(n, tensors_data[n][0], tensors_data[n][1], len(tensors_data[n][2]))
               for n in names]
    tmp = path + ".tmp"
    with open(tmp, "wb") as handle:
        handle.write(_header_bytes(entries, metadata))
        for name in names:
            handle.write(tensors_data[name][2])
    os.rename(tmp, path)


def copy_tensors(src, dst, names, metadata=None):
    """Write the tensors ``names`` of the safetensors file ``src`` into a new file ``dst``
    (their bytes copied as they are; nothing is loaded as a tensor)."""
    header = read_header(src)
    missing = [n for n in names if n not in header["tensors"]]
    if missing:
        raise CheckpointError(src, "holds no tensor %s" % _few(missing),
                              "name tensors the file has")
    data = {}
    with open(src, "rb") as handle:
        for name in names:
            info = header["tensors"][name]
            handle.seek(header["header_bytes"] + info["data_offsets"][0])
            data[name] = (info["dtype"], info["shape"], handle.read(info["bytes"]))
    write_safetensors(dst, data, metadata if metadata is not None else header["metadata"])


def write_index(directory, weight_map, metadata=None):
    """Write ``model.safetensors.index.json`` (``total_size``: the bytes of the tensors
    of the shards it names, as Hugging Face writes it) atomically."""
    total = 0
    for shard in sorted(set(weight_map.values())):
        header = read_header(os.path.join(directory, shard))
        total += sum(header["tensors"][t]["bytes"] for t in header["tensors"]
                     if weight_map.get(t) == shard)
    data = {"metadata": dict(metadata or {}, total_size=total),
            "weight_map": dict(sorted(weight_map.items()))}
    path = os.path.join(directory, INDEX)
    with open(path + ".tmp", "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=False)
        handle.write("\n")
    os.rename(path + ".tmp", path)
    return path
