# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""What a list of systemd units needs, decided from one ``systemctl show``: which still need
pruning (the os_prune role; a re-run where every unit is already stopped and masked acts on
none), which must be stopped and which are down (the vllm_cluster role), which must be started
(the memory_guard role). Plain Python,
standard library only."""
from __future__ import annotations

SHOW_PROPERTIES = ("Id", "LoadState", "UnitFileState", "ActiveState")
# ActiveState values of a unit that is not running
STOPPED = ("inactive", "failed")


def parse_show(text, names):
    """The output of ``systemctl show --property=Id,LoadState,UnitFileState,ActiveState
    NAME...`` -> {name: {property: value}}, one block per name in the order given (systemd
    prints a block for every name, a missing unit with LoadState=not-found).

    Raises ValueError when the blocks do not match the names (the command changed or failed)."""
    blocks, block = [], {}
    for line in (text or "").splitlines():
        if not line.strip():
            if block:
                blocks.append(block)
                block = {}
            continue
        key, sep, value = line.partition("=")
        if sep:
            block[key.strip()] = value.strip()
    if block:
        blocks.append(block)
    if len(blocks) != len(names):
        raise ValueError(
            "systemctl show printed %d unit block(s) for %d unit(s) (%s): run it on the node "
            "and check its output" % (len(blocks), len(names), ", ".join(names)))
    return dict(zip(names, blocks))


def needs_prune(props):
    """True when a unit exists and is not yet both masked and stopped."""
    if props.get("LoadState") == "not-found":
        return False
    masked = props.get("UnitFileState") == "masked" or props.get("LoadState") == "masked"
    return not (masked and props.get("ActiveState") in STOPPED)


def units_to_prune(text, names):
    """The units of ``names`` that exist and are not yet masked and stopped, in order."""
    shown = parse_show(text, names)
    return [name for name in names if needs_prune(shown[name])]


def units_to_stop(text, names, among):
    """The units of ``among`` (a subset of ``names``, the units given to systemctl show) that
    exist and still run or start at boot, in the order of ``among``: what stopping and
    disabling them would change."""
    shown = parse_show(text, names)
    return [name for name in among if shown[name].get("LoadState") != "not-found" and (
        shown[name].get("ActiveState") not in STOPPED
        or shown[name].get("UnitFileState", "").startswith("enabled"))]


def units_down(text, names, among):
    """The units of ``among`` (a subset of ``names``) that are not active, in order."""
    shown = parse_show(text, names)
    return [name for name in among if shown[name].get("ActiveState") != "active"]


def units_to_start(text, names, among):
    """The units of ``among`` (a subset of ``names``) that are not both active and enabled, in
    order: what starting and enabling them would change."""
    shown = parse_show(text, names)
    return [name for name in among if shown[name].get("ActiveState") != "active"
            or shown[name].get("UnitFileState") != "enabled"]
