#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: mikrotik_switch_config
short_description: Render the Spark fabric configuration of a MikroTik switch
version_added: "0.1.0"
description:
  - Validates a switch spec (model, fabric bridge, one 200G port per Spark) and renders the
    desired state twice, as the calls of M(community.routeros.api_modify) (paths
    C(interface bridge), C(interface ethernet), C(interface bridge port)) and as a RouterOS
    C(.rsc) script that does the same by hand.
  - "Per model, as published: C(CRS804-4DDQ) Spark ports get C(auto-negotiation=no
    speed=200G-baseCR4); on C(CRS812-8DS-2DQ-2DDQ) all 8 lane interfaces of a used QSFP-DD
    cage are enabled (a 2x200G breakout leg runs at 50G otherwise), no C(speed=) and FEC left
    at auto. Both: C(l2mtu), 802.3x pause (C(tx-flow-control), C(rx-flow-control)), and every
    Spark port in one hardware-offloaded bridge (C(hw=yes)) with a jumbo C(mtu)."
  - Only the Spark ports, the lanes of their QSFP-DD cage (CRS812) and the fabric bridge
    appear in the data; the management ports C(ether1) and C(ether2) and other bridges never
    do. From the fabric bridge, only stale lanes of the Sparks' own 200G legs are removed.
  - With O(bridge_ports) (the switch's C(/interface bridge port) table from
    M(community.routeros.api_info) with C(unfiltered=true)) it also refuses a switch where a
    Spark port is a port of another bridge, where the fabric bridge holds a management port,
    or where another bridge holds the switch chip's single hardware offload.
  - Errors name the role variable (C(mikrotik_switch_<option>)), the bad value and the fix.
  - Runs on the controller and changes nothing.
author:
  - dgxspark.cluster contributors (@dgxspark)
extends_documentation_fragment:
  - dgxspark.cluster.attributes
attributes:
  check_mode:
    support: full
    details: The module only computes; it behaves the same in check mode.
  diff_mode:
    support: none
  idempotent:
    support: full
  platform:
    support: full
    platforms: posix
options:
  model:
    description: The switch model.
    type: str
    required: true
    choices: [CRS804-4DDQ, CRS812-8DS-2DQ-2DDQ]
  ports:
    description:
      - One entry per Spark, C(interface) (the RouterOS name of a 200G breakout leg, lane 1 or
        5 of a QSFP-DD cage, such as C(qsfp56-dd-1-1) or C(qsfp56-dd-1-5)), C(node) (the
        Spark's inventory name) and an optional C(comment) (default the node).
    type: list
    elements: dict
    required: true
  bridge:
    description: Name of the fabric bridge; not C(bridge), the default-configuration bridge.
    type: str
    default: bridge-fabric
  l2mtu:
    description: C(l2mtu) of every Spark port; at least 9014 for the Sparks' jumbo frames.
    type: int
    default: 9216
  mtu:
    description: C(mtu) of the fabric bridge; at least the Sparks' MTU 9000, at most O(l2mtu).
    type: int
    default: 9216
  flow_control:
    description: 802.3x pause on the Spark ports (C(tx-flow-control), C(rx-flow-control)).
    type: bool
    default: true
  switch:
    description: Name of the switch in the script's header and file name (the inventory name).
    type: str
    default: switch
  bridge_ports:
    description:
      - The switch's current C(/interface bridge port) entries (C(result) of
        M(community.routeros.api_info) with C(path=interface bridge port) and
        C(unfiltered=true)). When given, the switch is checked as described above.
    type: list
    elements: dict
seealso:
  - module: community.routeros.api_modify
  - module: community.routeros.api_info
"""

EXAMPLES = r"""
- name: Render the fabric of a CRS804 with four Sparks
  dgxspark.cluster.mikrotik_switch_config:
    model: CRS804-4DDQ
    switch: crs804
    ports:
      - {interface: qsfp56-dd-1-1, node: spark1}
      - {interface: qsfp56-dd-1-5, node: spark2}
      - {interface: qsfp56-dd-2-1, node: spark3}
      - {interface: qsfp56-dd-2-5, node: spark4}
  delegate_to: localhost
  register: switch

- name: Apply it
  community.routeros.api_modify:
    path: "{{ item.path }}"
    data: "{{ item.data }}"
    handle_absent_entries: "{{ item.handle_absent_entries }}"
    restrict: "{{ item.restrict }}"
  loop: "{{ switch.api_modify }}"
  delegate_to: localhost
"""

RETURN = r"""
api_modify:
  description:
    - The M(community.routeros.api_modify) calls in the order they must run, each with
      C(path), C(data), C(handle_absent_entries) and C(restrict).
  returned: success
  type: list
  elements: dict
  sample:
    - path: interface bridge
      data: [{name: bridge-fabric, mtu: 9216, comment: dgxspark fabric}]
      handle_absent_entries: ignore
      restrict: [{field: name, values: [bridge-fabric]}]
rsc:
  description: The RouterOS script that does the same as the api_modify calls (safe to re-import).
  returned: success
  type: str
ports:
  description: The validated Spark ports (C(interface), C(node), C(comment)), sorted by interface.
  returned: success
  type: list
  elements: dict
  sample: [{interface: qsfp56-dd-1-1, node: spark1, comment: spark1}]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dgxspark.cluster.plugins.module_utils.mikrotik import (
    MODELS, MikrotikSwitchError, check_bridge_ports, render)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            model=dict(type="str", required=True, choices=sorted(MODELS)),
            ports=dict(type="list", elements="dict", required=True),
            bridge=dict(type="str", default="bridge-fabric"),
            l2mtu=dict(type="int", default=9216),
            mtu=dict(type="int", default=9216),
            flow_control=dict(type="bool", default=True),
            switch=dict(type="str", default="switch"),
            bridge_ports=dict(type="list", elements="dict"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        result = render(p["model"], p["ports"], bridge=p["bridge"], l2mtu=p["l2mtu"],
                        mtu=p["mtu"], flow_control=p["flow_control"], switch=p["switch"])
        if p["bridge_ports"] is not None:
            check_bridge_ports(result["spec"], p["bridge_ports"])
    except MikrotikSwitchError as exc:
        module.fail_json(msg=str(exc), variable=exc.variable, fix=exc.fix)
    module.exit_json(changed=False, api_modify=result["api_modify"], rsc=result["rsc"],
                     ports=result["spec"]["ports"])


if __name__ == "__main__":
    main()
