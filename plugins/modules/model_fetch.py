#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: model_fetch
short_description: Download a Hugging Face model repository at a pinned revision, resumable
version_added: "0.3.0"
description:
  - Resolves O(revision) to its commit with the hub's API, lists the repository's files (with
    sizes and the SHA-256 of the large ones) and downloads those O(dest) lacks from that one
    commit over plain HTTPS (Python's standard library; no C(huggingface_hub) needed on the
    node). A file that is there with the listed size and the blob the last run recorded is
    left alone, so a second run downloads nothing.
  - Resumable - each file streams into C(dest/.partial/) and an interrupted download goes on
    from where it stopped (an HTTP Range request); every large file's SHA-256 is checked as it
    streams, then it is renamed into place. C(dest/.dgxspark-fetch.json) records the commit and
    each file's blob.
  - The token is sent to the hub only (a redirect to another host, the hub's CDN, drops it),
    and is never returned or logged (O(token) is C(no_log)).
  - The domain logic is in C(plugins/module_utils/hub.py).
author:
  - dgxspark.cluster contributors (@dgxspark)
extends_documentation_fragment:
  - dgxspark.cluster.attributes
attributes:
  check_mode:
    support: full
    details: Asks the hub's API what would be downloaded (read-only) and downloads nothing.
  diff_mode:
    support: full
    details: The files that are or would be downloaded.
  idempotent:
    support: full
  platform:
    support: full
    platforms: posix
options:
  repo:
    description: The repository, C(owner/name).
    type: str
    required: true
  revision:
    description:
      - A commit (40 hex digits; pins the weights), or a branch or tag, resolved to its
        commit at every run.
    type: str
    required: true
  dest:
    description: The directory the repository's files go to (made when missing).
    type: path
    required: true
  token:
    description: A Hugging Face token (for gated or private repositories). Never logged.
    type: str
  endpoint:
    description: The hub's base URL.
    type: str
    default: https://huggingface.co
  include:
    description: Glob patterns; only matching files are downloaded (all files when empty).
    type: list
    elements: str
    default: []
  timeout:
    description: Seconds to wait for the hub on each request.
    type: int
    default: 60
  only_mtp:
    description:
      - Download only what the MTP part of a hybrid checkpoint needs - every file that is no
        safetensors shard (config, index, ...) first, then only the shards the index names for
        tensors under O(tensor_prefixes). A repository without an index is downloaded whole.
      - In check mode, before the index is on the node, every file counts.
    type: bool
    default: false
  tensor_prefixes:
    description:
      - With O(only_mtp), the MTP layer's weight-name prefixes (e.g. C(model.layers.78.)).
        Empty - from the repository's C(config.json).
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Download the GLM-5.2 NVFP4 base on the head (long; run it async)
  dgxspark.cluster.model_fetch:
    repo: Mapika/GLM-5.2-NVFP4
    revision: main
    dest: /var/lib/dgxspark/model-store/Mapika--GLM-5.2-NVFP4@main
    token: "{{ model_hf_token }}"
  async: 86400
  poll: 30
"""

RETURN = r"""
commit:
  description: The commit O(revision) resolved to; every file comes from it.
  returned: always
  type: str
downloaded:
  description: The files downloaded (in check mode, that would be).
  returned: always
  type: list
  elements: str
bytes:
  description: The bytes of those files (in check mode, still to transfer, counting partial files).
  returned: always
  type: int
files:
  description: How many files the repository (as selected by O(include)) has.
  returned: always
  type: int
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dgxspark.cluster.plugins.module_utils import hub


def fetch(module, listed, files, names):
    """Download ``names`` (one after the other); returns the bytes transferred."""
    p = module.params
    os.makedirs(p["dest"], exist_ok=True)
    moved = 0
    for name in names:
        moved += hub.download(p["endpoint"], p["repo"], listed["commit"], name, p["dest"],
                              files[name], p["token"], p["timeout"])
    return moved


def main():
    module = AnsibleModule(
        argument_spec=dict(
            repo=dict(type="str", required=True),
            revision=dict(type="str", required=True),
            dest=dict(type="path", required=True),
            token=dict(type="str", no_log=True),
            endpoint=dict(type="str", default="https://huggingface.co"),
            include=dict(type="list", elements="str", default=[]),
            timeout=dict(type="int", default=60),
            only_mtp=dict(type="bool", default=False),
            tensor_prefixes=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        listed = hub.listing(p["endpoint"], p["repo"], p["revision"], p["token"], p["timeout"])
        files = hub.select(listed["files"], p["include"])
        if not files:
            module.fail_json(msg="%s@%s has no file matching include %s: fix include"
                             % (p["repo"], p["revision"], p["include"]))
        record = hub.read_record(p["dest"])
        first, moved = [], 0
        if p["only_mtp"]:
            # the small files first (config, index): they say which shards hold the MTP layer
            small = dict((n, i) for n, i in files.items() if not hub.is_shard(n))
            first = hub.to_fetch(p["dest"], small, record)
            if first and not module.check_mode:
                moved += fetch(module, listed, files, first)
            if not first or not module.check_mode:
                files = hub.mtp_files(p["dest"], files, p["tensor_prefixes"])
        rest = [n for n in hub.to_fetch(p["dest"], files, record) if n not in first]
        todo = sorted(first + rest)
        left = sum((files.get(n, {}).get("size") or 0) - hub.partial_bytes(p["dest"], n)
                   for n in todo)
        if rest and not module.check_mode:
            moved += fetch(module, listed, files, rest)
        wrote_record = False
        want = {"repo": p["repo"], "revision": p["revision"], "commit": listed["commit"],
                "files": dict((n, {"size": i.get("size"), "sha256": i.get("sha256"),
                                   "blob": i.get("blob")}) for n, i in files.items())}
        if not module.check_mode and record != want:
            os.makedirs(p["dest"], exist_ok=True)
            hub.write_record(p["dest"], want)
            wrote_record = True
    except hub.HubError as exc:
        module.fail_json(msg="%s@%s: %s -- fix: %s" % (p["repo"], p["revision"], exc.problem,
                                                       exc.fix))
    except OSError as exc:
        module.fail_json(msg="cannot write %s: %s -- fix: give a writable dest with room for "
                         "the model" % (p["dest"], exc))
    result = dict(changed=bool(todo) or wrote_record, commit=listed["commit"], downloaded=todo,
                  bytes=moved if not module.check_mode else max(left, 0), files=len(files))
    if module._diff:
        result["diff"] = {"before": "", "after": "".join("download %s\n" % n for n in todo),
                          "after_header": "%s@%s" % (p["repo"], listed["commit"][:12])}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
