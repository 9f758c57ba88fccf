# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Filters of the fabric role (logic in module_utils/fabric_check.py)."""
from __future__ import annotations

import json

from ansible_collections.dgxspark.cluster.plugins.module_utils.fabric_check import live_state


def fabric_live_state(ip_addr_json, node_plan, mtu, mgmt_ips=None):
    links = json.loads(ip_addr_json) if isinstance(ip_addr_json, str) else ip_addr_json
    return live_state(links, node_plan, int(mtu), mgmt_ips or [])


class FilterModule(object):
    def filters(self):
        return {"fabric_live_state": fabric_live_state}
