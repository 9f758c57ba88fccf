# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""The action plugins of the modules that compute on the controller (fabric_plan, fabric_check,
vllm_plan): where the task runs on the controller (connection local, as ``delegate_to:
localhost`` does), the module's ``compute`` runs in this process, with the module's argument
spec; anywhere else the module runs as usual. The result is the module's either way
(plugins/module_utils/controller.py)."""
from __future__ import annotations

import json

from ansible.plugins.action import ActionBase


class ControllerAction(ActionBase):
    """Subclasses set ARGUMENT_SPEC and ``compute`` (a staticmethod: params -> result)."""

    TRANSFERS_FILES = False
    _supports_check_mode = True
    ARGUMENT_SPEC = {}

    @staticmethod
    def compute(params):
        raise NotImplementedError

    def _on_controller(self):
        return getattr(self._connection, "transport", None) == "local"

    def run(self, tmp=None, task_vars=None):
        result = super(ControllerAction, self).run(tmp, task_vars)
        if not self._on_controller():
            result.update(self._execute_module(task_vars=task_vars))
            return result
        params = self.validate_argument_spec(argument_spec=self.ARGUMENT_SPEC)[1]
        # plain str, dict and list, as a module receives them
        params = json.loads(json.dumps(params))
        out = dict(self.compute(params))
        warnings = out.pop("warnings", [])
        if warnings:
            result["warnings"] = list(result.get("warnings", [])) + list(warnings)
        result.update(out)
        result.setdefault("changed", False)
        return result
