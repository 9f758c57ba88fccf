"""What a node is (plugins/module_utils/node.py): parsers, records, the memory drain."""
from __future__ import annotations

import json

from ansible_collections.dgxspark.cluster.plugins.module_utils import node


def test_meminfo_and_addresses_parse():
    assert node.meminfo("MemTotal:  100 kB\nMemAvailable: 90 kB\nbogus\nHugePages_Total: 0") == \
        {"MemTotal": 100, "MemAvailable": 90, "HugePages_Total": 0}
    ip = [{"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1"}]},
          {"ifname": "enp1s0f0np0", "addr_info": [{"family": "inet6", "local": "fe80::1"},
                                                  {"family": "inet", "local": "10.20.0.11"}]},
          {"addr_info": []}, "junk"]
    assert node.addresses(json.dumps(ip)) == {"lo": ["127.0.0.1"], "enp1s0f0np0": ["10.20.0.11"]}


def test_records_are_read_or_reported(tmp_path):
    (tmp_path / "dgxspark_image.fact").write_text('{"ref": "x", "id": "sha256:1"}')
    (tmp_path / "dgxspark_fabric.fact").write_text("{broken")
    (tmp_path / "dgxspark_cluster.fact").write_text("[1]")
    assert node.read_record("image", str(tmp_path)) == {"ref": "x", "id": "sha256:1"}
    assert node.read_record("fabric", str(tmp_path))["error"].startswith("not JSON")
    assert node.read_record("cluster", str(tmp_path)) == {"error": "not a JSON object"}
    assert node.read_record("other", str(tmp_path)) is None


def test_read_facts_runs_on_this_machine(tmp_path):
    facts = node.read_facts(str(tmp_path))
    assert facts["kernel"] and facts["memory_kib"]["MemTotal"] > 0
    assert facts["records"] == {"fabric": None, "image": None, "cluster": None,
                                "memory_guard": None}
    assert facts["memory_guard_last_kill"] is None
    # no GPU here: the reason is kept, not raised
    assert facts["gpu"] is None and facts["gpu_error"]


def test_drain_in_check_mode_changes_nothing_and_says_why():
    out = node.drain(drain_swap=True, drop_caches=True, check_mode=True)
    assert out["before_kib"] == out["after_kib"]
    assert all(isinstance(item, str) for item in out["done"] + out["notes"])


def test_read_memory_runs_on_this_machine(tmp_path):
    """The memory_ledger module's read on a machine without the cluster: memory, no engine."""
    out = node.read_memory("dgxspark-no-such-unit.service", ("dgxspark-no-such",), str(tmp_path))
    assert out["meminfo_kib"]["MemTotal"] > 0 and out["meminfo_kib"]["MemAvailable"] > 0
    assert out["figures"] == {"ranks": {}, "kv_tokens": None, "device": None}
    assert out["guard"] is None and out["last_kill"] is None and out["executor"] is None
    assert set(out["processes"]) == {"engine", "ray"}


def test_read_units_asks_systemctl_once_for_every_unit_and_names_a_failure(monkeypatch):
    calls = []

    def fake_run(argv):
        calls.append(argv)
        return ("Id=a.service\nLoadState=loaded\n", None) if "a.service" in argv else \
            (None, "Failed to connect to bus: Host is down")

    monkeypatch.setattr(node, "_run", fake_run)
    assert node.read_units([]) == "" and calls == []
    assert node.read_units(["a.service", "b.service"]).startswith("Id=a.service")
    assert calls == [["systemctl", "show", "--property=Id,LoadState,UnitFileState,ActiveState",
                      "a.service", "b.service"]]
    try:
        node.read_units(["b.service"])
    except RuntimeError as exc:
        assert str(exc) == "systemctl show b.service: Failed to connect to bus: Host is down"
    else:
        raise AssertionError("a failed systemctl show must raise")


def test_unit_commands_read_the_main_process_command_line(monkeypatch):
    monkeypatch.setattr(node, "_run", lambda argv: ("4242\n", None) if argv[-1] == "earlyoom.service"
                        else ("0\n", None))
    monkeypatch.setattr(node, "_read", lambda path: "/usr/bin/earlyoom\0-m\x005,3\0"
                        if path == "/proc/4242/cmdline" else None)
    assert node.unit_commands(["earlyoom.service", "stopped.service"]) == {
        "earlyoom.service": ["/usr/bin/earlyoom", "-m", "5,3"], "stopped.service": []}


def test_read_sysctl_keeps_the_keys_the_kernel_has():
    out = node.read_sysctl(["net.ipv4.conf.lo.arp_ignore", "net.no_such.key"])
    assert out.startswith("net.ipv4.conf.lo.arp_ignore = ") and "no_such" not in out
    assert node.read_sysctl([]) == ""
