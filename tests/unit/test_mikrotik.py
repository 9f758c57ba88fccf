"""MikroTik switch domain logic: per-model data, the .rsc script, validation, live checks."""
from __future__ import annotations

import pytest

from ansible_collections.community.routeros.plugins.module_utils._api_data import PATHS
from ansible_collections.dgxspark.cluster.plugins.module_utils.mikrotik import (
    MikrotikSwitchError, check_bridge_ports, model_interfaces, render, validate)

CRS804 = "CRS804-4DDQ"
CRS812 = "CRS812-8DS-2DQ-2DDQ"
FOUR = [{"interface": "qsfp56-dd-2-5", "node": "spark4"},
        {"interface": "qsfp56-dd-1-1", "node": "spark1"},
        {"interface": "qsfp56-dd-1-5", "node": "spark2", "comment": "spark2 P1"},
        {"interface": "qsfp56-dd-2-1", "node": "spark3"}]
TWO = [{"interface": "qsfp56-dd-1-5", "node": "spark2"},
       {"interface": "qsfp56-dd-1-1", "node": "spark1"}]


def commands(text):
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def eth804(iface, comment):
    return ('set [find where default-name="%s"] auto-negotiation=no speed=200G-baseCR4 '
            'l2mtu=9216 tx-flow-control=on rx-flow-control=on disabled=no comment="%s"'
            % (iface, comment))


def port_lines(iface, comment):
    where = '[find where bridge="bridge-fabric" and interface="%s"]' % iface
    return [':if ([:len %s] = 0) do={ add bridge="bridge-fabric" interface="%s" hw=yes }'
            % (where, iface),
            'set %s hw=yes disabled=no comment="%s"' % (where, comment)]


def remove_line(cage, lanes):
    return ('remove [find where bridge="bridge-fabric" and (%s)]'
            % " or ".join('interface="qsfp56-dd-%d-%d"' % (cage, n) for n in lanes))


BRIDGE_LINES = [
    '/interface bridge',
    ':if ([:len [find where name="bridge-fabric"]] = 0) do={ add name="bridge-fabric" }',
    'set [find where name="bridge-fabric"] mtu=9216 comment="dgxspark fabric"',
]


def test_crs804_script_has_exactly_the_published_port_settings():
    out = render(CRS804, FOUR, switch="crs804")
    assert commands(out["rsc"]) == BRIDGE_LINES + [
        '/interface ethernet',
        eth804("qsfp56-dd-1-1", "spark1"), eth804("qsfp56-dd-1-5", "spark2 P1"),
        eth804("qsfp56-dd-2-1", "spark3"), eth804("qsfp56-dd-2-5", "spark4"),
        '/interface bridge port',
        remove_line(1, (2, 3, 4)), remove_line(1, (6, 7, 8)),
        remove_line(2, (2, 3, 4)), remove_line(2, (6, 7, 8)),
    ] + port_lines("qsfp56-dd-1-1", "spark1") + port_lines("qsfp56-dd-1-5", "spark2 P1") \
      + port_lines("qsfp56-dd-2-1", "spark3") + port_lines("qsfp56-dd-2-5", "spark4")
    assert out["rsc"].startswith(
        "# dgxspark.cluster mikrotik_switch: Spark fabric of crs804 (CRS804-4DDQ), RouterOS 7.\n")
    assert "/import file-name=crs804.rsc" in out["rsc"]


def test_crs812_script_enables_every_lane_and_bridges_only_the_masters():
    out = render(CRS812, TWO, switch="crs812")
    spark = ('set [find where default-name="qsfp56-dd-1-%d"] l2mtu=9216 tx-flow-control=on '
             'rx-flow-control=on disabled=no comment="spark%d"')
    lane = 'set [find where default-name="qsfp56-dd-1-%d"] disabled=no'
    assert commands(out["rsc"]) == BRIDGE_LINES + [
        '/interface ethernet',
        spark % (1, 1), lane % 2, lane % 3, lane % 4,
        spark % (5, 2), lane % 6, lane % 7, lane % 8,
        '/interface bridge port',
        remove_line(1, (2, 3, 4)), remove_line(1, (6, 7, 8)),
    ] + port_lines("qsfp56-dd-1-1", "spark1") + port_lines("qsfp56-dd-1-5", "spark2")
    assert "speed=" not in "\n".join(commands(out["rsc"]))
    assert "fec-mode" not in out["rsc"]


def test_crs804_api_modify_data():
    calls = render(CRS804, FOUR[:2])["api_modify"]
    assert [c["path"] for c in calls] == ["interface bridge", "interface ethernet",
                                          "interface bridge port"]
    bridge, ethernet, ports = calls
    assert bridge == {"path": "interface bridge",
                      "data": [{"name": "bridge-fabric", "mtu": 9216,
                                "comment": "dgxspark fabric"}],
                      "handle_absent_entries": "ignore",
                      "restrict": [{"field": "name", "values": ["bridge-fabric"]}]}
    assert ethernet["data"] == [
        {"default-name": "qsfp56-dd-1-1", "auto-negotiation": False, "speed": "200G-baseCR4",
         "l2mtu": 9216, "tx-flow-control": "on", "rx-flow-control": "on", "disabled": False,
         "comment": "spark1"},
        {"default-name": "qsfp56-dd-2-5", "auto-negotiation": False, "speed": "200G-baseCR4",
         "l2mtu": 9216, "tx-flow-control": "on", "rx-flow-control": "on", "disabled": False,
         "comment": "spark4"}]
    assert ethernet["handle_absent_entries"] == "ignore"
    assert ethernet["restrict"] == [{"field": "default-name",
                                     "values": ["qsfp56-dd-1-1", "qsfp56-dd-2-5"]}]
    assert ports["data"] == [
        {"bridge": "bridge-fabric", "interface": "qsfp56-dd-1-1", "hw": True, "disabled": False,
         "comment": "spark1"},
        {"bridge": "bridge-fabric", "interface": "qsfp56-dd-2-5", "hw": True, "disabled": False,
         "comment": "spark4"}]
    assert ports["handle_absent_entries"] == "remove"
    assert ports["restrict"] == [
        {"field": "bridge", "values": ["bridge-fabric"]},
        {"field": "interface", "values": ["qsfp56-dd-1-1", "qsfp56-dd-1-2", "qsfp56-dd-1-3",
                                          "qsfp56-dd-1-4", "qsfp56-dd-2-5", "qsfp56-dd-2-6",
                                          "qsfp56-dd-2-7", "qsfp56-dd-2-8"]}]


def test_crs812_ethernet_data_has_no_speed_and_enables_the_whole_cage():
    ethernet = render(CRS812, [{"interface": "qsfp56-dd-2-5", "node": "s"}])["api_modify"][1]
    assert [e["default-name"] for e in ethernet["data"]] == \
        ["qsfp56-dd-2-%d" % n for n in range(1, 9)]
    assert all(e["disabled"] is False for e in ethernet["data"])
    for entry in ethernet["data"]:
        assert not {"speed", "auto-negotiation", "fec-mode", "advertise"} & set(entry)
    master = ethernet["data"][4]
    assert master == {"default-name": "qsfp56-dd-2-5", "l2mtu": 9216, "tx-flow-control": "on",
                      "rx-flow-control": "on", "disabled": False, "comment": "s"}


@pytest.mark.parametrize("model,ports", [
    (CRS804, FOUR), (CRS804, [{"interface": "qsfp56-dd-3-5", "node": "a"}]),
    (CRS812, TWO), (CRS812, [{"interface": "qsfp56-dd-2-1", "node": "a"}]),
])
def test_unlisted_ports_are_never_in_the_data(model, ports):
    out = render(model, ports)
    listed = set(p["interface"] for p in ports)
    cages = set(i.rsplit("-", 1)[0] for i in listed)
    named = set()
    for call in out["api_modify"]:
        for entry in call["data"]:
            named.update(entry.get(k) for k in ("default-name", "interface") if k in entry)
        for rule in call["restrict"]:
            if rule["field"] in ("default-name", "interface"):
                named.update(rule["values"])
    assert named, "no interface in the data"
    assert all(name.rsplit("-", 1)[0] in cages for name in named), named
    assert not named & {"ether1", "ether2"}
    ethernet = set(e["default-name"] for e in out["api_modify"][1]["data"])
    assert ethernet == (listed if model == CRS804 else
                        set(n for n in model_interfaces(model) if n.rsplit("-", 1)[0] in cages))
    bridge_ports = set(e["interface"] for e in out["api_modify"][2]["data"])
    assert bridge_ports == listed
    for unlisted in set(model_interfaces(model)) - named:
        assert '"%s"' % unlisted not in out["rsc"]


@pytest.mark.parametrize("model,ports", [(CRS804, FOUR), (CRS812, TWO)])
def test_data_uses_only_fields_community_routeros_knows(model, ports):
    for call in render(model, ports)["api_modify"]:
        info = PATHS[tuple(call["path"].split())].unversioned
        versioned = set(name for dummy, name, dummy in info.versioned_fields)
        for entry in call["data"]:
            assert set(info.primary_keys) <= set(entry)
            for key in entry:
                assert key in info.fields and key not in versioned, (call["path"], key)
                assert not info.fields[key].read_only
        for rule in call["restrict"]:
            assert rule["field"] in info.fields
        if info.fixed_entries:
            assert call["handle_absent_entries"] == "ignore"


def test_comment_is_quoted_for_routeros():
    out = render(CRS804, [{"interface": "qsfp56-dd-1-1", "node": "n", "comment": 'a "b" $c\\'}])
    assert r'comment="a \"b\" \$c\\"' in out["rsc"]


BAD = [
    (dict(model="CRS999"), "mikrotik_switch_model", "CRS999", "CRS804-4DDQ"),
    (dict(ports=[]), "mikrotik_switch_ports", "[]", "list each Spark"),
    (dict(ports=[{"interface": "qsfp56-dd-1-1"}]), "mikrotik_switch_ports[0]", "interface",
     "node: spark1"),
    (dict(ports=TWO + [{"interface": "qsfp56-dd-1-1", "node": "spark9"}]),
     "mikrotik_switch_ports", "qsfp56-dd-1-1", "exactly one leg"),
    (dict(ports=[{"interface": "qsfp56-dd-1-1", "node": "spark1"},
                 {"interface": "qsfp56-dd-2-1", "node": "spark1"}]),
     "mikrotik_switch_ports", "spark1", "exactly one leg"),
    (dict(ports=[{"interface": "qsfp56-dd-3-1", "node": "s"}]),
     "mikrotik_switch_ports[0].interface", "qsfp56-dd-3-1", "qsfp56-dd-2-5"),
    (dict(ports=[{"interface": "qsfp56-dd-1-2", "node": "s"}]),
     "mikrotik_switch_ports[0].interface", "qsfp56-dd-1-2", "use qsfp56-dd-1-1"),
    (dict(ports=[TWO[0], {"interface": "qsfp56-dd-2-7", "node": "s"}]),
     "mikrotik_switch_ports[1].interface", "qsfp56-dd-2-7", "use qsfp56-dd-2-5"),
    (dict(ports=[{"interface": "sfp56-1", "node": "s"}]),
     "mikrotik_switch_ports[0].interface", "sfp56-1", "qsfp56-dd-1-1"),
    (dict(ports=[{"interface": "ether1", "node": "s"}]),
     "mikrotik_switch_ports[0].interface", "ether1", "keep management"),
    (dict(l2mtu=9000), "mikrotik_switch_l2mtu", "9000", "9216"),
    (dict(l2mtu="9216"), "mikrotik_switch_l2mtu", "'9216'", "9216"),
    (dict(mtu=1500), "mikrotik_switch_mtu", "1500", "9216"),
    (dict(l2mtu=9100, mtu=9216), "mikrotik_switch_mtu", "9216", "mtu <= l2mtu"),
    (dict(bridge="bridge"), "mikrotik_switch_bridge", "bridge", "bridge of its own"),
    (dict(bridge='fab"ric'), "mikrotik_switch_bridge", "fab", "bridge-fabric"),
    (dict(flow_control="yes"), "mikrotik_switch_flow_control", "yes", "true"),
    # issue 11: a comment with a newline was written raw into the .rsc
    (dict(ports=[{"interface": "qsfp56-dd-1-1", "node": "s", "comment": "a\n/system reset"}]),
     "mikrotik_switch_ports[0].comment", "a\\n/system", "one line"),
    (dict(ports=[{"interface": "qsfp56-dd-1-1", "node": "spark\r1"}]),
     "mikrotik_switch_ports[0].node", "spark", "one line"),
    (dict(ports=[{"interface": "qsfp56-dd-1-1", "node": {"name": "s"}}]),
     "mikrotik_switch_ports[0].node", "name", "one line"),
    (dict(ports=[{"interface": ["qsfp56-dd-1-1"], "node": "s"}]),
     "mikrotik_switch_ports[0].interface", "qsfp56-dd-1-1", "qsfp56-dd-1-1"),
    (dict(model=["CRS812"]), "mikrotik_switch_model", "CRS812", "CRS804-4DDQ"),
]


@pytest.mark.parametrize("override,variable,value,fix", BAD)
def test_every_validation_error_names_the_variable_value_and_fix(override, variable, value, fix):
    spec = dict(model=CRS812, ports=TWO)
    spec.update(override)
    with pytest.raises(MikrotikSwitchError) as err:
        validate(**spec)
    message = str(err.value)
    assert message.startswith(variable + "="), message
    assert err.value.variable == variable
    assert value in message.split(": ", 1)[0] and fix in err.value.fix, message
    assert "Fix: " in message


def test_management_port_is_refused_on_crs804_too():
    with pytest.raises(MikrotikSwitchError) as err:
        validate(CRS804, [{"interface": "ether2", "node": "s"}])
    assert str(err.value).startswith(
        "mikrotik_switch_ports[0].interface='ether2': is a management port")


def live(*entries):
    return [dict(zip(("interface", "bridge", "hw-offload"), e)) for e in entries]


def test_live_check_passes_a_switch_ready_for_the_fabric():
    spec = validate(CRS812, TWO)
    check_bridge_ports(spec, live(("ether1", "bridge", "false"),
                                  ("qsfp56-dd-1-1", "bridge-fabric", True),
                                  ("qsfp56-dd-1-2", "bridge-fabric", "true")))


@pytest.mark.parametrize("entries,variable,text", [
    (live(("ether1", "bridge", True), ("ether2", "bridge", True)), "mikrotik_switch_bridge",
     "bridge 'bridge' holds the switch chip's hardware offload (ports ether1, ether2)"),
    (live(("qsfp56-dd-1-5", "bridge", False)), "mikrotik_switch_ports",
     "is a port of bridge 'bridge'"),
    (live(("ether1", "bridge-fabric", False)), "mikrotik_switch_bridge",
     "holds the management port ether1"),
])
def test_live_check_refuses_what_would_defeat_the_fabric_bridge(entries, variable, text):
    with pytest.raises(MikrotikSwitchError) as err:
        check_bridge_ports(validate(CRS812, TWO), entries)
    assert err.value.variable == variable and text in str(err.value)
