# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Model weights onto the cluster: the recipe's model source, hybrid assembly, what to move.

Plain Python (standard library only): runs on the controller (recipe checks, tests) and on
the head (the modules model_fetch, model_assemble and model_manifest).

* ``normalize_source(source, variable)``: a recipe's ``recipe_model_source`` checked and
  filled in: a ``base`` part and an optional ``mtp`` part, each from the Hugging Face hub
  (``repo``, ``revision``) or from a ``path`` (on the head, or on the controller with
  ``on: controller``). Every problem is a ``SourceError`` that names the key and the fix.
* ``hybrid_plan(base_dir, out_dir, mtp_dir=None, prefixes=None)``: what assembling a
  checkpoint takes -- hard-link every file of the base, add the MTP part's shards that hold
  the MTP layer's tensors (``prefixes``, e.g. ``model.layers.78.``), write the merged
  ``model.safetensors.index.json`` -- and whether the directory already is that. It refuses
  (``AssemblyError``) unless the MTP part has tensors under every prefix and every shard its
  index names for them is there and holds them. ``apply_plan(plan)`` does it.
* ``transfer(reference, other)``: from two manifests (``model_manifest.manifest``), which
  files a node must receive from the head and which it has that the head has not.

m9e's ``prepare-glm52-mtp-hybrid.sh`` (the published GLM-5.2 build) does the same with
``cp -al`` and an overlay; here the index is merged tensor by tensor, base tensors under an
MTP prefix are replaced (a base shard that holds some is rewritten without them, never
edited in place: the base's files stay as downloaded), and an MTP shard whose name a base
file already has is added under another name.
"""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import struct

from . import checkpoint as ckpt
from .model_manifest import walk_files

HUB = "https://huggingface.co"
PART_NAMES = ("base", "mtp")
PART_KEYS = frozenset(["repo", "revision", "path", "on", "include", "layer_prefix"])
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_CHUNK = 8 * 1024 * 1024
RECORD = ".dgxspark-model.json"  # what the model role assembled, in the model directory


class SourceError(Exception):
    """A model source that cannot be used: names the key, the value and the fix."""

    def __init__(self, key, value, problem, fix):
        self.key = key
        self.value = value
        self.problem = problem
        self.fix = fix
        super(SourceError, self).__init__("%s=%r %s: %s" % (key, value, problem, fix))


class AssemblyError(Exception):
    """A hybrid checkpoint that cannot be assembled: names the file, the problem, the fix."""

    def __init__(self, path, problem, fix):
        self.path = path
        self.problem = problem
        self.fix = fix
        super(AssemblyError, self).__init__("%s: %s. Fix: %s" % (path, problem, fix))


def store_name(part):
    """The directory name of a hub part in the model store: ``owner--name@revision``."""
    return "%s@%s" % (part["repo"].replace("/", "--"), part["revision"])


def normalize_source(source, variable="recipe_model_source"):
    """``source`` checked; returns ``{"base": part, "mtp": part or None, "hybrid": bool}``.

    A part is ``{"repo", "revision"}`` (the hub; ``revision`` a branch, tag or commit: a
    commit pins it) or ``{"path", "on": "head" | "controller"}``; ``include`` (a list of
    glob patterns: only these files of a hub repository) is optional. The ``mtp`` part may
    name ``layer_prefix`` (a string or a list: the MTP layers' weight-name prefixes); without
    it they come from the base's config.json (``checkpoint.mtp_prefixes``)."""
    if source is None:
        return None
    if not isinstance(source, dict):
        raise SourceError(variable, source, "is not a mapping",
                          "give {base: {repo: owner/name, revision: <commit>}} (and an mtp "
                          "part for a hybrid checkpoint), or {base: {path: /dir}}")
    for key in source:
        if key not in PART_NAMES:
            raise SourceError("%s.%s" % (variable, key), source[key], "is not a part",
                              "use base (the checkpoint) and optionally mtp (the MTP layer "
                              "of a hybrid checkpoint)")
    if "base" not in source:
        raise SourceError(variable, source, "has no base part",
                          "give base: {repo: owner/name, revision: <commit>} or base: "
                          "{path: /dir}")
    out = {"base": None, "mtp": None}
    for name in PART_NAMES:
        if source.get(name) is None:
            continue
        out[name] = _part("%s.%s" % (variable, name), source[name], name)
    out["hybrid"] = out["mtp"] is not None
    return out


def _part(key, part, name):
    if not isinstance(part, dict):
        raise SourceError(key, part, "is not a mapping",
                          "give {repo: owner/name, revision: <commit>} or {path: /dir}")
    for k in part:
        if k not in PART_KEYS or (k == "layer_prefix" and name != "mtp"):
            raise SourceError("%s.%s" % (key, k), part[k], "is not a key of a model part",
                              "use repo and revision, or path (and on: head | controller)"
                              + ("; layer_prefix in the mtp part" if name == "mtp" else ""))
    has_repo, has_path = part.get("repo") is not None, part.get("path") is not None
    if has_repo == has_path:
        raise SourceError(key, part, "needs exactly one of repo and path",
                          "give repo (a Hugging Face repository, owner/name) with revision, "
                          "or path (a directory that holds the checkpoint)")
    out = {}
    if has_repo:
        repo = part["repo"]
        if not isinstance(repo, str) or not _REPO.match(repo):
            raise SourceError(key + ".repo", repo, "is not a Hugging Face repository id",
                              "give owner/name, e.g. Mapika/GLM-5.2-NVFP4")
        revision = part.get("revision")
        if not isinstance(revision, str) or not revision.strip() or ".." in revision \
                or re.search(r"\s", revision.strip()):
            raise SourceError(key + ".revision", revision, "is not a revision",
                              "give the commit (40 hex digits) the plan was proven with, or "
                              "a branch or tag")
        out.update(repo=repo, revision=revision.strip())
        if part.get("on") is not None:
            raise SourceError(key + ".on", part["on"], "applies to a path only",
                              "remove on (a hub part is downloaded on the head)")
    else:
        path = part["path"]
        if not isinstance(path, str) or not path.startswith("/"):
            raise SourceError(key + ".path", path, "is not an absolute path",
                              "give the directory's absolute path")
        where = part.get("on", "head")
        if where not in ("head", "controller"):
            raise SourceError(key + ".on", where, "is not head or controller",
                              "say where the directory is: head or controller")
        if part.get("revision") is not None:
            raise SourceError(key + ".revision", part["revision"], "applies to a repo only",
                              "remove revision (a path is taken as it is)")
        out.update(path=path.rstrip("/") or "/", on=where)
    include = part.get("include")
    if include is not None:
        if not isinstance(include, list) or not include or \
                not all(isinstance(p, str) and p for p in include):
            raise SourceError(key + ".include", include, "is not a list of glob patterns",
                              "give file patterns, e.g. ['*.safetensors', '*.json']")
        out["include"] = list(include)
    prefix = part.get("layer_prefix")
    if prefix is not None:
        prefixes = [prefix] if isinstance(prefix, str) else prefix
        if not isinstance(prefixes, list) or not prefixes or not all(
                isinstance(p, str) and p.endswith(".") and len(p) > 1 for p in prefixes):
            raise SourceError(key + ".layer_prefix", prefix, "is not a weight-name prefix",
                              "give the MTP layer's prefix with its trailing dot, e.g. "
                              "model.layers.78.")
        out["layer_prefixes"] = list(prefixes)
    return out


def head_parts(source, store_dir):
    """The parts of ``source`` (a recipe's model source, raw or normalized) with the
    directory each has on the head: ``[{"name": "base" | "mtp", "kind": "hub" | "head" |
    "controller", "dir", ...the part's keys}]`` (empty for no source). A hub part goes to
    ``store_dir/<owner>--<name>@<revision>``, a controller path to
    ``store_dir/controller--<basename>``; a head path is used where it is."""
    if source is None:
        return []
    if isinstance(source, dict) and "hybrid" in source:
        source = dict((k, v) for k, v in source.items() if k != "hybrid")
    normal = normalize_source(source, "model_source")
    if not isinstance(store_dir, str) or not store_dir.startswith("/"):
        raise SourceError("model_store_dir", store_dir, "is not an absolute path",
                          "give the directory on the head that keeps downloaded parts")
    out = []
    for name in PART_NAMES:
        part = normal.get(name)
        if part is None:
            continue
        if "repo" in part:
            kind, where = "hub", os.path.join(store_dir, store_name(part))
        elif part["on"] == "head":
            kind, where = "head", part["path"]
        else:
            kind = "controller"
            where = os.path.join(store_dir, "controller--%s" % os.path.basename(part["path"]))
        out.append(dict(part, name=name, kind=kind, dir=where))
    return out


def is_pinned(part):
    """Whether a hub part names a commit (not a branch or tag that can move)."""
    return bool(part and part.get("revision") and re.match(r"^[0-9a-f]{40}$", part["revision"]))


# --- hybrid assembly -----------------------------------------------------------------

def _weight_map(directory, what):
    """The tensor -> shard map of a checkpoint directory: its index, or built from the
    headers of its safetensors files when it has none."""
    try:
        index = ckpt.load_index(directory)
    except ckpt.CheckpointError as exc:
        raise AssemblyError(exc.path, exc.problem, exc.fix)
    if index is not None:
        return index["weight_map"], index["metadata"], True
    weight_map = {}
    for name in ckpt.shard_files(directory):
        try:
            header = ckpt.read_header(os.path.join(directory, name))
        except ckpt.CheckpointError as exc:
            raise AssemblyError(exc.path, exc.problem, exc.fix)
        weight_map.update((t, name) for t in header["tensors"])
    if not weight_map:
        raise AssemblyError(directory, "holds no safetensors checkpoint (%s)" % what,
                            "point the %s part at the directory with the *.safetensors "
                            "files (and their index)" % what)
    return weight_map, {}, False


def mtp_prefixes_for(base_dir, declared=None):
    """The MTP layers' weight prefixes: the declared ones, else from the base's
    config.json. Raises AssemblyError when neither says."""
    if declared:
        return list(declared)
    config_path = os.path.join(base_dir, ckpt.CONFIG)
    try:
        config = ckpt.read_json(config_path, "use the checkpoint's original config.json")
    except ckpt.CheckpointError as exc:
        raise AssemblyError(exc.path, exc.problem, exc.fix)
    prefixes = ckpt.mtp_prefixes(config)
    if not prefixes:
        raise AssemblyError(config_path, "does not say where the MTP layer's weights are "
                            "(num_nextn_predict_layers / architecture)",
                            "declare the mtp part's layer_prefix in the recipe, e.g. "
                            "model.layers.78.")
    return prefixes


def hybrid_plan(base_dir, out_dir, mtp_dir=None, prefixes=None):
    """What assembling ``out_dir`` from ``base_dir`` (plus the MTP layer of ``mtp_dir``)
    takes. Returns ``{"actions": [...], "index": merged index or None, "changed": bool,
    "mtp_tensors": n, "replaced": [...], "extra": [...]}``; each action is ``{"op": "link" |
    "filter", "src", "dst", "keep"?}`` or ``{"op": "index"}``, only those not already done.

    Refuses (AssemblyError) unless the MTP part has a tensor under every prefix and every
    shard its index names for them is present and holds them."""
    if os.path.realpath(base_dir) == os.path.realpath(out_dir) and mtp_dir is None:
        return {"actions": [], "index": None, "changed": False, "mtp_tensors": 0,
                "replaced": [], "extra": [], "files": 0}
    if mtp_dir is not None and os.path.realpath(base_dir) == os.path.realpath(out_dir):
        raise AssemblyError(out_dir, "is the base part's own directory",
                            "assemble the hybrid checkpoint into another directory (the "
                            "model directory), the base stays as fetched")
    if not os.path.isdir(base_dir):
        raise AssemblyError(base_dir, "is not a directory",
                            "fetch the base checkpoint first (the model role does) or fix its path")
    base_files = walk_files(base_dir)
    wanted = {}       # relative path in out_dir -> action
    index = None
    replaced = []
    mtp_count = 0
    if mtp_dir is None:
        for rel in base_files:
            wanted[rel] = {"op": "link", "src": os.path.join(base_dir, rel)}
    else:
        if not os.path.isdir(mtp_dir):
            raise AssemblyError(mtp_dir, "is not a directory",
                                "fetch the MTP part first (the model role does) or fix its path")
        prefixes = tuple(prefixes or mtp_prefixes_for(base_dir))
        base_map, base_meta, dummy = _weight_map(base_dir, "base")
        mtp_map, dummy, dummy = _weight_map(mtp_dir, "mtp")
        mtp_keys = dict((t, s) for t, s in mtp_map.items() if t.startswith(prefixes))
        absent = [p for p in prefixes if not any(t.startswith(p) for t in mtp_keys)]
        if absent:
            raise AssemblyError(
                mtp_dir, "has no tensor under %s (its checkpoint has %d tensors, none of the "
                "MTP layer)" % (", ".join(p + "*" for p in absent), len(mtp_map)),
                "point the mtp part at the repository that holds the trained MTP layer "
                "(GLM-5.2: sant1an/GLM-5.2-NVFP4-MTP), or fix layer_prefix")
        by_shard = {}
        for tensor, shard in mtp_keys.items():
            by_shard.setdefault(shard, []).append(tensor)
        missing = sorted(s for s in by_shard if not os.path.isfile(os.path.join(mtp_dir, s)))
        if missing:
            raise AssemblyError(
                os.path.join(mtp_dir, missing[0]),
                "the MTP part's index names %d shard(s) for the MTP layer that are not there: "
                "%s" % (len(missing), ", ".join(missing)),
                "fetch the MTP part again (the model role resumes the download); refusing to "
                "assemble a checkpoint without its MTP layer")
        _shards_hold(mtp_dir, by_shard, "MTP ", "fetch the MTP part again from one revision")
        mtp_count = len(mtp_keys)
        # base shards: linked, or rewritten without the tensors the MTP part replaces
        replaced = sorted(t for t in base_map if t.startswith(prefixes))
        base_shards = set(base_map.values())
        holding = {}
        for tensor in replaced:
            holding.setdefault(base_map[tensor], []).append(tensor)
        merged = dict((t, s) for t, s in base_map.items() if not t.startswith(prefixes))
        for rel in base_files:
            if rel == ckpt.INDEX:
                continue
            src = os.path.join(base_dir, rel)
            if rel in holding:
                keep = sorted(t for t, s in base_map.items() if s == rel and t in merged)
                if keep:
                    wanted[rel] = {"op": "filter", "src": src, "keep": keep}
                continue  # a shard of MTP tensors only: left out
            if rel.endswith(".safetensors") and rel not in base_shards:
                continue  # a stray shard the base's index does not name: vLLM skips it too
            wanted[rel] = {"op": "link", "src": src}
        taken = set(wanted)
        for shard in sorted(by_shard):
            name = shard
            if name in taken:
                stem = name[:-len(".safetensors")] if name.endswith(".safetensors") else name
                name = "mtp-%s.safetensors" % os.path.basename(stem)
                while name in taken:
                    name = "mtp-" + name
            taken.add(name)
            wanted[name] = {"op": "link", "src": os.path.join(mtp_dir, shard)}
            for tensor in by_shard[shard]:
                merged[tensor] = name
        meta = dict((k, v) for k, v in base_meta.items() if k != "total_size")
        index = {"metadata": meta, "weight_map": dict(sorted(merged.items()))}
    actions = []
    for rel, action in sorted(wanted.items()):
        dst = os.path.join(out_dir, rel)
        action = dict(action, dst=dst, rel=rel)
        if action["op"] == "link" and _same_file(action["src"], dst):
            continue
        if action["op"] == "filter" and _filtered_ok(dst, action["keep"], action["src"]):
            continue
        actions.append(action)
    if index is not None:
        current = None
        try:
            current = ckpt.load_index(out_dir) if os.path.isdir(out_dir) else None
        except ckpt.CheckpointError:
            current = None
        if current is None or current["weight_map"] != index["weight_map"]:
            actions.append({"op": "index", "dst": os.path.join(out_dir, ckpt.INDEX),
                            "rel": ckpt.INDEX})
    extra = []
    if os.path.isdir(out_dir):
        known = set(wanted) | ({ckpt.INDEX} if index is not None else set())
        extra = [f for f in walk_files(out_dir) if f not in known]
    return {"actions": actions, "index": index, "changed": bool(actions),
            "mtp_tensors": mtp_count, "replaced": replaced, "extra": extra,
            "files": len(wanted) + (1 if index is not None else 0)}


def _same_file(src, dst):
    """``dst`` is ``src`` (the same inode), or a copy of it with the same size and mtime (a
    copy made where a hard link was not possible)."""
    try:
        a, b = os.stat(src), os.stat(dst)
    except OSError:
        return False
    if (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino):
        return True
    return a.st_size == b.st_size and int(a.st_mtime) == int(b.st_mtime)


def _filtered_ok(dst, keep, src):
    try:
        header = ckpt.read_header(dst)
    except ckpt.CheckpointError:
        return False
    if sorted(header["tensors"]) != sorted(keep):
        return False
    try:
        source = ckpt.read_header(src)
    except ckpt.CheckpointError:
        return False
    return all(source["tensors"][t]["bytes"] == header["tensors"][t]["bytes"] for t in keep)


def _link_or_copy(src, dst):
    tmp = dst + ".dgxspark-tmp"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    try:
        os.link(src, tmp)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
        shutil.copy2(src, tmp)  # another file system: copy (as cp -al falls back to cp -a)
    os.rename(tmp, dst)


def filter_shard(src, dst, keep):
    """Write the tensors ``keep`` of the safetensors file ``src`` into ``dst``, streamed
    (never more than a few MB in memory), with the source's metadata."""
    header = ckpt.read_header(src)
    entries = [(name, header["tensors"][name]) for name in sorted(keep)]
    body = {}
    offset = 0
    for name, info in entries:
        body[name] = {"dtype": info["dtype"], "shape": info["shape"],
                      "data_offsets": [offset, offset + info["bytes"]]}
        offset += info["bytes"]
    if header["metadata"]:
        body["__metadata__"] = header["metadata"]
    raw = json.dumps(body, separators=(",", ":"), sort_keys=True).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    tmp = dst + ".dgxspark-tmp"
    with open(src, "rb") as source, open(tmp, "wb") as out:
        out.write(struct.pack("<Q", len(raw)) + raw)
        for name, info in entries:
            source.seek(header["header_bytes"] + info["data_offsets"][0])
            left = info["bytes"]
            while left:
                chunk = source.read(min(_CHUNK, left))
                if not chunk:
                    raise AssemblyError(src, "ended inside tensor %s" % name,
                                        "fetch the base checkpoint again")
                out.write(chunk)
                left -= len(chunk)
    os.rename(tmp, dst)


def apply_plan(plan, out_dir):
    """Carry out ``hybrid_plan``'s actions in ``out_dir`` (made when missing)."""
    os.makedirs(out_dir, exist_ok=True)
    for action in plan["actions"]:
        parent = os.path.dirname(action["dst"])
        if parent:
            os.makedirs(parent, exist_ok=True)
        if action["op"] == "link":
            _link_or_copy(action["src"], action["dst"])
        elif action["op"] == "filter":
            filter_shard(action["src"], action["dst"], action["keep"])
        elif action["op"] == "index":
            ckpt.write_index(out_dir, plan["index"]["weight_map"], plan["index"]["metadata"])
    if plan["index"] is not None:
        verify_assembled(out_dir, plan["index"])


def verify_assembled(out_dir, index):
    """Raise AssemblyError unless every shard ``index`` names is in ``out_dir`` and holds
    the tensors the index maps to it (the check prepare-glm52-mtp-hybrid.sh makes)."""
    by_shard = {}
    for tensor, shard in index["weight_map"].items():
        by_shard.setdefault(shard, []).append(tensor)
    _shards_hold(out_dir, by_shard, "", "re-run the model role: the assembly was interrupted")


def _shards_hold(directory, by_shard, what, fix):
    """Raise AssemblyError unless every shard of ``by_shard`` (shard -> tensor names) in
    ``directory`` is whole and holds its tensors."""
    for shard, names in sorted(by_shard.items()):
        path = os.path.join(directory, shard)
        try:
            header = ckpt.read_header(path)
        except ckpt.CheckpointError as exc:
            raise AssemblyError(exc.path, exc.problem, exc.fix)
        lost = [t for t in names if t not in header["tensors"]]
        if lost:
            raise AssemblyError(path, "does not hold %d %stensor(s) the index maps to it: %s"
                                % (len(lost), what, ", ".join(sorted(lost)[:5])), fix)


def describe(plan):
    """One line per action (for the module's diff and messages)."""
    out = []
    for action in plan["actions"]:
        if action["op"] == "link":
            out.append("link %s <- %s" % (action["rel"], action["src"]))
        elif action["op"] == "filter":
            out.append("write %s (%d tensors of %s, without the MTP layer's)"
                       % (action["rel"], len(action["keep"]), action["src"]))
        else:
            out.append("write %s (%d tensors)" % (action["rel"], len(plan["index"]["weight_map"])))
    return out


# --- what a node must receive ------------------------------------------------------------

def transfer(reference, other):
    """Files ``other`` (a node's manifest) must receive from ``reference`` (the head's):
    ``{"copy": [...], "delete": [...], "bytes": n, "same": bool}``. A file is copied when
    the node lacks it or its size or a hash differs; ``delete`` lists the node's files the
    head does not have."""
    ref_files = (reference or {}).get("files") or {}
    other_files = (other or {}).get("files") or {}
    copy = []
    for name in sorted(ref_files):
        a, b = ref_files[name], other_files.get(name)
        if b is None or a.get("size") != b.get("size") or any(
                a.get(k) and b.get(k) and a[k] != b[k] for k in ("sha256", "header_sha256")):
            copy.append(name)
    delete = sorted(set(other_files) - set(ref_files))
    total = sum(ref_files[n].get("size", 0) for n in copy)
    return {"copy": copy, "delete": delete, "bytes": total, "same": not copy and not delete}
