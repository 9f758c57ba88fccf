# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""dgxspark.cluster.fabric_plan: on the controller, the module's computation in Ansible's own process;
elsewhere the module (plugins/plugin_utils/controller_action.py)."""
from __future__ import annotations

from ansible_collections.dgxspark.cluster.plugins.module_utils.topology import (
    ARGUMENT_SPEC as SPEC, compute as module_compute)
from ansible_collections.dgxspark.cluster.plugins.plugin_utils.controller_action import (
    ControllerAction)


class ActionModule(ControllerAction):
    ARGUMENT_SPEC = SPEC
    compute = staticmethod(module_compute)
