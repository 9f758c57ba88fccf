#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: lab_nodes
short_description: Boot, reboot or remove the simulated Spark nodes (systemd-nspawn)
version_added: "0.1.0"
description:
  - Each node is a systemd-nspawn container with systemd as PID 1, booted in the node's network
    namespace (made by M(dgxspark.cluster.lab_network)) on an overlay of a cached Debian root
    file system, so nodes start in seconds and share the read-only base. Each node's
    C(/var/lib/docker) is a directory of the host (next to its overlay) bound into the node, so
    the node's Docker can use the overlay2 storage driver.
  - Writes each node's identity into its overlay (hostname, machine id, root's authorized key,
    the management address of C(enP7s7)), starts the nodes that are not running, and waits until
    systemd inside reports C(running) or C(degraded) and sshd is active.
  - A node whose nspawn exits while booting (nodes booting together on a host without systemd
    as PID 1 share nspawn's C(payload) cgroup and now and then race on it) is started once more
    before the module fails.
  - O(state=restarted) reboots nodes (their cables and namespaces stay, like a real reboot);
    O(state=stopped) powers them off and unmounts their overlays; O(state=absent) also deletes
    their overlay directories.
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
  nodes:
    description:
      - Nodes as dicts with C(name) (or C(node)), and to boot them C(netns) and C(address)
        (the management address in CIDR form), as M(dgxspark.cluster.lab_network) returns them
        in RV(dgxspark.cluster.lab_network#module:wiring.mgmt).
      - A node's nspawn machine is named after its C(netns) when given (the lab's prefix and
        the node's name, so two labs with other prefixes and lab directories can run side by
        side), else after its name.
    type: list
    elements: dict
    required: true
  rootfs:
    description: The cached base root file system (read-only lower layer of every node).
    type: path
    required: true
  lab_dir:
    description: Directory that holds the nodes' overlays, pid files and console logs.
    type: path
    required: true
  authorized_key:
    description: Public key put in root's C(authorized_keys) on every node.
    type: str
    default: ""
  hosts_entries:
    description: Extra C(/etc/hosts) lines (the other nodes' management names).
    type: list
    elements: str
    default: []
  state:
    description: What the nodes should be.
    type: str
    choices: [started, restarted, stopped, absent]
    default: started
  timeout:
    description: Seconds to wait for a node to boot or power off.
    type: int
    default: 120
"""

EXAMPLES = r"""
- name: Boot the lab's nodes
  dgxspark.cluster.lab_nodes:
    nodes:
      - {name: spark1, netns: dgx-spark1, address: 10.99.0.11/24, ip: 10.99.0.11}
    rootfs: .cache/lab/rootfs-bookworm-0123abcd
    lab_dir: .lab
    authorized_key: "{{ lookup('ansible.builtin.file', '.lab/ssh/id_ed25519.pub') }}"
"""

RETURN = r"""
nodes:
  description: Per node, its nspawn PID, init PID and systemd state after the run.
  returned: always
  type: dict
actions:
  description: What was done (empty when nothing changed).
  returned: always
  type: list
  elements: str
"""

import os
import shutil
import signal
import subprocess
import time
import uuid

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dgxspark.cluster.plugins.module_utils.daemon import spawn


def node_paths(lab_dir, name):
    base = os.path.join(lab_dir, "nodes", name)
    return {"base": base, "upper": os.path.join(base, "upper"),
            "work": os.path.join(base, "work"), "merged": os.path.join(base, "merged"),
            "docker": os.path.join(base, "docker"),
            "pid": os.path.join(base, "nspawn.pid"), "log": os.path.join(base, "console.log")}


def machine(node):
    """nspawn's machine name (also its mount-propagation directory's): the node's namespace,
    which carries the lab's prefix, so nodes of two labs never share one."""
    return node.get("netns") or node["name"]


def is_mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as handle:
        return any(line.split()[4] == path for line in handle)


def nspawn_pid(paths):
    try:
        with open(paths["pid"]) as handle:
            pid = int(handle.read().strip())
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            cmdline = handle.read().split(b"\0")
    except (OSError, ValueError):
        return None
    if os.path.realpath(paths["merged"]).encode() in cmdline:
        return pid
    return None


def init_pid(pid):
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout
        return int(out.split()[0])
    except (IndexError, ValueError):
        return None


def in_node(init, args):
    return subprocess.run(["nsenter", "-t", str(init), "-a"] + args, capture_output=True,
                          text=True, check=False)


def write_if_changed(path, content, mode=0o644):
    old = None
    if os.path.exists(path):
        with open(path) as handle:
            old = handle.read()
    if old == content:
        return False
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(content)
    os.chmod(path, mode)
    return True


def identity_files(node, params):
    name = node["name"]
    hosts = ["127.0.0.1 localhost", "127.0.1.1 %s" % name] + list(params["hosts_entries"])
    network = ("[Match]\nName=enP7s7\n\n[Network]\nAddress=%s\nLinkLocalAddressing=no\n"
               "IPv6AcceptRA=no\n" % node["address"])
    files = {
        "/etc/hostname": (name + "\n", 0o644),
        "/etc/hosts": ("\n".join(hosts) + "\n", 0o644),
        "/etc/systemd/network/10-lab-mgmt.network": (network, 0o644),
    }
    if params["authorized_key"]:
        files["/root/.ssh/authorized_keys"] = (params["authorized_key"].strip() + "\n", 0o600)
    return files


def prepare(module, node, paths, actions):
    for key in ("upper", "work", "merged", "docker"):
        if not os.path.isdir(paths[key]):
            actions.append("mkdir %s" % paths[key])
            if not module.check_mode:
                os.makedirs(paths[key])
    if not is_mounted(paths["merged"]):
        actions.append("mount overlay %s" % paths["merged"])
        if module.check_mode:
            return
        rc, dummy, err = module.run_command([
            "mount", "-t", "overlay", "overlay", "-o",
            "lowerdir=%s,upperdir=%s,workdir=%s" % (module.params["rootfs"], paths["upper"],
                                                    paths["work"]), paths["merged"]])
        if rc:
            module.fail_json(msg="cannot mount the overlay of %s: %s" % (node["name"], err))
    machine_id = os.path.join(paths["upper"], "etc", "machine-id")
    if not os.path.exists(machine_id) or not open(machine_id).read().strip():
        actions.append("machine-id for %s" % node["name"])
        if not module.check_mode:
            write_if_changed(machine_id, uuid.uuid4().hex + "\n", 0o444)
    for path, (content, mode) in identity_files(node, module.params).items():
        target = paths["merged"] + path
        if module.check_mode:
            continue
        if path.startswith("/root/.ssh"):
            os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
        if write_if_changed(target, content, mode):
            actions.append("wrote %s on %s" % (path, node["name"]))


def start(module, node, paths, actions):
    actions.append("boot %s" % node["name"])
    if module.check_mode:
        return
    env = dict(os.environ, SYSTEMD_NSPAWN_API_VFS_WRITABLE="network")
    args = ["systemd-nspawn", "-D", os.path.realpath(paths["merged"]), "--boot",
            "--network-namespace-path=/run/netns/%s" % node["netns"], "--register=no",
            "--keep-unit", "-M", machine(node), "--console=passive", "--capability=all",
            "--system-call-filter=@keyring @mount @system-service", "--bind=/sys/fs/cgroup",
            # Docker's storage on the host's file system, so the nodes' Docker can use overlay2
            # (an overlay cannot sit on the node's own overlay root; vfs copies every layer).
            "--bind=%s:/var/lib/docker" % os.path.realpath(paths["docker"])]
    pid = spawn(args, paths["log"], env)
    with open(paths["pid"], "w") as handle:
        handle.write("%d\n" % pid)


def wait_booted(module, node, paths, deadline):
    """The node's nspawn and init pids once systemd and sshd run in it; None when nspawn
    exited while booting."""
    state = "unknown"
    # Right after the spawn the child may not have exec'd systemd-nspawn yet (its cmdline is still
    # Python's): only a node that stays gone for a few seconds has exited.
    grace = time.time() + 5
    while time.time() < deadline:
        pid = nspawn_pid(paths)
        if pid is None and time.time() < grace:
            time.sleep(0.2)
            continue
        if pid is None:
            return None
        init = init_pid(pid)
        if init:
            state = in_node(init, ["systemctl", "is-system-running"]).stdout.strip()
            ssh = in_node(init, ["systemctl", "is-active", "ssh"]).stdout.strip()
            if state in ("running", "degraded") and ssh == "active":
                return {"nspawn_pid": pid, "init_pid": init, "state": state}
        time.sleep(0.5)
    module.fail_json(msg="node %s did not finish booting in %ds (systemd: %s); see %s" % (
        node["name"], module.params["timeout"], state, paths["log"]))


PROPAGATE_DIR = "/run/systemd/nspawn/propagate"


def stop_all(module, nodes, paths, actions):
    """Power every running node off at once (nspawn asks each node's systemd to power off),
    wait for all of them within the timeout, kill what is left, then unmount the overlays.
    One at a time, a 4-node lab spent minutes here: each node's shutdown waits for its engine's
    container and Docker to stop."""
    running = {}
    for node in nodes:
        pid = nspawn_pid(paths[node["name"]])
        if pid is not None:
            actions.append("power off %s" % node["name"])
            running[node["name"]] = pid
    if running and not module.check_mode:
        for pid in running.values():
            os.kill(pid, signal.SIGTERM)
        deadline = time.time() + module.params["timeout"]
        while time.time() < deadline and any(nspawn_pid(paths[name]) == pid
                                             for name, pid in running.items()):
            time.sleep(0.3)
        left = [pid for name, pid in running.items() if nspawn_pid(paths[name]) == pid]
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        if left:
            time.sleep(1)
    for node in nodes:
        where = paths[node["name"]]
        if os.path.isdir(where["merged"]) and is_mounted(where["merged"]):
            actions.append("umount %s" % where["merged"])
            if not module.check_mode:
                rc, dummy, err = module.run_command(["umount", where["merged"]])
                if rc:
                    module.fail_json(msg="cannot unmount %s: %s" % (where["merged"], err))
        if os.path.exists(where["pid"]) and not module.check_mode:
            os.remove(where["pid"])
        if not module.check_mode:
            clean_up(node)


def clean_up(node):
    """What a node's nspawn leaves behind once it is down: its mount-propagation directory
    (nspawn refuses to start again while it exists when /run is not a tmpfs, a host without
    systemd)."""
    shutil.rmtree(os.path.join(PROPAGATE_DIR, machine(node)), ignore_errors=True)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            nodes=dict(type="list", elements="dict", required=True),
            rootfs=dict(type="path", required=True),
            lab_dir=dict(type="path", required=True),
            authorized_key=dict(type="str", default="", no_log=False),
            hosts_entries=dict(type="list", elements="str", default=[]),
            state=dict(type="str", choices=["started", "restarted", "stopped", "absent"],
                       default="started"),
            timeout=dict(type="int", default=120),
        ),
        supports_check_mode=True,
    )
    params = module.params
    state = params["state"]
    needed = ("name", "netns", "address") if state in ("started", "restarted") else ("name",)
    for node in params["nodes"]:
        node.setdefault("name", node.get("node"))
        missing = [key for key in needed if not node.get(key)]
        if missing:
            module.fail_json(msg="lab_nodes: node %r lacks %s" % (node, ", ".join(missing)))
    if state in ("started", "restarted") and not os.path.isdir(os.path.join(params["rootfs"],
                                                                            "etc")):
        module.fail_json(msg="rootfs %s is not a root file system; build it first (lab role)"
                         % params["rootfs"])
    actions = []
    result = {}
    paths = dict((n["name"], node_paths(params["lab_dir"], n["name"])) for n in params["nodes"])
    if state in ("restarted", "stopped", "absent"):
        stop_all(module, params["nodes"], paths, actions)
    if state == "absent":
        for node in params["nodes"]:
            if os.path.isdir(paths[node["name"]]["base"]):
                actions.append("remove %s" % paths[node["name"]]["base"])
                if not module.check_mode:
                    shutil.rmtree(paths[node["name"]]["base"])
    if state in ("started", "restarted"):
        booting = []
        for node in params["nodes"]:
            prepare(module, node, paths[node["name"]], actions)
            if nspawn_pid(paths[node["name"]]) is None:
                start(module, node, paths[node["name"]], actions)
                booting.append(node["name"])
        if not module.check_mode:
            deadline = time.time() + params["timeout"]
            for node in params["nodes"]:
                where = paths[node["name"]]
                booted = wait_booted(module, node, where, deadline)
                if booted is None and node["name"] in booting:
                    # once more: a node that exited at once (nspawn failing to set it up) has
                    # left nothing running to conflict with a second start
                    clean_up(node)
                    actions.append("boot %s again (nspawn exited while booting)" % node["name"])
                    start(module, node, where, actions)
                    booted = wait_booted(module, node, where, deadline)
                if booted is None:
                    module.fail_json(msg="node %s exited while booting; see %s" % (
                        node["name"], where["log"]))
                result[node["name"]] = booted
                result[node["name"]]["booted_now"] = node["name"] in booting
    module.exit_json(changed=bool(actions), actions=actions, nodes=result)


if __name__ == "__main__":
    main()
