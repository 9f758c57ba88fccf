# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""The modules that compute on the controller (fabric_plan, fabric_check, vllm_plan) keep their
logic in one function, ``compute(params) -> result``, so that it runs either as the module
(``finish`` below) or, when the task runs on the controller, in Ansible's own process through
the action plugin of the same name (plugins/plugin_utils/controller_action.py): no interpreter
to start, no module payload to build.

A result is the module's return value; ``failed`` (with ``msg``) makes it a failure and
``warnings`` are the task's warnings.
"""
from __future__ import annotations


def finish(module, result):
    """Return ``result`` from an AnsibleModule: warnings as module warnings, a failure with
    ``fail_json``."""
    result = dict(result)
    for warning in result.pop("warnings", []):
        module.warn(warning)
    if result.pop("failed", False):
        module.fail_json(**result)
    result.setdefault("changed", False)
    module.exit_json(**result)
