"""fabric_check's node-side helpers of the fabric_facts module: the other netplan files and the
address the node was reached at over SSH (from a recorded /proc tree)."""
from __future__ import annotations

import os

from ansible_collections.dgxspark.cluster.plugins.module_utils.fabric_check import (
    other_netplan_files, ssh_server_address)

OWN = "/etc/netplan/60-dgxspark-fabric.yaml"


def test_other_netplan_files_name_a_fabric_interface_and_are_not_ours():
    files = [(OWN, "enp1s0f0np0: {mtu: 9000}"),
             ("/etc/netplan/50-cloud-init.yaml", "enP2p1s0f1np1: {dhcp4: true}"),
             ("/etc/netplan/01-mgmt.yaml", "enP7s7: {dhcp4: true}")]
    assert other_netplan_files(files, ["enp1s0f0np0", "enP2p1s0f1np1"], OWN) == [
        "/etc/netplan/50-cloud-init.yaml"]
    assert other_netplan_files(files, ["enp1s0f1np1"], OWN) == []


def _process(proc, pid, ppid, comm, env):
    base = os.path.join(str(proc), str(pid))
    os.makedirs(base)
    with open(os.path.join(base, "stat"), "w") as handle:
        handle.write("%d (%s) S %d 1 1 0 -1\n" % (pid, comm, ppid))
    with open(os.path.join(base, "environ"), "wb") as handle:
        handle.write(b"\0".join(("%s=%s" % kv).encode() for kv in env.items()) + b"\0")


def test_the_ssh_address_comes_from_the_nearest_ancestor_that_has_it(tmp_path):
    # sshd -> sh (the session: SSH_CONNECTION) -> sudo -> sh -> python3 (the module, become)
    _process(tmp_path, 900, 1, "sshd", {})
    _process(tmp_path, 901, 900, "sh", {"SSH_CONNECTION": "10.99.0.1 51234 10.99.0.11 22",
                                        "USER": "nvidia"})
    _process(tmp_path, 902, 901, "sudo", {"SUDO_USER": "nvidia"})
    _process(tmp_path, 903, 902, "sh (become)", {"USER": "root"})
    _process(tmp_path, 904, 903, "python3", {"USER": "root"})
    assert ssh_server_address(str(tmp_path), 904) == "10.99.0.11"
    # its own environment first
    _process(tmp_path, 905, 904, "python3", {"SSH_CONNECTION": "10.0.0.1 1 192.0.2.7 22"})
    assert ssh_server_address(str(tmp_path), 905) == "192.0.2.7"


def test_no_ssh_up_the_chain_or_an_unreadable_process_gives_nothing(tmp_path):
    _process(tmp_path, 700, 1, "bash", {"HOME": "/root"})
    _process(tmp_path, 701, 700, "python3", {"SSH_CONNECTION": "garbled"})
    assert ssh_server_address(str(tmp_path), 701) == ""
    assert ssh_server_address(str(tmp_path), 4242) == ""
