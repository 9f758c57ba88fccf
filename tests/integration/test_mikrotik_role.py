"""playbooks/switch.yml (the mikrotik_switch role) as Ansible runs it, with ansible_runner.

Render-only and check mode against a temporary inventory (group `mikrotik`, connection local);
bad input fails before anything is written; and the apply path end to end against a fake
RouterOS API (the librouteros wire protocol on 127.0.0.1): check mode changes nothing, a run
configures only the fabric, a second run changes nothing, and a switch whose hardware offload is
held by another bridge is refused before any change.
"""
from __future__ import annotations

import copy
import itertools
import socketserver
import sys
import threading

import ansible_runner
import pytest
import yaml
from librouteros.protocol import decode_length, determine_length, encode_sentence

from ansible_collections.dgxspark.cluster.plugins.module_utils.mikrotik import render
from conftest import ROOT

CRS812 = "CRS812-8DS-2DQ-2DDQ"
PORTS = [{"interface": "qsfp56-dd-1-1", "node": "spark1"},
         {"interface": "qsfp56-dd-1-5", "node": "spark2"}]
RENDER_TASK = "Validate the switch spec and render its configuration"
APPLY_TASK = "Configure the fabric bridge, the Spark ports and the bridge ports"
_runs = itertools.count()


def run_switch(tmp_path, hostvars, check=False, **extravars):
    """Run playbooks/switch.yml for one switch `sw1`; returns (runner, path of its .rsc)."""
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    host.update(hostvars)
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"mikrotik": {
        "hosts": {"sw1": host}}}}}))
    rsc = tmp_path / "results" / "sw1.rsc"
    extravars.setdefault("mikrotik_switch_rsc_path", str(rsc))
    private = tmp_path / ("runner%d" % next(_runs))
    private.mkdir()
    runner = ansible_runner.run(
        private_data_dir=str(private), project_dir=str(ROOT),
        playbook=str(ROOT / "playbooks/switch.yml"), inventory=str(inventory),
        extravars=extravars, envvars={"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")},
        cmdline="--check --diff" if check else None, quiet=True)
    return runner, rsc


def results(runner, task, event="runner_on_ok"):
    return [e["event_data"].get("res", {}) for e in runner.events
            if e.get("event") == event and task in e["event_data"].get("task", "")]


def failure(runner):
    failed = results(runner, "", "runner_on_failed")
    assert runner.status == "failed" and len(failed) == 1, runner.stdout.read()
    return failed[0]["msg"]


SPEC = {"mikrotik_switch_model": CRS812, "mikrotik_switch_ports": PORTS}


def test_render_only_writes_the_script_and_leaves_the_switch_alone(tmp_path):
    runner, rsc = run_switch(tmp_path, SPEC)
    assert runner.status == "successful", runner.stdout.read()
    expected = render(CRS812, PORTS, switch="sw1")
    rendered = results(runner, RENDER_TASK)
    assert len(rendered) == 1 and rendered[0]["changed"] is False
    assert rendered[0]["api_modify"] == expected["api_modify"]
    assert rendered[0]["ports"] == expected["spec"]["ports"]
    assert rsc.read_text() == expected["rsc"]
    assert 'set [find where default-name="qsfp56-dd-1-8"] disabled=no' in rsc.read_text()
    assert results(runner, APPLY_TASK, "runner_on_skipped")
    assert not results(runner, "Read the switch's bridge ports")


def test_check_mode_renders_the_same_and_writes_nothing(tmp_path):
    spec = {"mikrotik_switch_model": "CRS804-4DDQ", "mikrotik_switch_bridge": "fabric",
            "mikrotik_switch_ports": PORTS + [{"interface": "qsfp56-dd-4-5", "node": "spark3"}]}
    runner, rsc = run_switch(tmp_path, spec, check=True)
    assert runner.status == "successful", runner.stdout.read()
    rendered = results(runner, RENDER_TASK)[0]
    assert rendered["api_modify"] == render("CRS804-4DDQ", spec["mikrotik_switch_ports"],
                                            bridge="fabric")["api_modify"]
    assert "speed=200G-baseCR4" in rendered["rsc"]
    assert not rsc.exists() and not rsc.parent.exists()
    written = results(runner, "Write the RouterOS script")[0]
    assert written["changed"] is True and "qsfp56-dd-4-5" in written["diff"][0]["after"]


@pytest.mark.parametrize("hostvars,extravars,variable", [
    ({"mikrotik_switch_ports": [{"interface": "qsfp56-dd-1-2", "node": "spark1"}]}, {},
     "mikrotik_switch_ports[0].interface='qsfp56-dd-1-2'"),
    ({"mikrotik_switch_ports": PORTS + [{"interface": "qsfp56-dd-2-1", "node": "spark1"}]}, {},
     "mikrotik_switch_ports="),
    ({"mikrotik_switch_model": "CRS504-4XQ"}, {}, "mikrotik_switch_model"),
    ({"mikrotik_switch_ports": [{"interface": "ether1", "node": "spark1"}]}, {},
     "mikrotik_switch_ports[0].interface='ether1': is a management port"),
    ({"mikrotik_switch_l2mtu": 1592}, {}, "mikrotik_switch_l2mtu=1592"),
    ({"mikrotik_switch_ports": []}, {}, "mikrotik_switch_ports=[]"),
    ({}, {"mikrotik_switch_apply": True}, "mikrotik_switch_api_password"),
])
def test_bad_input_fails_before_anything_is_written(tmp_path, hostvars, extravars, variable):
    runner, rsc = run_switch(tmp_path, dict(SPEC, **hostvars), **extravars)
    assert variable in failure(runner)
    assert not rsc.exists()


# --- a fake RouterOS API: /login, print, add, set, remove on in-memory tables -----------------

def factory_tables(ether1_offloaded=False):
    ethernet = [{"name": n, "default-name": n, "l2mtu": "1592", "mtu": "1500",
                 "tx-flow-control": "off", "rx-flow-control": "off", "disabled": "false",
                 "auto-negotiation": "true"}
                for n in ["ether1", "ether2"] + ["qsfp56-dd-%d-%d" % (c, lane)
                                                 for c in (1, 2) for lane in range(1, 9)]]
    ethernet[4]["disabled"] = "true"                              # qsfp56-dd-1-3
    tables = {
        "interface/bridge": [{"name": "bridge", "mtu": "auto", "comment": "defconf"},
                             {"name": "bridge-fabric", "mtu": "auto"}],
        "interface/ethernet": ethernet,
        "interface/bridge/port": [
            {"bridge": "bridge", "interface": "ether1", "hw": "true",
             "hw-offload": "true" if ether1_offloaded else "false"},
            {"bridge": "bridge-fabric", "interface": "qsfp56-dd-1-2", "hw": "true"},  # stale
            {"bridge": "bridge-fabric", "interface": "qsfp56-dd-2-1", "hw": "true"},  # ISL
        ],
    }
    for rows in tables.values():
        for n, row in enumerate(rows):
            row[".id"] = "*%X" % (n + 1)
    return tables


class FakeRouterOS(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, tables):
        super().__init__(("127.0.0.1", 0), _Session)
        self.tables, self.ids, self.lock = tables, itertools.count(0x100), threading.Lock()

    def answer(self, command, args):
        if command == "/login":
            return [["!done"]]
        path, dummy, verb = command.strip("/").rpartition("/")
        if path == "system/resource" and verb == "print":
            return [["!re", "=version=7.19.6 (stable)"], ["!done"]]
        rows = self.tables.get(path)
        if rows is None:
            return [["!trap", "=message=no such command"], ["!done"]]
        if verb == "print":
            return [["!re"] + ["=%s=%s" % kv for kv in row.items()] for row in rows] + [["!done"]]
        if verb == "add":
            if path == "interface/bridge/port" and any(
                    r["interface"] == args.get("interface") for r in rows):
                return [["!trap", "=message=device already added as bridge port"], ["!done"]]
            rows.append(dict(args, **{".id": "*%X" % next(self.ids)}))
            return [["!done", "=ret=" + rows[-1][".id"]]]
        if verb == "set":
            next(r for r in rows if r[".id"] == args[".id"]).update(args)
            return [["!done"]]
        if verb == "remove":
            ids = args[".id"].split(",")
            rows[:] = [r for r in rows if r[".id"] not in ids]
            return [["!done"]]
        return [["!trap", "=message=unknown command"], ["!done"]]


class _Session(socketserver.BaseRequestHandler):
    def _read(self, size):
        data = b""
        while len(data) < size:
            chunk = self.request.recv(size - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def handle(self):
        while True:
            try:
                words = []
                while True:
                    head = self._read(1)
                    head += self._read(determine_length(head))
                    length = decode_length(head)
                    if not length:
                        break
                    words.append(self._read(length).decode())
            except EOFError:
                return
            args = dict(w[1:].split("=", 1) for w in words[1:] if w.startswith("="))
            with self.server.lock:
                reply = self.server.answer(words[0], args)
            self.request.sendall(b"".join(encode_sentence(*s, encoding="ascii") for s in reply))


@pytest.fixture
def fake_switch():
    servers = []

    def start(**kwargs):
        server = FakeRouterOS(factory_tables(**kwargs))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def apply(tmp_path, server, check=False):
    return run_switch(tmp_path, SPEC, check=check, mikrotik_switch_apply=True,
                      mikrotik_switch_api_hostname="127.0.0.1",
                      mikrotik_switch_api_port=server.server_address[1],
                      mikrotik_switch_api_tls=False, mikrotik_switch_api_password="secret")[0]


def by(rows, key):
    return dict((r[key], r) for r in rows)


def test_apply_check_then_apply_then_nothing_left_to_change(tmp_path, fake_switch):
    server = fake_switch()
    before = copy.deepcopy(server.tables)

    runner = apply(tmp_path, server, check=True)
    assert runner.status == "successful", runner.stdout.read()
    changed = [r["changed"] for r in results(runner, APPLY_TASK, "runner_item_on_ok")]
    assert changed == [True, True, True]
    assert server.tables == before
    assert "secret" not in runner.stdout.read()

    runner = apply(tmp_path, server)
    assert runner.status == "successful", runner.stdout.read()
    bridges = by(server.tables["interface/bridge"], "name")
    assert bridges["bridge-fabric"]["mtu"] == "9216"
    assert bridges["bridge"] == before["interface/bridge"][0]
    ethernet = by(server.tables["interface/ethernet"], "default-name")
    for lane in range(1, 9):
        assert ethernet["qsfp56-dd-1-%d" % lane]["disabled"] in ("false", "no")
    assert ethernet["qsfp56-dd-1-3"]["disabled"] == "no"       # was disabled
    assert ethernet["qsfp56-dd-1-5"]["l2mtu"] == "9216"
    assert ethernet["qsfp56-dd-1-5"]["tx-flow-control"] == "on"
    assert ethernet["qsfp56-dd-1-5"]["comment"] == "spark2"
    assert "speed" not in ethernet["qsfp56-dd-1-1"]
    untouched = ["ether1", "ether2"] + ["qsfp56-dd-2-%d" % n for n in range(1, 9)]
    old = by(before["interface/ethernet"], "default-name")
    assert [ethernet[n] for n in untouched] == [old[n] for n in untouched]
    ports = by(server.tables["interface/bridge/port"], "interface")
    assert sorted(ports) == ["ether1", "qsfp56-dd-1-1", "qsfp56-dd-1-5", "qsfp56-dd-2-1"]
    assert ports["qsfp56-dd-1-1"]["bridge"] == "bridge-fabric"
    assert ports["qsfp56-dd-1-1"]["hw"] == "yes"
    assert ports["ether1"] == before["interface/bridge/port"][0]

    runner = apply(tmp_path, server)
    assert runner.status == "successful", runner.stdout.read()
    changed = [r["changed"] for r in results(runner, APPLY_TASK, "runner_item_on_ok")]
    assert changed == [False, False, False]


def test_apply_refuses_a_switch_whose_offload_is_held_by_another_bridge(tmp_path, fake_switch):
    server = fake_switch(ether1_offloaded=True)
    before = copy.deepcopy(server.tables)
    runner = apply(tmp_path, server)
    message = failure(runner)
    assert message.startswith("mikrotik_switch_bridge='bridge-fabric': bridge 'bridge' holds")
    assert "set hw=no" in message
    assert server.tables == before
    assert not results(runner, APPLY_TASK) and not results(runner, APPLY_TASK, "runner_on_failed")
