# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""A Hugging Face model repository downloaded over plain HTTP, resumable (standard library).

* ``listing(endpoint, repo, revision, token)``: the commit a revision resolves to and every
  file of the repository with its size and (LFS files) SHA-256, from the hub's API
  (``GET /api/models/<repo>/revision/<revision>?blobs=true``).
* ``to_fetch(dest, files, record)``: the files ``dest`` still lacks: missing, another size,
  or another blob than the one the last download recorded (a revision that moved).
* ``download(...)``: one file from ``/<repo>/resolve/<commit>/<path>`` into
  ``dest/.partial/<path>``, resumed with an HTTP Range from what an interrupted run left,
  hashed while it streams and checked against the listing, then renamed into place.

Every file comes from the one commit the revision resolved to. The token goes in an
``Authorization`` header to the hub only: a redirect to another host (the hub's CDN) drops
it. Nothing here prints or returns the token.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import urllib.error
import urllib.parse
import urllib.request

from .model_manifest import hash_into

RECORD = ".dgxspark-fetch.json"
PARTIAL = ".partial"
_CHUNK = 4 * 1024 * 1024


class HubError(Exception):
    """A download that cannot go on: says what and the fix (never the token)."""

    def __init__(self, problem, fix):
        self.problem = problem
        self.fix = fix
        super(HubError, self).__init__("%s. Fix: %s" % (problem, fix))


class _Redirect(urllib.request.HTTPRedirectHandler):
    """Follows redirects, dropping the Authorization header when the host changes."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = urllib.request.HTTPRedirectHandler.redirect_request(
            self, req, fp, code, msg, headers, newurl)
        if new is not None and urllib.parse.urlsplit(newurl).netloc != \
                urllib.parse.urlsplit(req.full_url).netloc:
            new.headers.pop("Authorization", None)
            new.unredirected_hdrs.pop("Authorization", None)
        return new


def _open(url, token=None, headers=None, timeout=60):
    request = urllib.request.Request(url, headers=dict(headers or {}))
    if token:
        # unredirected: urllib does not carry it over a redirect by itself
        request.add_unredirected_header("Authorization", "Bearer %s" % token)
    opener = urllib.request.build_opener(_Redirect)
    try:
        return opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        code = exc.code
        if code in (401, 403):
            raise HubError("%s answered %d: the repository is gated or private, or the token "
                           "lacks access" % (_hide(url), code),
                           "accept the model's license on the hub and give a token that can "
                           "read it (model_hf_token, or HF_TOKEN on the controller)")
        if code == 404:
            raise HubError("%s answered 404: no such repository, revision or file" % _hide(url),
                           "check the recipe's repo and revision (recipe_model_source)")
        raise HubError("%s answered %d %s" % (_hide(url), code, exc.reason),
                       "retry later (the download resumes where it stopped)")
    except (urllib.error.URLError, OSError) as exc:
        raise HubError("cannot reach %s (%s)" % (_hide(url), getattr(exc, "reason", exc)),
                       "check the head's route to the hub (proxy, DNS), or fetch the weights "
                       "elsewhere and name their path (model_source base path)")


def _hide(url):
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def listing(endpoint, repo, revision, token=None, timeout=60):
    """``{"commit": sha, "files": {path: {"size": n, "sha256": lfs sha or None, "blob":
    id}}}`` for ``repo`` at ``revision``."""
    url = "%s/api/models/%s/revision/%s?blobs=true" % (
        endpoint.rstrip("/"), repo, urllib.parse.quote(revision, safe=""))
    with _open(url, token, timeout=timeout) as response:
        try:
            data = json.loads(response.read().decode("utf-8"))
        except ValueError as exc:
            raise HubError("%s did not answer JSON (%s)" % (_hide(url), exc),
                           "check model_hf_endpoint: it must be a Hugging Face hub")
    files = {}
    for sibling in data.get("siblings") or []:
        name = sibling.get("rfilename")
        if not isinstance(name, str) or name.startswith("/") or ".." in name.split("/"):
            continue
        lfs = sibling.get("lfs") if isinstance(sibling.get("lfs"), dict) else {}
        size = sibling.get("size", lfs.get("size"))
        files[name] = {"size": size if isinstance(size, int) else None,
                       "sha256": lfs.get("sha256"), "blob": sibling.get("blobId")}
    commit = data.get("sha")
    if not isinstance(commit, str) or not files:
        raise HubError("%s lists no commit or no file for %s@%s" % (_hide(url), repo, revision),
                       "check the recipe's repo and revision")
    return {"commit": commit, "files": files}


def select(files, include=None):
    """The files matching any glob of ``include`` (every file without one); the hub's
    ``.gitattributes`` is never needed."""
    out = {}
    for name, info in files.items():
        if name == ".gitattributes":
            continue
        if include and not any(fnmatch.fnmatch(name, p) for p in include):
            continue
        out[name] = info
    return out


def is_shard(name):
    return name.endswith(".safetensors")


def mtp_files(dest, files, prefixes=None):
    """Of a repository's ``files`` (a listing's), those a hybrid's MTP part needs: every file
    that is no safetensors shard, and the shards its index (already in ``dest``) names for
    tensors under ``prefixes`` (default: the MTP layers of its config.json, also in ``dest``).
    A repository without an index needs all its shards. Raises HubError when the index names
    no tensor under the prefixes."""
    from . import checkpoint as ckpt

    small = dict((n, i) for n, i in files.items() if not is_shard(n))
    if ckpt.INDEX not in files:
        return dict(files)
    try:
        index = ckpt.load_index(dest)
        if not prefixes:
            config = ckpt.read_json(os.path.join(dest, ckpt.CONFIG), "re-download it")
            prefixes = ckpt.mtp_prefixes(config)
    except ckpt.CheckpointError as exc:
        raise HubError("%s %s" % (exc.path, exc.problem), exc.fix)
    if not prefixes:
        raise HubError("the MTP part's config.json does not say where its MTP layer is",
                       "declare the mtp part's layer_prefix in the recipe, e.g. model.layers.78.")
    shards = set(s for t, s in (index or {}).get("weight_map", {}).items()
                 if t.startswith(tuple(prefixes)))
    if not shards:
        raise HubError("the MTP part's index maps no tensor under %s" % ", ".join(
            p + "*" for p in prefixes), "point the mtp part at the repository with the "
            "trained MTP layer, or fix layer_prefix")
    small.update((n, files[n]) for n in shards if n in files)
    return small


def read_record(dest):
    try:
        with open(os.path.join(dest, RECORD)) as handle:
            data = json.load(handle)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def write_record(dest, record):
    path = os.path.join(dest, RECORD)
    with open(path + ".tmp", "w") as handle:
        json.dump(record, handle, indent=1, sort_keys=True)
    os.rename(path + ".tmp", path)


def to_fetch(dest, files, record):
    """The files of ``files`` (a listing's) that ``dest`` lacks, sorted: not there, another
    size, or recorded from another blob."""
    known = (record or {}).get("files") or {}
    out = []
    for name, info in sorted(files.items()):
        path = os.path.join(dest, name)
        try:
            size = os.path.getsize(path)
        except OSError:
            out.append(name)
            continue
        if info.get("size") is not None and size != info["size"]:
            out.append(name)
            continue
        had = known.get(name) or {}
        if (info.get("sha256") or info.get("blob")) and had and \
                (had.get("sha256"), had.get("blob")) != (info.get("sha256"), info.get("blob")):
            out.append(name)
    return out


def partial_bytes(dest, name):
    try:
        return os.path.getsize(os.path.join(dest, PARTIAL, name))
    except OSError:
        return 0


def download(endpoint, repo, commit, name, dest, info, token=None, timeout=60):
    """Download ``name`` of ``repo`` at ``commit`` into ``dest``, resuming a partial file.
    Returns the bytes transferred now."""
    part = os.path.join(dest, PARTIAL, name)
    os.makedirs(os.path.dirname(part), exist_ok=True)
    have = partial_bytes(dest, name)
    expect = info.get("size")
    digest = hashlib.sha256()
    if have and expect is not None and have > expect:
        os.unlink(part)
        have = 0
    if have:
        hash_into(digest, part)
    url = "%s/%s/resolve/%s/%s" % (endpoint.rstrip("/"), repo, commit,
                                   urllib.parse.quote(name))
    moved = 0
    if expect is None or have < expect:
        headers = {"Range": "bytes=%d-" % have} if have else {}
        with _open(url, token, headers, timeout) as response:
            if have and response.getcode() != 206:
                # the server sent the whole file: start over
                have = 0
                digest = hashlib.sha256()
                mode = "wb"
            else:
                mode = "ab" if have else "wb"
            with open(part, mode) as out:
                while True:
                    chunk = response.read(_CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    digest.update(chunk)
                    moved += len(chunk)
    size = os.path.getsize(part)
    if expect is not None and size != expect:
        raise HubError("%s: got %d bytes of %d" % (name, size, expect),
                       "run the model stage again: the download resumes")
    if info.get("sha256") and digest.hexdigest() != info["sha256"]:
        os.unlink(part)
        raise HubError("%s: its SHA-256 is %s, the hub lists %s (the partial file was removed)"
                       % (name, digest.hexdigest()[:16], info["sha256"][:16]),
                       "run the model stage again to download it afresh")
    final = os.path.join(dest, name)
    os.makedirs(os.path.dirname(final) or dest, exist_ok=True)
    os.rename(part, final)
    return moved
