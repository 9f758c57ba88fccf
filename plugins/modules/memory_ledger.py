#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: memory_ledger
short_description: Read what a Spark's unified memory holds after a launch
version_added: "0.3.0"
description:
  - Reads the node's memory (C(/proc/meminfo)), what vLLM itself logged about memory in the
    engine unit's log since it started (C(Model loading took X GiB), C(Available KV cache
    memory), the explicit KV budget, the CPU build's C(Explicitly set (X/Y) GiB for KV cache)
    and C(Auto set) lines, the engine's C(KV cache size) in tokens), the proportional set size
    of the engine's and of Ray's processes, and the records of the cluster and of the memory
    guard (its thresholds and its last kill).
  - The ledger itself (per node total, available, weights, KV cache, Ray, the margin above the
    guard's first threshold and a warning under a floor) is made from every node's result by
    the C(dgxspark.cluster.memory_ledger) filter (C(plugins/module_utils/memory.py)).
    Read-only.
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
    platforms: linux
options:
  unit:
    description: The engine's systemd unit whose log holds vLLM's memory lines.
    type: str
    default: dgxspark-vllm.service
  containers:
    description: Containers whose processes are the engine's or Ray's.
    type: list
    elements: str
    default: [dgxspark-vllm, dgxspark-ray]
  facts_dir:
    description: Where the roles' records are.
    type: path
    default: /etc/ansible/facts.d
"""

EXAMPLES = r"""
- name: Read what the node's memory holds
  dgxspark.cluster.memory_ledger:
  register: memory

- name: Make the ledger of every node
  ansible.builtin.set_fact:
    ledger: >-
      {{ ansible_play_hosts | dgxspark.cluster.memory_ledger(
           dict(ansible_play_hosts | zip(ansible_play_hosts | map('extract', hostvars, ['memory', 'memory']))),
           {'floor_gib': 4}) }}
  run_once: true
"""

RETURN = r"""
memory:
  description:
    - C(meminfo_kib) (C(MemTotal), C(MemAvailable), C(SwapTotal), C(SwapFree)); C(figures)
      (C(ranks) - per engine process C(weights_gib), C(kv_cache_gib), C(kv_source),
      C(non_kv_gib), C(ip), C(name) - C(kv_tokens), C(device)); C(log_error); C(processes)
      (C(engine) and C(ray), each C(gib) and C(processes)); C(guard) (the memory guard's
      record or null); C(last_kill); C(host_ip), C(executor) and C(ray_object_store_bytes)
      (from the cluster record).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dgxspark.cluster.plugins.module_utils.node import read_memory


def main():
    module = AnsibleModule(
        argument_spec=dict(unit=dict(type="str", default="dgxspark-vllm.service"),
                           containers=dict(type="list", elements="str",
                                           default=["dgxspark-vllm", "dgxspark-ray"]),
                           facts_dir=dict(type="path", default="/etc/ansible/facts.d")),
        supports_check_mode=True,
    )
    module.exit_json(changed=False, memory=read_memory(module.params["unit"],
                                                       tuple(module.params["containers"]),
                                                       module.params["facts_dir"]))


if __name__ == "__main__":
    main()
