"""What each Ray node's vLLM rank would see: its own environment plus what vLLM's Ray executor
carries over from the driver (the environment of this process, i.e. vllm serve's container).

Run inside the vllm serve container on the head (python3 - < rank_env.py). Prints one JSON
object: node IP -> {variable: value}. Uses vLLM's own get_driver_env_vars and
ray_non_carry_over_env_vars.json handling from the image (vLLM 0.33: vllm/v1/executor/
ray_env_utils.py, vllm/ray/ray_env.py); ranks apply the carried values with setdefault, as
RayWorkerProc does, so a node's own values win and a missing one is taken from the head."""
import importlib
import importlib.util
import json
import os
import sys
import types

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

KEYS = ["VLLM_HOST_IP", "NCCL_IB_HCA", "NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME",
        "NCCL_IB_GID_INDEX", "NCCL_IB_DISABLE", "NCCL_NET_PLUGIN", "NCCL_IB_SUBNET_AWARE_ROUTING",
        "NCCL_IB_MERGE_NICS", "NCCL_ALGO"]
WORKER_SPECIFIC = {"VLLM_HOST_IP", "VLLM_HOST_PORT", "VLLM_NIXL_SIDE_CHANNEL_HOST", "LOCAL_RANK",
                   "CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES"}


def driver_env():
    """vLLM's get_driver_env_vars, loaded without vllm/__init__ (which needs a GPU build)."""
    package = sys.modules.get("vllm")
    if package is None:
        package = types.ModuleType("vllm")
        package.__path__ = list(importlib.util.find_spec("vllm").submodule_search_locations)
        sys.modules["vllm"] = package
    importlib.import_module("vllm.ray.ray_env")
    path = os.path.join(package.__path__[0], "v1", "executor", "ray_env_utils.py")
    spec = importlib.util.spec_from_file_location("dgxspark_ray_env_utils", path)
    utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(utils)
    return utils.get_driver_env_vars(worker_specific_vars=WORKER_SPECIFIC)


@ray.remote(num_cpus=0.01)
def rank_view(carried):
    merged = dict(os.environ)
    for key, value in carried.items():
        merged.setdefault(key, value)
    return {key: merged.get(key) for key in KEYS}


def main():
    carried = driver_env()
    ray.init(address=os.environ.get("RAY_ADDRESS", "auto"), logging_level="ERROR",
             log_to_driver=False)
    nodes = [n for n in ray.nodes() if n["Alive"]]
    views = ray.get([rank_view.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
        node_id=n["NodeID"], soft=False)).remote(carried) for n in nodes], timeout=120)
    print(json.dumps({n["NodeManagerAddress"]: view for n, view in zip(nodes, views)},
                     sort_keys=True))


if __name__ == "__main__":
    main()
