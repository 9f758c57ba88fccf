"""Figures of the lab's engine, one line each (run as root, with a lab built and site.yml run):

    .venv/bin/python scripts/bench_lab_engine.py [--inventory inventory/lab.yml] [--launch]

* memory per node while serving: what the node's processes hold (RSS, every process in the
  node's PID namespace), and of that the engine's processes (vllm serve, its EngineCore and
  workers) and Ray's processes (raylet, GCS, object store, Ray workers) -- Ray's figure is what
  the Ray executor costs a node that the Ray-free launch does not pay;
* with --launch: the cluster's launch to the first served token (stop, then playbooks/
  cluster.yml, timed until a completion returns), on whatever executor the lab runs.

The figures are the lab's (CPU engine, shared cores, a tiny model), not a Spark's.
"""
import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENGINE = ("vllm serve", "VLLM::", "vllm_standin", "multiprocessing.spawn",
          "multiprocessing.resource_tracker")
RAY = ("raylet", "gcs_server", "ray::", "ray/_private", "dashboard", "plasma", "ray start")


def hosts(inventory):
    with open(inventory) as handle:
        data = yaml.safe_load(handle)
    group = data["all"]["children"]["sparks"]
    return group["hosts"], group["vars"]


def ssh(host, vars_, command):
    argv = ["ssh", "-i", vars_["ansible_ssh_private_key_file"], "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "%s@%s" % (vars_.get("ansible_user", "root"), host["ansible_host"]), command]
    return subprocess.run(argv, capture_output=True, text=True, check=False).stdout


def memory(nodes, vars_):
    out = {}
    for name, host in nodes.items():
        rows = ssh(host, vars_, "ps -eo rss=,args=").splitlines()
        total = engine = ray = 0
        for row in rows:
            parts = row.strip().split(None, 1)
            if len(parts) != 2 or not parts[0].isdigit():
                continue
            kib, args = int(parts[0]), parts[1]
            total += kib
            if any(word in args for word in RAY):
                ray += kib
            elif any(word in args for word in ENGINE):
                engine += kib
        out[name] = {"total_mib": total // 1024, "engine_mib": engine // 1024,
                     "ray_mib": ray // 1024}
    return out


def first_token(url, model, deadline):
    body = json.dumps({"model": model, "prompt": "The quick brown fox", "max_tokens": 1,
                       "temperature": 0}).encode()
    while time.time() < deadline:
        try:
            request = urllib.request.Request(url + "/v1/completions", data=body,
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as response:
                if response.status == 200:
                    return time.time()
        except OSError:
            pass
        time.sleep(2)
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", default=os.path.join(ROOT, "inventory/lab.yml"))
    parser.add_argument("--launch", action="store_true")
    parser.add_argument("--extra-vars", default="", help="passed to the playbooks (-e)")
    args = parser.parse_args()
    nodes, vars_ = hosts(args.inventory)
    head = next(iter(nodes.values()))
    url = "http://%s:8000" % head["ansible_host"]
    models = json.load(urllib.request.urlopen(url + "/v1/models", timeout=30))
    model = models["data"][0]["id"]
    for name, figures in memory(nodes, vars_).items():
        print("memory %s while serving: %d MiB in the node's processes, %d MiB engine, %d MiB Ray"
              % (name, figures["total_mib"], figures["engine_mib"], figures["ray_mib"]))
    if args.launch:
        playbook = [os.path.join(ROOT, ".venv/bin/ansible-playbook"), "-i", args.inventory]
        if args.extra_vars:
            playbook += ["-e", args.extra_vars]
        subprocess.run(playbook + [os.path.join(ROOT, "playbooks/stop.yml")], check=True,
                       capture_output=True, cwd=ROOT)
        start = time.time()
        subprocess.run(playbook + [os.path.join(ROOT, "playbooks/cluster.yml")], check=True,
                       capture_output=True, cwd=ROOT)
        done = first_token(url, model, start + 900)
        if done is None:
            print("launch to first token: no token within 900 s")
            return 1
        print("launch to first token (%d nodes): %.0f s" % (len(nodes), done - start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
