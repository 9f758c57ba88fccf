"""The engine's and Ray's systemd units stop within vllm_cluster_stop_timeout: docker stop gets
that many seconds, systemd 30 more (so systemd never kills docker stop itself)."""
from __future__ import annotations

import re

import jinja2
import pytest
import yaml

from ansible_collections.dgxspark.cluster.plugins.module_utils import cluster

from conftest import ROOT

ROLE = ROOT / "roles/vllm_cluster"
DEFAULTS = yaml.safe_load((ROLE / "defaults/main.yml").read_text())


def render(template, **variables):
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ROLE / "templates")),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["dgxspark.cluster.systemd_exec"] = cluster.systemd_exec
    values = dict(DEFAULTS, vllm_cluster_served_model_name="m", vllm_cluster_nodes=["a", "b"],
                  vllm_cluster_node_rank=1, vllm_cluster_head_ip="10.0.0.1",
                  vllm_cluster_master_port=29501, vllm_cluster_config_dir="/etc/dgxspark",
                  vllm_cluster_vllm_argv=["docker", "run", "image"],
                  vllm_cluster_ray_head_argv=["docker", "run", "ray"],
                  vllm_cluster_ray_worker_argv=["docker", "run", "ray"])
    values.update(variables)
    return env.get_template(template).render(**values)


def stops(unit):
    """(docker stop's -t, TimeoutStopSec) of every stop in a rendered unit."""
    waits = [int(t) for t in re.findall(r"(?m)^ExecStop=/usr/bin/docker stop -t (\d+) ", unit)]
    limits = [int(t) for t in re.findall(r"(?m)^TimeoutStopSec=(\d+)$", unit)]
    return waits, limits


@pytest.mark.parametrize("template,executor", [
    ("dgxspark-vllm.service.j2", "mp"), ("dgxspark-vllm.service.j2", "ray"),
    ("dgxspark-ray-head.service.j2", "ray"), ("dgxspark-ray-worker.service.j2", "ray")])
@pytest.mark.parametrize("timeout", [DEFAULTS["vllm_cluster_stop_timeout"], 10])
def test_every_stop_waits_the_configured_time_and_systemd_waits_longer(
        template, executor, timeout):
    unit = render(template, vllm_cluster_executor=executor, vllm_cluster_stop_timeout=timeout)
    assert stops(unit) == ([timeout], [timeout + 30]), unit


def test_the_default_gives_a_real_engine_a_minute():
    assert DEFAULTS["vllm_cluster_stop_timeout"] == 60
