# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
---
name: patch_catalog
short_description: The catalog of vLLM image patches that plans can require
version_added: "0.1.0"
author: dgxspark.cluster contributors (@dgxspark)
description:
  - Returns the patch catalog of the plan engine (plugins/module_utils/plan/patches.py) as one
    dict keyed by patch id, with what each patch fixes, when a plan needs it, the rule that
    requires it, and whether the collection ships it.
options: {}
"""

EXAMPLES = r"""
- name: Show the patch ids
  ansible.builtin.debug:
    msg: "{{ lookup('dgxspark.cluster.patch_catalog') | list }}"
"""

RETURN = r"""
_raw:
  description: One dict, patch id to its catalog entry.
  type: list
  elements: dict
"""

import copy

from ansible.plugins.lookup import LookupBase

from ansible_collections.dgxspark.cluster.plugins.module_utils.plan.patches import PATCHES


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        return [copy.deepcopy(PATCHES)]
