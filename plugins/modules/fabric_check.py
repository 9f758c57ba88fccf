#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: fabric_check
short_description: Judge every fabric link from the nodes' probes
version_added: "0.1.0"
description:
  - Takes the fabric plan (M(dgxspark.cluster.fabric_plan)) and every node's probe
    (M(dgxspark.cluster.fabric_probe)) and judges each cable, both twins, both directions.
  - Names a swapped cable as such (which ports on which nodes), an MTU mismatch as such (with
    the MTUs on both ends, or the hop between them), a link without carrier, a missing address.
  - Fails when any link fails (unless O(fail_on_problems=false)); changes nothing.
  - Where the task runs on the controller (a local connection, as with C(delegate_to) localhost)
    its action plugin computes the result in Ansible's own process, with no interpreter to
    start; anywhere else it runs as a module. The result is the same.
author:
  - dgxspark.cluster contributors (@dgxspark)
extends_documentation_fragment:
  - dgxspark.cluster.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
  platform:
    support: full
    platforms: posix
options:
  plan:
    description: The fabric plan.
    type: dict
    required: true
  probes:
    description: Node name to that node's fabric_probe result.
    type: dict
    required: true
  fail_on_problems:
    description: Fail the task when a link fails.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Judge the fabric
  dgxspark.cluster.fabric_check:
    plan: "{{ fabric_plan_result.plan }}"
    probes: "{{ dict(groups['sparks'] | zip(groups['sparks'] | map('extract', hostvars, 'fabric_probe_result'))) }}"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
ok:
  description: Whether every link passed.
  returned: always
  type: bool
links:
  description: One row per link direction with C(ok) and C(problem).
  returned: always
  type: list
  elements: dict
problems:
  description: Every failing link with C(kind) (swapped, mtu, link_down, address, unreachable, missing), C(message) and C(fix).
  returned: always
  type: list
  elements: dict
report:
  description: The result in plain words.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dgxspark.cluster.plugins.module_utils.controller import finish
from ansible_collections.dgxspark.cluster.plugins.module_utils.fabric_check import (
    ARGUMENT_SPEC, compute)


def main():
    # on the controller the action plugin of the same name runs compute in Ansible's process
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    finish(module, compute(module.params))


if __name__ == "__main__":
    main()
