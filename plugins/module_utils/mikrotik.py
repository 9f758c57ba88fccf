# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""MikroTik switch (RouterOS 7) for the Spark fabric: validation, API data and a .rsc script.

One cable per Spark goes into a 200G leg of a QSFP-DD 400G -> 2x200G breakout DAC. RouterOS
shows each QSFP-DD cage as 8 lane interfaces ``qsfp56-dd-<cage>-1`` ... ``-8``; a 200G leg is a
4-lane group whose master is lane 1 or lane 5. The settings per model are the published ones
(docs: roles/mikrotik_switch/README.md):

* CRS804-4DDQ (4 QSFP-DD cages; "Managed CRS804 configuration"): on every Spark port
  ``auto-negotiation=no speed=200G-baseCR4 l2mtu=9216 tx-flow-control=on rx-flow-control=on``.
* CRS812-8DS-2DQ-2DDQ (2 QSFP-DD cages; chishiki37/dgx-spark-fabric routeros/crs812-config.rsc
  and docs/crs812-setup.md): a 2x200G breakout needs *all 8* lane interfaces of the cage
  enabled (enabling only lanes 1 and 5 gives 50G each); only the group masters go into the
  bridge; no ``speed=`` (the lane interfaces have none) and FEC left at auto (fec91).
* Both: 802.3x pause on every Spark port in place of PFC/ECN, ``l2mtu=9216`` and bridge
  ``mtu=9216`` for the hosts' MTU 9000, and all Spark ports in one hardware-offloaded bridge
  (a Marvell CRS offloads one bridge per switch chip). The management ports (ether1, ether2)
  and every other bridge are never touched.

The same desired state comes out twice: as ``community.routeros.api_modify`` calls (the
fields exist unversioned in community.routeros' ``_api_data.py`` for ``interface bridge``,
``interface ethernet`` and ``interface bridge port``) and as a RouterOS script derived from
them, for people who configure by hand.
"""
from __future__ import annotations

import re

from .plan.errors import InputError

SPEED_200G = "200G-baseCR4"
MIN_L2MTU = 9014        # a 9000-byte IP packet plus the 14-byte Ethernet header
HOST_MTU = 9000         # the Sparks' fabric MTU (fabric_mtu)
MANAGEMENT = ("ether1", "ether2")


def _cages(count):
    return tuple("qsfp56-dd-%d" % c for c in range(1, count + 1))


MODELS = {
    "CRS804-4DDQ": {
        "cages": _cages(4),
        "other": MANAGEMENT,
        "forced_speed": True,         # auto-negotiation=no speed=200G-baseCR4
        "enable_all_lanes": False,
    },
    "CRS812-8DS-2DQ-2DDQ": {
        "cages": _cages(2),
        "other": MANAGEMENT
        + tuple("qsfp56-%d-%d" % (c, lane) for c in (1, 2) for lane in range(1, 5))
        + tuple("sfp56-%d" % n for n in range(1, 9)),
        "forced_speed": False,        # no speed= on the lane interfaces, FEC auto
        "enable_all_lanes": True,     # all 8 lanes of a used cage, or 50G per leg
    },
}


class MikrotikSwitchError(InputError):
    """Bad switch input: names the role variable, the value and the fix."""


def lanes(cage):
    return ["%s-%d" % (cage, lane) for lane in range(1, 9)]


def model_interfaces(model):
    """Every interface name the model has (lane interfaces included)."""
    info = MODELS[model]
    return [name for cage in info["cages"] for name in lanes(cage)] + list(info["other"])


def spark_ports(model):
    """The 200G legs a Spark can use: lane 1 and lane 5 of every QSFP-DD cage."""
    return ["%s-%d" % (cage, lane) for cage in MODELS[model]["cages"] for lane in (1, 5)]


def group(interface):
    """The 4 lane interfaces of a 200G leg (its master first)."""
    cage, lane = interface.rsplit("-", 1)
    first = 1 if int(lane) <= 4 else 5
    return ["%s-%d" % (cage, n) for n in range(first, first + 4)]


def _natural(name):
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def _int(variable, value, minimum, problem, fix):
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise MikrotikSwitchError(variable, value, problem, fix)
    return value


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _check_port(model, index, port):
    where = "mikrotik_switch_ports[%d]" % index
    if not isinstance(port, dict) or not port.get("interface") or not port.get("node"):
        raise MikrotikSwitchError(
            where, port, "needs an interface and a node",
            "write {interface: qsfp56-dd-1-1, node: spark1, comment: optional}")
    iface = port["interface"]
    variable = where + ".interface"
    if not isinstance(iface, str):
        raise MikrotikSwitchError(variable, iface, "must be an interface name",
                                  "use one of the 200G legs %s" % ", ".join(spark_ports(model)))
    if iface in MANAGEMENT:
        raise MikrotikSwitchError(
            variable, iface, "is a management port; the role never touches it",
            "keep management on %s and list the Spark's 200G leg (one of %s)"
            % ("/".join(MANAGEMENT), ", ".join(spark_ports(model))))
    if iface not in model_interfaces(model):
        raise MikrotikSwitchError(
            variable, iface, "does not exist on a %s" % model,
            "use one of the 200G legs %s" % ", ".join(spark_ports(model)))
    if iface not in spark_ports(model):
        if iface.startswith("qsfp56-dd-"):
            master = group(iface)[0]
            raise MikrotikSwitchError(variable, iface, "is a lane of the 200G leg %s, not a "
                                      "leg of its own" % master, "use %s" % master)
        raise MikrotikSwitchError(
            variable, iface, "is not a 2x200G breakout leg of a QSFP-DD cage (the only Spark "
            "ports with published settings)", "use one of %s" % ", ".join(spark_ports(model)))
    for key in ("node", "comment"):
        value = port.get(key)
        if value is None and key == "comment":
            continue
        if not isinstance(value, (str, int)) or isinstance(value, bool) or \
                _CONTROL.search(str(value)):
            raise MikrotikSwitchError(
                "%s.%s" % (where, key), value, "must be one line of text (a newline or other "
                "control character would be written raw into the RouterOS script)",
                "write the %s on one line, e.g. spark1" % key)
    comment = port.get("comment") or port["node"]
    return {"interface": iface, "node": str(port["node"]), "comment": str(comment)}


def validate(model, ports, bridge="bridge-fabric", l2mtu=9216, mtu=9216, flow_control=True):
    """Check a switch spec; return it normalised (ports sorted by interface)."""
    if not isinstance(model, str) or model not in MODELS:
        raise MikrotikSwitchError("mikrotik_switch_model", model, "is not a supported model",
                                  "use one of %s" % ", ".join(sorted(MODELS)))
    if not isinstance(bridge, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", bridge):
        raise MikrotikSwitchError("mikrotik_switch_bridge", bridge,
                                  "is not a plain interface name", "use e.g. bridge-fabric")
    if bridge == "bridge":
        raise MikrotikSwitchError(
            "mikrotik_switch_bridge", bridge,
            "is the default-configuration bridge that holds the management ports",
            "give the fabric a bridge of its own, e.g. bridge-fabric")
    _int("mikrotik_switch_l2mtu", l2mtu, MIN_L2MTU,
         "is below %d, too small for the Sparks' 9000-byte jumbo frames" % MIN_L2MTU,
         "use 9216")
    _int("mikrotik_switch_mtu", mtu, HOST_MTU,
         "is below the Sparks' fabric MTU %d" % HOST_MTU, "use 9216")
    if mtu > l2mtu:
        raise MikrotikSwitchError("mikrotik_switch_mtu", mtu,
                                  "is above mikrotik_switch_l2mtu=%d" % l2mtu,
                                  "keep mtu <= l2mtu (9216 and 9216)")
    if not isinstance(flow_control, bool):
        raise MikrotikSwitchError("mikrotik_switch_flow_control", flow_control,
                                  "must be true or false", "use true (802.3x pause)")
    if not isinstance(ports, (list, tuple)) or not ports:
        raise MikrotikSwitchError(
            "mikrotik_switch_ports", ports, "must list at least one Spark port",
            "list each Spark's leg, e.g. [{interface: qsfp56-dd-1-1, node: spark1}]")
    checked = [_check_port(model, i, p) for i, p in enumerate(ports)]
    for key in ("interface", "node"):
        seen = set()
        for port in checked:
            if port[key] in seen:
                raise MikrotikSwitchError(
                    "mikrotik_switch_ports", [p[key] for p in checked],
                    "lists %s %s twice" % (key, port[key]),
                    "give every Spark exactly one leg of its own")
            seen.add(port[key])
    checked.sort(key=lambda p: _natural(p["interface"]))
    return {"model": model, "bridge": bridge, "l2mtu": l2mtu, "mtu": mtu,
            "flow_control": flow_control, "ports": checked}


def _ethernet(spec):
    info = MODELS[spec["model"]]
    pause = "on" if spec["flow_control"] else "off"
    entries = {}
    if info["enable_all_lanes"]:
        for port in spec["ports"]:
            for lane in lanes(port["interface"].rsplit("-", 1)[0]):
                entries[lane] = {"default-name": lane, "disabled": False}
    for port in spec["ports"]:
        entry = {"default-name": port["interface"]}
        if info["forced_speed"]:
            entry.update({"auto-negotiation": False, "speed": SPEED_200G})
        entry.update({"l2mtu": spec["l2mtu"], "tx-flow-control": pause,
                      "rx-flow-control": pause, "disabled": False,
                      "comment": port["comment"]})
        entries[port["interface"]] = entry
    return [entries[name] for name in sorted(entries, key=_natural)]


def api_modify(spec):
    """The community.routeros.api_modify calls, in the order they must run."""
    bridge = spec["bridge"]
    ethernet = _ethernet(spec)
    owned_lanes = [lane for port in spec["ports"] for lane in group(port["interface"])]
    return [
        {"path": "interface bridge",
         "data": [{"name": bridge, "mtu": spec["mtu"], "comment": "dgxspark fabric"}],
         "handle_absent_entries": "ignore",
         "restrict": [{"field": "name", "values": [bridge]}]},
        {"path": "interface ethernet",
         "data": ethernet,
         "handle_absent_entries": "ignore",
         "restrict": [{"field": "default-name",
                       "values": [e["default-name"] for e in ethernet]}]},
        # Remove from the fabric bridge only stale lanes of the Sparks' own 200G legs.
        {"path": "interface bridge port",
         "data": [{"bridge": bridge, "interface": p["interface"], "hw": True,
                   "disabled": False, "comment": p["comment"]} for p in spec["ports"]],
         "handle_absent_entries": "remove",
         "restrict": [{"field": "bridge", "values": [bridge]},
                      {"field": "interface", "values": owned_lanes}]},
    ]


QUOTED = ("name", "default-name", "bridge", "interface", "comment")


def _value(key, value):
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key in QUOTED:
        return '"%s"' % re.sub(r'(["\\$])', r"\\\1", str(value))
    return str(value)


def _args(entry, skip=()):
    return " ".join("%s=%s" % (k, _value(k, v)) for k, v in entry.items() if k not in skip)


def _find(*pairs):
    return "[find where %s]" % " and ".join("%s=%s" % (k, _value(k, v)) for k, v in pairs)


def rsc(spec, api, switch="switch"):
    """The RouterOS script equivalent of the api_modify calls (safe to import again)."""
    bridge_call, ethernet_call, port_call = api
    info = MODELS[spec["model"]]
    lines = [
        "# dgxspark.cluster mikrotik_switch: Spark fabric of %s (%s), RouterOS 7." % (
            switch, spec["model"]),
        "# Import: /import file-name=%s.rsc (safe to run again). Touches only the bridge"
        % switch,
        "# %s, the Spark ports and their lanes; management (%s) and other bridges stay."
        % (_value("name", spec["bridge"]), ", ".join(MANAGEMENT)),
        "",
        "# One hardware-offloaded bridge for every Spark port, jumbo MTU.",
        "/interface bridge",
    ]
    for entry in bridge_call["data"]:
        lines.append(":if ([:len %s] = 0) do={ add name=%s }"
                     % (_find(("name", entry["name"])), _value("name", entry["name"])))
        lines.append("set %s %s" % (_find(("name", entry["name"])), _args(entry, ("name",))))
    if info["forced_speed"]:
        settings = ["# Spark ports: l2mtu, 802.3x pause, auto-negotiation=no speed=%s."
                    % SPEED_200G]
    else:
        settings = ["# Spark ports: l2mtu, 802.3x pause; no speed=, FEC left at auto. All 8 lanes",
                    "# of a used QSFP-DD cage enabled, or a 2x200G breakout leg runs at 50G."]
    lines += [""] + settings + ["/interface ethernet"]
    for entry in ethernet_call["data"]:
        lines.append("set %s %s" % (_find(("default-name", entry["default-name"])),
                                    _args(entry, ("default-name",))))
    lines += ["", "# Only the 200G group masters are bridge ports. A Spark port that is a port of",
              "# another bridge must be removed there first.", "/interface bridge port"]
    masters = [e["interface"] for e in port_call["data"]]
    for port in port_call["data"]:
        stale = [lane for lane in group(port["interface"]) if lane not in masters]
        lines.append("remove [find where bridge=%s and (%s)]" % (
            _value("bridge", spec["bridge"]),
            " or ".join("interface=%s" % _value("interface", s) for s in stale)))
    for port in port_call["data"]:
        where = _find(("bridge", port["bridge"]), ("interface", port["interface"]))
        lines.append(":if ([:len %s] = 0) do={ add %s }"
                     % (where, _args(port, ("disabled", "comment"))))
        lines.append("set %s %s" % (where, _args(port, ("bridge", "interface"))))
    return "\n".join(lines) + "\n"


def render(model, ports, bridge="bridge-fabric", l2mtu=9216, mtu=9216, flow_control=True,
           switch="switch"):
    """Validate a switch spec and return its api_modify calls and its .rsc script."""
    spec = validate(model, ports, bridge=bridge, l2mtu=l2mtu, mtu=mtu,
                    flow_control=flow_control)
    api = api_modify(spec)
    return {"spec": spec, "api_modify": api, "rsc": rsc(spec, api, switch)}


def _truthy(value):
    return value is True or str(value).lower() in ("true", "yes")


def check_bridge_ports(spec, entries):
    """Refuse a switch whose bridge ports would defeat the fabric bridge.

    ``entries`` is ``/interface bridge port`` as community.routeros.api_info returns it with
    ``unfiltered=true`` (read-only ``hw-offload`` included). Raises MikrotikSwitchError when a
    Spark port is a port of another bridge (api_modify would fail half-way), when a management
    port is in the fabric bridge (it is the management bridge), or when another bridge holds
    the switch chip's one hardware offload (the fabric would be forwarded by the CPU).
    """
    bridge = spec["bridge"]
    ports = set(p["interface"] for p in spec["ports"])
    offloaded = {}
    for entry in entries:
        iface, other = entry.get("interface"), entry.get("bridge")
        if other == bridge and iface in MANAGEMENT:
            raise MikrotikSwitchError(
                "mikrotik_switch_bridge", bridge,
                "holds the management port %s on the switch" % iface,
                "name a bridge of its own for the fabric, e.g. bridge-fabric")
        if other != bridge and iface in ports:
            raise MikrotikSwitchError(
                "mikrotik_switch_ports", iface,
                "is a port of bridge %r on the switch; the role changes no other bridge" % other,
                "remove it there (/interface bridge port remove [find interface=%s]) and rerun"
                % iface)
        if other != bridge and _truthy(entry.get("hw-offload")):
            offloaded.setdefault(other, []).append(iface)
    if offloaded:
        other, names = sorted(offloaded.items())[0]
        raise MikrotikSwitchError(
            "mikrotik_switch_bridge", bridge,
            "bridge %r holds the switch chip's hardware offload (ports %s); one bridge per "
            "chip is offloaded, so the fabric would be forwarded by the CPU"
            % (other, ", ".join(names)),
            "set hw=no on those ports (management needs no offload) or remove them from %r, "
            "then rerun" % other)
