# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""A model directory's manifest, and whether two nodes hold the same model.

Every rank loads its shard of the weights from its own node's copy of the model directory,
so a copy that differs on one node serves wrong tokens (or fails at load) without an error
that names the node. The manifest of a directory lists every file (relative path) with its
size and a SHA-256:

* of the whole file for files up to ``hash_limit`` bytes (config.json, the safetensors
  index, the tokenizer, generation config; every file of a small model) or for every file
  when ``full`` is asked (hundreds of GB: an opt-in);
* otherwise, for ``.safetensors`` shards, of the shard's header (the 8-byte length and the
  JSON that names every tensor, its dtype, shape and offsets) -- cheap, and it catches a
  shard of another checkpoint or quantization; for other large files the size only.

``differences(reference, other)`` lists what differs between two manifests.
"""
from __future__ import annotations

import hashlib
import os
import struct

DEFAULT_HASH_LIMIT = 64 * 1024 * 1024
_CHUNK = 4 * 1024 * 1024
_MAX_HEADER = 100 * 1024 * 1024  # safetensors refuses larger headers as well


class ManifestError(Exception):
    pass


def hash_into(digest, path):
    """Feed the file ``path`` to ``digest`` (a hashlib object) in chunks; returns it."""
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(_CHUNK)
            if not chunk:
                break
            digest.update(chunk)
    return digest


def _sha256_file(path):
    return hash_into(hashlib.sha256(), path).hexdigest()


def _safetensors_header_sha256(path):
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) != 8:
            return None
        (length,) = struct.unpack("<Q", head)
        if length > _MAX_HEADER:
            return None
        body = handle.read(length)
    return hashlib.sha256(head + body).hexdigest()


def walk_files(path):
    """The regular files under ``path`` (relative paths, sorted), hidden files and
    directories left out (a copy's partial files, the model role's records)."""
    out = []
    for root, dirs, names in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            full_path = os.path.join(root, name)
            if not name.startswith(".") and os.path.isfile(full_path):
                out.append(os.path.relpath(full_path, path))
    return out


def manifest(path, hash_limit=DEFAULT_HASH_LIMIT, full=False):
    """The manifest of the model directory ``path`` (see the module's docstring)."""
    if not os.path.isdir(path):
        raise ManifestError("%s is not a directory" % path)
    files = {}
    total = 0
    for rel in walk_files(path):
        full_path = os.path.join(path, rel)
        size = os.path.getsize(full_path)
        total += size
        entry = {"size": size}
        if full or size <= hash_limit:
            entry["sha256"] = _sha256_file(full_path)
        elif rel.endswith(".safetensors"):
            entry["header_sha256"] = _safetensors_header_sha256(full_path)
        files[rel] = entry
    return {"path": path, "files": files, "count": len(files), "total_bytes": total,
            "hash_limit": hash_limit, "full": bool(full)}


# The options of the model_manifest module and of node_facts' ``model`` (read_directory's).
OPTIONS = dict(
    path=dict(type="path", required=True),
    hash_limit=dict(type="int", default=DEFAULT_HASH_LIMIT),
    full=dict(type="bool", default=False),
)


def read_directory(path, hash_limit=DEFAULT_HASH_LIMIT, full=False):
    """What the model_manifest module (and node_facts' ``model``) returns for ``path``:
    ``exists`` and ``manifest`` (empty when the directory does not exist). Raises
    ManifestError for a negative ``hash_limit`` or a directory it cannot read."""
    if hash_limit < 0:
        raise ManifestError("hash_limit %d: give a number of bytes (0 or more)" % hash_limit)
    if not os.path.isdir(path):
        return {"exists": False, "manifest": {}}
    try:
        return {"exists": True, "manifest": manifest(path, hash_limit, full)}
    except (ManifestError, OSError) as exc:
        raise ManifestError("cannot read the model directory %s: %s" % (path, exc))


def differences(reference, other):
    """What ``other`` has that differs from ``reference``, one string each (empty: same)."""
    out = []
    ref_files = reference.get("files") or {}
    other_files = other.get("files") or {}
    missing = sorted(set(ref_files) - set(other_files))
    extra = sorted(set(other_files) - set(ref_files))
    if missing:
        out.append("missing %s" % ", ".join(missing[:5]) + (" and %d more" % (len(missing) - 5)
                                                            if len(missing) > 5 else ""))
    if extra:
        out.append("extra %s" % ", ".join(extra[:5]) + (" and %d more" % (len(extra) - 5)
                                                        if len(extra) > 5 else ""))
    for name in sorted(set(ref_files) & set(other_files)):
        a, b = ref_files[name], other_files[name]
        if a.get("size") != b.get("size"):
            out.append("%s is %s bytes (head: %s)" % (name, b.get("size"), a.get("size")))
            continue
        for key, label in (("sha256", "content"), ("header_sha256", "safetensors header")):
            if a.get(key) and b.get(key) and a[key] != b[key]:
                out.append("%s has another %s (sha256 %s..., head %s...)"
                           % (name, label, b[key][:12], a[key][:12]))
    return out
