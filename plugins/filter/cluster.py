# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Filters that render the cluster's command lines (logic in module_utils/cluster.py).

Every error is an AnsibleFilterError naming the filter, the variable, the value and the fix.
"""
from __future__ import annotations

from ansible_collections.dgxspark.cluster.plugins.module_utils import cluster
from ansible_collections.dgxspark.cluster.plugins.plugin_utils.filters import named


@named("vllm_serve_argv")
def vllm_serve_argv(engine_args, model, served_model_name=None, host=None, port=None,
                    nnodes=1, node_rank=0, master_addr=None, master_port=29501):
    launch = cluster.launch(nnodes, node_rank, master_addr, master_port)
    return cluster.serve_argv(model, engine_args, served_model_name, host, port, launch)


@named("ray_start_argv")
def ray_start_argv(role, node_ip, port, head_ip=None, num_gpus=1, num_cpus=2,
                   object_store_memory=1073741824):
    return cluster.ray_argv(role, node_ip, port, head_ip, num_gpus, num_cpus,
                            object_store_memory)


@named("vllm_engine_args")
def vllm_engine_args(plan, serve_args=None, padding=None):
    return cluster.engine_args(plan, serve_args, padding)


@named("vllm_plan_env")
def vllm_plan_env(plan):
    return cluster.plan_env(plan)


@named("ray_placement_env")
def ray_placement_env(strategy):
    return cluster.ray_placement_env(strategy)


@named("docker_run_argv")
def docker_run_argv(command, name, image, settings):
    return cluster.docker_run(command, name, image, settings)


@named("systemd_exec")
def systemd_exec(argv):
    return cluster.systemd_exec(argv)


@named("shell_line")
def shell_line(argv):
    return cluster.shell_line(argv)


@named("log_excerpt")
def log_excerpt(text, lines=40, causes=5):
    return cluster.log_excerpt(text, lines, causes)


class FilterModule(object):
    def filters(self):
        return {"vllm_engine_args": vllm_engine_args, "vllm_plan_env": vllm_plan_env,
                "vllm_serve_argv": vllm_serve_argv, "ray_start_argv": ray_start_argv,
                "ray_placement_env": ray_placement_env,
                "docker_run_argv": docker_run_argv, "systemd_exec": systemd_exec,
                "shell_line": shell_line, "log_excerpt": log_excerpt}
