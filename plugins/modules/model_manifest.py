#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: model_manifest
short_description: List a model directory's files with sizes and hashes, to prove every node has the same model
version_added: "0.2.0"
description:
  - Walks a model directory on the node and returns its manifest - every file (relative path)
    with its size and a SHA-256 - of the whole file for files up to O(hash_limit) bytes (the
    config, the safetensors index, the tokenizer; every file of a small model), of the
    safetensors header (the tensors' names, dtypes, shapes and offsets) for larger shards, or
    of every whole file with O(full=true) (reads hundreds of GB on a real model).
  - Compare the manifests of the nodes with the C(dgxspark.cluster.model_parity_findings)
    filter. Read-only.
author:
  - dgxspark.cluster contributors (@dgxspark)
extends_documentation_fragment:
  - dgxspark.cluster.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
  platform:
    support: full
    platforms: posix
options:
  path:
    description: The model directory.
    type: path
    required: true
  hash_limit:
    description: Files up to this many bytes are hashed whole.
    type: int
    default: 67108864
  full:
    description: Hash every file whole.
    type: bool
    default: false
  reference:
    description:
      - Another node's manifest (the head's, as this module returned it). When given, the
        module also returns RV(transfer) - what this node must receive to hold the same model.
    type: dict
"""

EXAMPLES = r"""
- name: Read the model directory's manifest on every node
  dgxspark.cluster.model_manifest:
    path: /var/lib/dgxspark/models/glm-5.2-nvfp4
  register: manifest

- name: What each worker must receive from the head
  dgxspark.cluster.model_manifest:
    path: /var/lib/dgxspark/models/glm-5.2-nvfp4
    reference: "{{ hostvars[groups['sparks'][0]].manifest.manifest }}"
  register: worker_manifest
"""

RETURN = r"""
exists:
  description: Whether the directory exists.
  returned: always
  type: bool
manifest:
  description:
    - C(files) (relative path to C(size) and C(sha256) or C(header_sha256)), C(count),
      C(total_bytes), C(hash_limit), C(full); empty when the directory does not exist.
  returned: always
  type: dict
transfer:
  description:
    - With O(reference) - C(copy) (files this node lacks or holds with another size or hash),
      C(delete) (files the reference has not), C(bytes) (of the files to copy), C(same).
  returned: when O(reference) is given
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dgxspark.cluster.plugins.module_utils.model import transfer
from ansible_collections.dgxspark.cluster.plugins.module_utils.model_manifest import (
    OPTIONS, ManifestError, read_directory)


def main():
    module = AnsibleModule(
        argument_spec=dict(OPTIONS, reference=dict(type="dict")),
        supports_check_mode=True,
    )
    reference = module.params["reference"]
    try:
        result = read_directory(module.params["path"], module.params["hash_limit"],
                                module.params["full"])
    except ManifestError as exc:
        module.fail_json(msg=str(exc))
    if reference is not None:
        result["transfer"] = transfer(reference, result["manifest"])
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
