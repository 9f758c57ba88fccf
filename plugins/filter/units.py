# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Filters: what a list of systemd units needs, from one systemctl show (logic in
module_utils/units.py)."""
from __future__ import annotations

from ansible_collections.dgxspark.cluster.plugins.module_utils import units
from ansible_collections.dgxspark.cluster.plugins.plugin_utils.filters import named, need


@named("units_to_prune")
def units_to_prune(text, names):
    return units.units_to_prune(
        need("_input", text, str, "pass the stdout of systemctl show --property="
             + ",".join(units.SHOW_PROPERTIES) + " for the units"),
        need("names", names, list, "pass the units given to systemctl show, in order"))


def _checked(text, names, among):
    text = need("_input", text, str, "pass the stdout of systemctl show --property="
                + ",".join(units.SHOW_PROPERTIES) + " for the units")
    names = need("names", names, list, "pass the units given to systemctl show, in order")
    among = need("among", among, list, "pass a list of units")
    stray = [name for name in among if name not in names]
    if stray:
        raise ValueError("among=%r: %s not given to systemctl show. Fix: pass a subset of names"
                         % (among, ", ".join(stray)))
    return text, names, among


@named("units_to_stop")
def units_to_stop(text, names, among):
    return units.units_to_stop(*_checked(text, names, among))


@named("units_down")
def units_down(text, names, among):
    return units.units_down(*_checked(text, names, among))


@named("units_to_start")
def units_to_start(text, names, among):
    return units.units_to_start(*_checked(text, names, among))


class FilterModule(object):
    def filters(self):
        return {"units_to_prune": units_to_prune, "units_to_stop": units_to_stop,
                "units_down": units_down, "units_to_start": units_to_start}
