# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Filters that render the cluster's command lines (logic in module_utils/cluster.py)."""
from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.dgxspark.cluster.plugins.module_utils import cluster


def vllm_serve_argv(engine_args, model, served_model_name=None, host=None, port=None,
                    nnodes=1, node_rank=0, master_addr=None, master_port=29501):
    try:
        launch = None
        if int(nnodes) > 1:
            launch = cluster.multi_node(nnodes, node_rank, master_addr, master_port)
        return cluster.serve_argv(model, engine_args, served_model_name, host, port, launch)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError("vllm_cluster_engine_args: %s" % exc)


def ray_start_argv(role, node_ip, port, head_ip=None, num_gpus=1, num_cpus=2,
                   object_store_memory=1073741824):
    return cluster.ray_argv(role, node_ip, int(port), head_ip, int(num_gpus), int(num_cpus),
                            int(object_store_memory))


def vllm_engine_args(plan, serve_args=None, padding=None):
    try:
        return cluster.engine_args(plan, serve_args, padding)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc))


def docker_run_argv(command, name, image, settings):
    return cluster.docker_argv(name, image, command, **settings)


class FilterModule(object):
    def filters(self):
        return {"vllm_engine_args": vllm_engine_args, "vllm_serve_argv": vllm_serve_argv, "ray_start_argv": ray_start_argv,
                "docker_run_argv": docker_run_argv, "systemd_exec": cluster.systemd_exec,
                "shell_line": cluster.shell_line}
