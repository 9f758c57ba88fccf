"""Lab and fabric speed on this machine (root): prints times, asserts nothing.

1. lab create for 4 nodes (ring4) with a warm root-file-system cache (goal: under 2 minutes),
2. fabric converge on the 4 nodes (goal: under 60 s),
3. idempotent fabric re-run (goal: under 20 s and 0 changed),
4. lab teardown.

    sudo .venv/bin/python scripts/bench_fabric.py [ring4|ring3|switch]
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INVENTORY = "/var/lib/dgxspark-lab/inventory.yml"


def playbook(*args):
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               PATH=str(ROOT / ".venv/bin") + os.pathsep + os.environ["PATH"])
    start = time.perf_counter()
    proc = subprocess.run(["ansible-playbook"] + list(args), cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    changed = sum(int(n) for n in re.findall(r"changed=(\d+)", proc.stdout))
    if proc.returncode:
        sys.exit("failed: ansible-playbook %s\n%s" % (" ".join(args), proc.stdout[-3000:]))
    return elapsed, changed


def main():
    topology = sys.argv[1] if len(sys.argv) > 1 else "ring4"
    lab = ["playbooks/lab.yml", "-e", "lab_inventory_path=%s" % INVENTORY]
    playbook(*lab, "-e", "lab_state=absent")
    playbook(*lab, "-e", "lab_topology=%s" % topology)          # warms the rootfs cache
    playbook(*lab, "-e", "lab_state=absent")
    rows = []
    t, c = playbook(*lab, "-e", "lab_topology=%s" % topology)
    rows.append(("lab create (%s, warm cache)" % topology, t, c, "< 120 s"))
    t, c = playbook("-i", INVENTORY, "playbooks/fabric.yml")
    rows.append(("fabric converge", t, c, "< 60 s"))
    t, c = playbook("-i", INVENTORY, "playbooks/fabric.yml")
    rows.append(("fabric re-run (idempotent)", t, c, "< 20 s, 0 changed"))
    t, c = playbook(*lab, "-e", "lab_state=absent")
    rows.append(("lab teardown", t, c, "-"))
    print("%-34s %9s %8s   %s" % ("step", "seconds", "changed", "goal"))
    for name, seconds, changed, goal in rows:
        print("%-34s %9.1f %8d   %s" % (name, seconds, changed, goal))


if __name__ == "__main__":
    main()
