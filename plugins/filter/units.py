# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Filter: the systemd units that still need pruning (logic in module_utils/units.py)."""
from __future__ import annotations

from ansible_collections.dgxspark.cluster.plugins.module_utils import units
from ansible_collections.dgxspark.cluster.plugins.plugin_utils.filters import named, need


@named("units_to_prune")
def units_to_prune(text, names):
    return units.units_to_prune(
        need("_input", text, str, "pass the stdout of systemctl show --property="
             + ",".join(units.SHOW_PROPERTIES) + " for the units"),
        need("names", names, list, "pass the units given to systemctl show, in order"))


class FilterModule(object):
    def filters(self):
        return {"units_to_prune": units_to_prune}
