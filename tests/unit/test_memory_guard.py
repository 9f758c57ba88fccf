"""roles/memory_guard: earlyoom's hook, the reaction to a kill, and what the role renders."""
from __future__ import annotations

import importlib.machinery
import importlib.util
import io
import json
import os
import subprocess

import jinja2
import pytest
import yaml

from ansible_collections.dgxspark.cluster.plugins.module_utils import cluster
from conftest import ROOT

ROLE = ROOT / "roles/memory_guard"
_loader = importlib.machinery.SourceFileLoader("dgxspark_memory_guard",
                                               str(ROLE / "files/dgxspark-memory-guard"))
_spec = importlib.util.spec_from_loader("dgxspark_memory_guard", _loader)
guard = importlib.util.module_from_spec(_spec)
_loader.exec_module(guard)

PREFER = yaml.safe_load((ROLE / "defaults/main.yml").read_text())["memory_guard_prefer"]
RECORD = {"prefer": PREFER, "stop_engine": True, "threshold_text": "512 MiB"}
CLUSTER = {"units": ["dgxspark-vllm.service", "dgxspark-vllm-watch.service"]}


def entry(name, pid=4242):
    return guard.parse_entry("1796174637\t%d\t0\t%s\n" % (pid, name))


def test_a_spool_line_is_read_and_a_broken_one_still_gives_a_kill():
    assert entry("VLLM::Worker_TP") == {"epoch": 1796174637, "time": "2026-12-02T01:23:57Z",
                                        "pid": 4242, "uid": 0, "name": "VLLM::Worker_TP"}
    broken = guard.parse_entry("", fallback_time=0)
    assert broken["name"] == "?" and broken["pid"] is None and broken["epoch"] == 0


def test_a_kill_of_the_engine_stops_the_nodes_units_and_says_why():
    action = guard.plan(entry("VLLM::Worker_TP"), RECORD, CLUSTER)
    assert action["engine"] and action["stop"] == CLUSTER["units"]
    message = action["message"]
    assert message.startswith("dgxspark memory guard: earlyoom killed VLLM::Worker_TP (pid 4242) "
                              "at 2026-12-02T01:23:57Z, a process of the engine: MemAvailable "
                              "fell under 512 MiB.")
    assert "dgxspark-vllm.service and dgxspark-vllm-watch.service are stopped and not restarted" \
        in message
    assert "systemctl start dgxspark-vllm.service dgxspark-vllm-watch.service" in message


def test_a_kill_of_another_process_leaves_the_engine_running():
    action = guard.plan(entry("python3"), RECORD, CLUSTER)
    assert not action["engine"] and action["stop"] == []
    assert "not a process of the engine" in action["message"]
    assert "The engine keeps running" in action["message"]


def test_stop_engine_false_and_a_missing_cluster_record_stop_nothing_and_say_so():
    off = guard.plan(entry("vllm"), dict(RECORD, stop_engine=False), CLUSTER)
    assert off["engine"] and off["stop"] == [] and "memory_guard_stop_engine is false" in \
        off["message"]
    none = guard.plan(entry("ray::RayWorkerW"), RECORD, {"error": "x.fact: no such file"})
    assert none["stop"] == [] and "No cluster record" in none["message"] and "x.fact" in \
        none["message"]


def test_the_journal_entry_is_shown_with_the_unit():
    datagram = guard.journal_message("why\nline", 3, "dgxspark-vllm.service",
                                     {"DGXSPARK_KILLED_PID": 7}).decode()
    assert datagram.splitlines() == ["MESSAGE=why line", "PRIORITY=3",
                                     "SYSLOG_IDENTIFIER=dgxspark-memory-guard",
                                     "OBJECT_SYSTEMD_UNIT=dgxspark-vllm.service",
                                     "DGXSPARK_KILLED_PID=7"]


def run_hook(spool, name, pid):
    env = dict(os.environ, DGXSPARK_MEMORY_GUARD_SPOOL=str(spool), EARLYOOM_PID=str(pid),
               EARLYOOM_UID="0", EARLYOOM_NAME=name)
    return subprocess.run([str(ROLE / "files/dgxspark-memory-guard-hook")], env=env,
                          capture_output=True, text=True, check=True)


def test_the_hook_and_the_reaction_end_to_end(tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    record = tmp_path / "guard.fact"
    record.write_text(json.dumps(RECORD))
    cluster_record = tmp_path / "cluster.fact"
    cluster_record.write_text(json.dumps(CLUSTER))
    events = tmp_path / "state/events.jsonl"
    hook = run_hook(spool, "VLLM::Worker_TP", 4242)
    assert "earlyoom killed VLLM::Worker_TP (pid 4242)" in hook.stdout
    run_hook(spool, "bash", 4343)
    assert len(os.listdir(spool)) == 2
    ran, sent, out = [], [], io.StringIO()
    written = guard.react(str(spool), str(record), str(cluster_record), str(events),
                          run=lambda argv, check: ran.append(argv), send=sent.append, out=out)
    assert os.listdir(spool) == []
    assert ran == [["systemctl", "stop", "--no-block", "dgxspark-vllm.service",
                    "dgxspark-vllm-watch.service"]]
    units = [d.decode().split("OBJECT_SYSTEMD_UNIT=")[1].split("\n")[0] for d in sent
             if b"OBJECT_SYSTEMD_UNIT" in d]
    assert units == ["dgxspark-vllm.service", "dgxspark-vllm-watch.service"]
    assert len(sent) == 3  # one per stopped unit, one for the kill of bash
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert [(e["name"], e["engine"], e["stopped"]) for e in lines] == [
        ("VLLM::Worker_TP", True, CLUSTER["units"]), ("bash", False, [])]
    assert written == lines and out.getvalue().count("dgxspark memory guard:") == 2


def test_the_node_reads_the_last_kill(tmp_path):
    from ansible_collections.dgxspark.cluster.plugins.module_utils import node
    events = tmp_path / "events.jsonl"
    events.write_text('{"name": "a"}\n{"name": "VLLM::Worker_TP", "pid": 1}\n')
    assert node.last_kill({"events_file": str(events)}) == {"name": "VLLM::Worker_TP", "pid": 1}
    events.write_text("not json\n")
    assert "not JSON" in node.last_kill({"events_file": str(events)})["error"]
    assert node.last_kill({"events_file": str(tmp_path / "none")}) is None
    assert node.last_kill(None) is None


def render(template, **variables):
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ROLE / "templates")),
                             keep_trailing_newline=True)
    # the two filters the templates use, as Ansible gives them
    env.filters["dgxspark.cluster.systemd_exec"] = cluster.systemd_exec
    env.filters["dirname"] = os.path.dirname
    return env.get_template(template).render(**variables)


def test_the_drop_in_runs_earlyoom_with_the_guards_command_line():
    from ansible_collections.dgxspark.cluster.plugins.module_utils import memory
    argv = memory.earlyoom_argv({"mem_term_kib": 524288, "mem_kill_kib": 102400,
                                 "hook": "/usr/local/lib/dgxspark/dgxspark-memory-guard-hook"})
    text = render("earlyoom.conf.j2", memory_guard_argv=argv,
                  memory_guard_spool_dir="/run/dgxspark-memory-guard")
    lines = text.splitlines()
    assert "ExecStart=" in lines  # the package's ExecStart is cleared first
    (exec_start,) = [line for line in lines if line.startswith("ExecStart=/")]
    # systemd's own splitting of the line gives earlyoom the argv back ($ doubled, quotes)
    assert exec_start.startswith("ExecStart=/usr/bin/earlyoom -M 524288,102400 -s 100,100 -r 60 "
                                 '--prefer "^(VLLM::.*|vllm|ray::.*|pt_main_thread)$$" ')
    assert exec_start.endswith("-N /usr/local/lib/dgxspark/dgxspark-memory-guard-hook")
    assert "ReadWritePaths=-/run/dgxspark-memory-guard" in lines
    assert "Environment=DGXSPARK_MEMORY_GUARD_SPOOL=/run/dgxspark-memory-guard" in lines


def test_the_reaction_units_watch_the_spool_and_run_the_script():
    variables = dict(memory_guard_spool_dir="/run/dgxspark-memory-guard",
                     memory_guard_bin_dir="/usr/local/lib/dgxspark",
                     memory_guard_facts_file="/etc/ansible/facts.d/dgxspark_memory_guard.fact",
                     memory_guard_events_file="/var/lib/dgxspark/memory-guard/events.jsonl")
    path = render("dgxspark-memory-guard.path.j2", **variables)
    assert "DirectoryNotEmpty=/run/dgxspark-memory-guard" in path.splitlines()
    service = render("dgxspark-memory-guard.service.j2", **variables)
    assert ("ExecStart=/usr/local/lib/dgxspark/dgxspark-memory-guard react --spool "
            "/run/dgxspark-memory-guard --record /etc/ansible/facts.d/dgxspark_memory_guard.fact "
            "--cluster-record /etc/ansible/facts.d/dgxspark_cluster.fact --events "
            "/var/lib/dgxspark/memory-guard/events.jsonl") in service.splitlines()
    assert "Type=oneshot" in service.splitlines()


@pytest.mark.skipif(subprocess.run(["which", "systemd-analyze"], capture_output=True, check=False).returncode,
                    reason="needs systemd-analyze")
def test_the_rendered_drop_in_is_a_valid_unit_section(tmp_path):
    from ansible_collections.dgxspark.cluster.plugins.module_utils import memory
    argv = memory.earlyoom_argv({"mem_term_kib": 524288, "mem_kill_kib": 102400})
    argv[0] = "/bin/true"
    unit = tmp_path / "guard-test.service"
    unit.write_text("[Unit]\nDescription=t\n" + render(
        "earlyoom.conf.j2", memory_guard_argv=argv, memory_guard_spool_dir=str(tmp_path)
    ).replace("ExecStart=\n", ""))
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "guard-test.service" not in proc.stderr, proc.stderr
