"""What a list of units needs, from one systemctl show (module_utils/units.py): what os_prune
still has to stop and mask, what vllm_cluster must stop and which of its units are down."""
from __future__ import annotations

import pytest

from ansible_collections.dgxspark.cluster.plugins.filter import units as units_filter
from ansible_collections.dgxspark.cluster.plugins.module_utils import units

NAMES = ["cups.service", "avahi-daemon.service", "ModemManager.service", "snapd.service",
         "rtkit-daemon.service"]
# systemctl show --property=Id,LoadState,UnitFileState,ActiveState (systemd 252), one block
# per name in order: an enabled running unit, a masked stopped one, a masked one still
# running (masked by hand, never stopped), a missing one, a disabled stopped one.
SHOW = """Id=cups.service
LoadState=loaded
ActiveState=active
UnitFileState=enabled

Id=avahi-daemon.service
LoadState=masked
ActiveState=inactive
UnitFileState=masked

Id=ModemManager.service
LoadState=masked
ActiveState=active
UnitFileState=masked

Id=snapd.service
LoadState=not-found
ActiveState=inactive
UnitFileState=

Id=rtkit-daemon.service
LoadState=loaded
ActiveState=inactive
UnitFileState=disabled
"""


def test_only_units_that_exist_and_are_not_masked_and_stopped_are_left():
    assert units.units_to_prune(SHOW, NAMES) == [
        "cups.service", "ModemManager.service", "rtkit-daemon.service"]


def test_a_pruned_node_has_nothing_left():
    pruned = SHOW.replace("LoadState=loaded", "LoadState=masked").replace(
        "ActiveState=active", "ActiveState=inactive").replace(
        "UnitFileState=enabled", "UnitFileState=masked").replace(
        "UnitFileState=disabled", "UnitFileState=masked")
    assert units.units_to_prune(pruned, NAMES) == []


def test_a_failed_unit_that_is_masked_counts_as_stopped():
    assert not units.needs_prune({"LoadState": "masked", "UnitFileState": "masked",
                                  "ActiveState": "failed"})
    assert units.needs_prune({"LoadState": "loaded", "UnitFileState": "static",
                              "ActiveState": "inactive"})


def test_blocks_that_do_not_match_the_names_fail_naming_them():
    with pytest.raises(ValueError, match=r"printed 5 unit block\(s\) for 2 unit\(s\) \(a, b\)"):
        units.units_to_prune(SHOW, ["a", "b"])
    with pytest.raises(ValueError, match="printed 0 unit block"):
        units.units_to_prune("", ["a"])


def test_the_filter_names_a_wrong_input():
    assert units_filter.units_to_prune(SHOW, NAMES)[0] == "cups.service"
    with pytest.raises(Exception, match="dgxspark.cluster.units_to_prune: _input=None"):
        units_filter.units_to_prune(None, NAMES)


def test_units_to_stop_are_those_of_the_subset_that_run_or_start_at_boot():
    # cups runs and is enabled, ModemManager runs though masked; avahi (masked, stopped),
    # snapd (missing) and rtkit (disabled, stopped) need nothing
    assert units.units_to_stop(SHOW, NAMES, NAMES) == ["cups.service", "ModemManager.service"]
    assert units.units_to_stop(SHOW, NAMES, ["rtkit-daemon.service", "cups.service"]) == [
        "cups.service"]
    enabled_only = SHOW.replace("ActiveState=active", "ActiveState=inactive", 1)
    assert units.units_to_stop(enabled_only, NAMES, ["cups.service"]) == ["cups.service"]
    assert units.units_to_stop(SHOW, NAMES, []) == []


def test_units_down_are_those_of_the_subset_not_active():
    assert units.units_down(SHOW, NAMES, ["cups.service", "ModemManager.service"]) == []
    assert units.units_down(SHOW, NAMES, ["snapd.service", "cups.service", "avahi-daemon.service"]) \
        == ["snapd.service", "avahi-daemon.service"]


def test_the_subset_filters_refuse_a_unit_that_was_not_asked_for():
    assert units_filter.units_down(SHOW, NAMES, ["snapd.service"]) == ["snapd.service"]
    with pytest.raises(Exception, match=r"dgxspark.cluster.units_to_stop: among=\['x.service'\]: "
                                        r"x.service not given"):
        units_filter.units_to_stop(SHOW, NAMES, ["x.service"])
    with pytest.raises(Exception, match="dgxspark.cluster.units_down: names=None"):
        units_filter.units_down(SHOW, None, [])


def test_units_to_start_are_those_of_the_subset_not_both_active_and_enabled():
    # cups is active and enabled; ModemManager runs masked; rtkit is disabled and stopped
    assert units.units_to_start(SHOW, NAMES, ["cups.service"]) == []
    assert units.units_to_start(SHOW, NAMES, ["rtkit-daemon.service", "ModemManager.service",
                                              "cups.service"]) == [
        "rtkit-daemon.service", "ModemManager.service"]
    stopped = SHOW.replace("ActiveState=active", "ActiveState=failed", 1)
    assert units_filter.units_to_start(stopped, NAMES, ["cups.service"]) == ["cups.service"]
