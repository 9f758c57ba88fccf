# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""What each module attribute means; the modules say how far they support it."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check mode and return the result it would have without changing the target.
  diff_mode:
    description: Returns details of what has changed (or would change in check mode) when run with C(--diff).
  idempotent:
    description: Running the module again with the same arguments returns the same result and changes nothing.
  platform:
    description: Target operating system or environment the module runs on.
"""
