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


def test_spawn_moves_the_process_into_its_cgroup_before_it_runs(tmp_path):
    # a stand-in for a cgroup directory: the kernel's cgroup.procs takes a pid per write
    cgroup = tmp_path / "dgx-spark2"
    cgroup.mkdir()
    (cgroup / "cgroup.procs").write_text("")
    log = tmp_path / "node.log"
    other = tmp_path / "unified-dgx-spark2"
    other.mkdir()
    (other / "cgroup.procs").write_text("")
    pid = daemon.spawn(["sh", "-c", "echo $$"], str(log), cgroups=[str(cgroup), str(other)])
    start = time.time()
    while not log.exists() or not log.read_text().endswith("\n"):
        assert time.time() - start < 20, "the spawned command printed nothing"
        time.sleep(0.05)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:  # reaped already by subprocess's own clean-up
        pass
    assert (cgroup / "cgroup.procs").read_text() == "%d\n" % pid
    assert (other / "cgroup.procs").read_text() == "%d\n" % pid
    assert log.read_text() == "%d\n" % pid  # the same process went on to run the command


def test_own_cgroups_in_each_hierarchy_only_where_no_systemd_places_nspawn(tmp_path):
    unified, legacy = tmp_path / "unified", tmp_path / "systemd"
    for hierarchy in (unified, legacy):
        hierarchy.mkdir()
        (hierarchy / "cgroup.procs").write_text("")
    no_systemd = str(tmp_path / "no-run-systemd")
    both = (str(unified), str(legacy))
    paths = daemon.own_cgroups("dgx-spark1", both, no_systemd)
    assert paths == [str(unified / "dgxspark-lab" / "dgx-spark1"),
                     str(legacy / "dgxspark-lab" / "dgx-spark1")]
    assert all(os.path.isdir(path) for path in paths)
    assert daemon.own_cgroups("dgx-spark2", both, no_systemd, make=False) == [
        str(unified / "dgxspark-lab" / "dgx-spark2"), str(legacy / "dgxspark-lab" / "dgx-spark2")]
    assert not (legacy / "dgxspark-lab" / "dgx-spark2").exists()
    # a host with the unified hierarchy only
    assert daemon.own_cgroups("dgx-spark1", (str(unified), str(tmp_path / "absent")),
                              no_systemd) == [str(unified / "dgxspark-lab" / "dgx-spark1")]
    # systemd runs the host: it places nspawn itself
    run_systemd = tmp_path / "run-systemd"
    run_systemd.mkdir()
    assert daemon.own_cgroups("dgx-spark1", both, str(run_systemd)) == []


def test_remove_cgroup_removes_the_empty_tree_and_keeps_one_in_use(tmp_path):
    node = tmp_path / "dgx-spark1"
    (node / "payload" / "system.slice").mkdir(parents=True)
    (node / "supervisor").mkdir()
    assert daemon.remove_cgroup(str(node)) is True
    assert not node.exists()
    busy = tmp_path / "dgx-spark2"
    (busy / "payload").mkdir(parents=True)
    (busy / "payload" / "cgroup.procs").write_text("42\n")  # rmdir fails as on a cgroup in use
    assert daemon.remove_cgroup(str(busy)) is False
    assert (busy / "payload" / "cgroup.procs").exists()
