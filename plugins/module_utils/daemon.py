# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Starting a process that outlives the module run (plain Python).

``AnsibleModule.run_command`` waits for its command to exit and collects its output, so it
cannot start a daemon. ``spawn`` does: ``lab_nodes`` boots each simulated Spark with it
(``systemd-nspawn --boot`` keeps running after the task).
"""
from __future__ import annotations

import os
import subprocess


def spawn(args, log_path, env=None):
    """Start ``args`` in a session of its own, stdin from /dev/null, stdout and stderr appended
    to ``log_path``, and return its pid without waiting for it."""
    with open(log_path, "ab") as log, open(os.devnull) as devnull:
        proc = subprocess.Popen(args, stdin=devnull, stdout=log, stderr=log, env=env,
                                start_new_session=True)
    return proc.pid
