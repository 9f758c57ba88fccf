# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Starting a process that outlives the module run (plain Python).

``AnsibleModule.run_command`` waits for its command to exit and collects its output, so it
cannot start a daemon. ``spawn`` does: ``lab_nodes`` boots each simulated Spark with it
(``systemd-nspawn --boot`` keeps running after the task), each in a cgroup of its own
(``own_cgroups``) where no systemd manages the host's cgroups.
"""
from __future__ import annotations

import os
import subprocess


def spawn(args, log_path, env=None, cgroups=()):
    """Start ``args`` in a session of its own, stdin from /dev/null, stdout and stderr appended
    to ``log_path``, and return its pid without waiting for it. With ``cgroups`` (cgroup
    directories, one per hierarchy), the process is moved into them before it runs ``args``."""
    def enter():
        for cgroup in cgroups:
            with open(os.path.join(cgroup, "cgroup.procs"), "w") as procs:
                procs.write("%d\n" % os.getpid())

    with open(log_path, "ab") as log, open(os.devnull) as devnull:
        proc = subprocess.Popen(args, stdin=devnull, stdout=log, stderr=log, env=env,
                                start_new_session=True,
                                preexec_fn=enter if cgroups else None)  # pylint: disable=subprocess-popen-preexec-fn
    return proc.pid


# The cgroup hierarchies nspawn reads and writes on a host with the hybrid layout (the
# name=systemd v1 hierarchy and the unified v2 one); a host may have either or both.
CGROUP_HIERARCHIES = ("/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd")
SYSTEMD_RUN_DIR = "/run/systemd/system"


def own_cgroups(name, hierarchies=CGROUP_HIERARCHIES, systemd_run_dir=SYSTEMD_RUN_DIR,
                group="dgxspark-lab", make=True):
    """Cgroups of its own for a process that ``systemd-nspawn --keep-unit`` will run:
    ``<hierarchy>/<group>/<name>`` in each hierarchy the host has, made unless ``make`` is
    false; an empty list where it is not needed.

    nspawn puts the container in ``<its own cgroup>/payload`` and itself in
    ``<its own cgroup>/supervisor``, in both hierarchies. On a host without systemd as PID 1
    every process sits in the root cgroups, so every node shared one ``/payload``: nodes
    booting together raced on it (one failed with "Failed to attach ... to compat systemd
    cgroup //payload: No such file or directory") and their systemds shared one subtree. Where
    systemd runs the host (``systemd_run_dir`` exists) it places nspawn itself: nothing to do."""
    if os.path.isdir(systemd_run_dir):
        return []
    paths = []
    for hierarchy in hierarchies:
        if os.path.isfile(os.path.join(hierarchy, "cgroup.procs")):
            path = os.path.join(hierarchy, group, name)
            if make:
                os.makedirs(path, exist_ok=True)
            paths.append(path)
    return paths


def remove_cgroup(path):
    """Remove a cgroup directory and the cgroups under it once no process is left in them
    (a cgroup file system removes a directory with rmdir only, its files go with it); one
    still in use stays. Returns whether ``path`` is gone."""
    for root, dummy, dummy2 in os.walk(path, topdown=False):
        try:
            os.rmdir(root)
        except OSError:
            pass
    return not os.path.exists(path)
