"""Starting a process that outlives the module run (plugins/module_utils/daemon.py)."""
from __future__ import annotations

import os
import time

from ansible_collections.dgxspark.cluster.plugins.module_utils import daemon


def test_spawn_returns_at_once_appends_to_the_log_and_starts_a_new_session(tmp_path):
    log = tmp_path / "node.log"
    log.write_bytes(b"before\n")
    done = tmp_path / "done"
    script = 'read -r line || true; echo "stdin:[$line] $DGXSPARK_TEST"; echo err >&2; sleep 1; touch "$1"'
    start = time.time()
    pid = daemon.spawn(["sh", "-c", script, "sh", str(done)], str(log),
                       env=dict(os.environ, DGXSPARK_TEST="env"))
    assert not done.exists()  # it did not wait for the process
    assert os.getsid(pid) == pid  # a session of its own
    while not done.exists() and time.time() - start < 20:
        time.sleep(0.05)
    os.waitpid(pid, 0)
    assert log.read_text().splitlines() == ["before", "stdin:[] env", "err"]
