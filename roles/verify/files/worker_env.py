"""What every vLLM worker process on this node really runs with (the Ray-free launch).

Run inside the node's vllm serve container (docker exec -i dgxspark-vllm python3 -). Prints
one JSON object: {"workers": [{"pid", "name", "env": {variable: value}}]} for each process
whose title is vLLM's worker title (VLLM::Worker...), reading /proc/<pid>/environ: the
environment the rank's NCCL / Gloo actually get, not what a file says."""
import json
import os

KEYS = ["VLLM_HOST_IP", "NCCL_IB_HCA", "NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME",
        "NCCL_IB_GID_INDEX", "NCCL_IB_DISABLE", "NCCL_NET_PLUGIN", "NCCL_IB_SUBNET_AWARE_ROUTING",
        "NCCL_IB_MERGE_NICS", "NCCL_ALGO"]


def title(pid):
    try:
        with open("/proc/%s/cmdline" % pid, "rb") as handle:
            return handle.read().split(b"\0")[0].decode(errors="replace").strip()
    except OSError:
        return ""


def environ(pid):
    with open("/proc/%s/environ" % pid, "rb") as handle:
        pairs = [item.split(b"=", 1) for item in handle.read().split(b"\0") if b"=" in item]
    return dict((k.decode(errors="replace"), v.decode(errors="replace")) for k, v in pairs)


def main():
    workers = []
    for pid in sorted((p for p in os.listdir("/proc") if p.isdigit()), key=int):
        name = title(pid)
        if not name.startswith("VLLM::Worker"):
            continue
        try:
            env = environ(pid)
        except OSError:
            continue
        workers.append({"pid": int(pid), "name": name,
                        "env": dict((k, env.get(k)) for k in KEYS)})
    print(json.dumps({"workers": workers}, sort_keys=True))


if __name__ == "__main__":
    main()
