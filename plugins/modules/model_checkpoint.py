#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: model_checkpoint
short_description: Check a safetensors checkpoint on a node without loading a tensor
version_added: "0.3.0"
description:
  - Reads the model directory's C(config.json), C(model.safetensors.index.json) and the header
    of every shard vLLM would load (never a tensor) and returns findings, each naming the file
    and the fix - the index names shards that are not there, or maps tensors to a shard that
    does not hold them; a shard is cut short or is no safetensors file; the MTP layer's tensors
    are missing while the plan drafts with MTP (the failure a hybrid checkpoint without its
    MTP shard shows only at boot); the quantization differs from the recipe's model profile.
  - Read-only. The decisions are in C(plugins/module_utils/checkpoint.py); preflight runs it
    on the head when the model directory is there.
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
  mtp:
    description: The plan drafts with MTP (C(speculative_config.method) C(mtp)).
    type: bool
    default: false
  mtp_prefixes:
    description:
      - The MTP layers' weight-name prefixes (the recipe's C(layer_prefix)); empty - from the
        checkpoint's C(config.json).
    type: list
    elements: str
    default: []
  profile:
    description:
      - The recipe's model profile (a parsed C(config.json)); its quantization must be the
        checkpoint's. Not checked when omitted.
    type: dict
  profile_name:
    description: How the messages name the profile.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Check the checkpoint on the head
  dgxspark.cluster.model_checkpoint:
    path: /var/lib/dgxspark/models/glm-5.2-nvfp4
    mtp: true
    profile: "{{ lookup('ansible.builtin.file', 'recipes/models/glm-5.2-nvfp4/config.json') | from_json }}"
    profile_name: recipes/models/glm-5.2-nvfp4
  register: checkpoint
"""

RETURN = r"""
exists:
  description: Whether the model directory exists (no finding when it does not).
  returned: always
  type: bool
findings:
  description: Each C(severity) (error, warning), C(file), C(message) and C(fix).
  returned: always
  type: list
  elements: dict
errors:
  description: "The errors as lines, C(<message> -- fix: <fix>)."
  returned: always
  type: list
  elements: str
warnings:
  description: The warnings as lines.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dgxspark.cluster.plugins.module_utils import checkpoint


def main():
    module = AnsibleModule(
        argument_spec=dict(checkpoint.OPTIONS),
        supports_check_mode=True,
    )
    p = module.params
    module.exit_json(changed=False, **checkpoint.report(
        p["path"], p["mtp"], p["mtp_prefixes"], p["profile"], p["profile_name"]))


if __name__ == "__main__":
    main()
