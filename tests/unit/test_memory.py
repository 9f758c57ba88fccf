"""module_utils/memory.py: earlyoom's command line, vLLM's memory lines, the ledger."""
from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from ansible_collections.dgxspark.cluster.plugins.module_utils import memory
from ansible_collections.dgxspark.cluster.plugins.module_utils.memory import MemoryGuardError
from conftest import ROOT

FIXTURES = ROOT / "tests/fixtures/memory"
DEFAULTS = yaml.safe_load((ROOT / "roles/memory_guard/defaults/main.yml").read_text())
EUGR = {"mem_term_kib": 524288, "mem_kill_kib": 102400, "swap_term_percent": 100,
        "swap_kill_percent": 100, "report_interval": 60}


def settings_from_defaults():
    return dict((key[len("memory_guard_"):], value) for key, value in DEFAULTS.items()
                if key[len("memory_guard_"):] in ("mem_term_kib", "mem_kill_kib",
                                                  "mem_term_percent", "mem_kill_percent",
                                                  "swap_term_percent", "swap_kill_percent",
                                                  "report_interval", "prefer", "avoid"))


# --- earlyoom's command line ---------------------------------------------------------------

def test_the_role_defaults_are_eugrs_thresholds_and_render_his_command_line():
    argv = memory.earlyoom_argv(dict(settings_from_defaults(), hook="/usr/local/lib/h"))
    assert argv[:9] == ["/usr/bin/earlyoom", "-M", "524288,102400", "-s", "100,100",
                        "-r", "60", "--prefer", memory.DEFAULT_PREFER]
    assert argv[9:] == ["--avoid", memory.DEFAULT_AVOID, "-N", "/usr/local/lib/h"]
    assert "-m" not in argv


def test_the_role_defaults_and_the_python_defaults_are_the_same_expressions():
    assert DEFAULTS["memory_guard_prefer"] == memory.DEFAULT_PREFER
    assert DEFAULTS["memory_guard_avoid"] == memory.DEFAULT_AVOID


def test_the_nixos_spark_setup_in_percent():
    argv = memory.earlyoom_argv({"mem_term_kib": 0, "mem_kill_kib": 0, "mem_term_percent": 2,
                                 "mem_kill_percent": 1})
    assert argv[1:3] == ["-m", "2,1"] and "-M" not in argv
    both = memory.earlyoom_argv(dict(EUGR, mem_term_percent=2.5, mem_kill_percent=1))
    assert both[1:5] == ["-M", "524288,102400", "-m", "2.5,1"]


def test_swap_zero_leaves_earlyooms_default_and_no_hook_no_dash_n():
    argv = memory.earlyoom_argv(dict(EUGR, swap_term_percent=0, swap_kill_percent=0))
    assert "-s" not in argv and "-N" not in argv


@pytest.mark.parametrize("change, variable, words", [
    ({"mem_kill_kib": 600000}, "memory_guard_mem_kill_kib", "above memory_guard_mem_term_kib"),
    ({"mem_term_kib": 0, "mem_kill_kib": 0}, "memory_guard_mem_term_kib", "no memory threshold"),
    ({"mem_kill_kib": 0}, "memory_guard_mem_kib", "both levels"),
    ({"mem_term_percent": 120, "mem_kill_percent": 1}, "memory_guard_mem_term_percent",
     "from 0 to 99"),
    ({"mem_term_kib": "512M"}, "memory_guard_mem_term_kib", "must be a number"),
    ({"mem_term_kib": 5.5}, "memory_guard_mem_term_kib", "whole number"),
    ({"swap_kill_percent": 101}, "memory_guard_swap_kill_percent", "from 0 to 100"),
    ({"report_interval": -1}, "memory_guard_report_interval", "from 0 to 86400"),
    ({"prefer": "^(VLLM::"}, "memory_guard_prefer", "not a regular expression"),
    ({"avoid": ""}, "memory_guard_avoid", "must be a regular expression"),
    ({"hook": "relative/hook"}, "memory_guard_bin_dir", "absolute path"),
])
def test_a_bad_threshold_names_its_variable(change, variable, words):
    with pytest.raises(MemoryGuardError) as error:
        memory.earlyoom_argv(dict(EUGR, **change))
    assert error.value.variable == variable
    assert words in str(error.value) and "Fix:" in str(error.value)


ENGINE = ["VLLM::EngineCor", "VLLM::Worker_TP", "vllm", "ray::RayWorkerW", "pt_main_thread"]
KEPT = ["sshd", "sshd-session", "systemd", "systemd-journal", "systemd-network", "(sd-pam)",
        "dockerd", "containerd", "containerd-shim", "NetworkManager", "wpa_supplicant",
        "earlyoom"]


@pytest.mark.parametrize("name", ENGINE)
def test_the_engines_processes_are_preferred_not_avoided(name):
    import re
    assert re.search(memory.DEFAULT_PREFER, name)
    assert not re.search(memory.DEFAULT_AVOID, name)


@pytest.mark.parametrize("name", KEPT + ["python3", "bash"])
def test_systemd_ssh_network_docker_are_never_preferred(name):
    import re
    assert not re.search(memory.DEFAULT_PREFER, name)
    assert bool(re.search(memory.DEFAULT_AVOID, name)) == (name in KEPT)


@pytest.mark.skipif(not shutil.which("grep"), reason="needs grep")
def test_the_expressions_mean_the_same_as_posix_extended_regexps():
    """earlyoom compiles them with regcomp(REG_EXTENDED): grep -E does the same."""
    for expression, names in ((memory.DEFAULT_PREFER, ENGINE), (memory.DEFAULT_AVOID, KEPT)):
        proc = subprocess.run(["grep", "-E", expression], input="\n".join(names + ["bash"]) + "\n",
                              capture_output=True, text=True, check=False)
        assert proc.stdout.split() == names


# --- vLLM's memory lines ---------------------------------------------------------------------

def test_the_cpu_builds_recorded_lines():
    figures = memory.engine_figures((FIXTURES / "cpu-tp3-vllm-0.32.0.log").read_text())
    assert figures["kv_tokens"] == 32768 and figures["device"] == "CPU"
    ranks = figures["ranks"]
    assert sorted(r["name"] for r in ranks.values()) == ["Worker_TP0", "Worker_TP1", "Worker_TP2"]
    for rank in ranks.values():
        assert rank["kv_cache_gib"] == 0.06 and rank["kv_source"] == "cpu explicit"
        assert "weights_gib" not in rank  # the CPU build logs no weight size


def test_the_gpu_lines_of_a_rank_with_an_explicit_kv_budget():
    figures = memory.engine_figures((FIXTURES / "gpu-mp-head-vllm-0.33.0.log").read_text())
    (rank,) = list(figures["ranks"].values())
    assert rank == {"name": "Worker_TP0", "ip": None, "weights_gib": 106.93,
                    "kv_cache_gib": 1.69, "kv_source": "kv_cache_memory_bytes"}
    assert figures["kv_tokens"] == 132096 and figures["device"] == "GPU"


def test_the_cpu_builds_auto_line_gives_what_is_not_kv():
    line = ("(Worker_TP0 pid=7) INFO 12-02 01:12:18 [cpu_worker.py:268] Auto set (10.5/23.54) "
            "GiB for KV cache on node 0, with 12.0 GiB requested memory for the worker. 1.5 GiB "
            "memory was consumed by non-kv usages.")
    (rank,) = list(memory.engine_figures(line)["ranks"].values())
    assert rank["kv_cache_gib"] == 10.5 and rank["non_kv_gib"] == 1.5
    assert rank["kv_source"] == "cpu auto"


def test_older_vllm_wording_and_a_restart_keep_the_last_value():
    text = ("(Worker_TP0 pid=5) INFO x Model loading took 50.1234 GiB and 10.0 seconds\n"
            "(Worker_TP0 pid=5) INFO x Model loading took 51.0 GiB memory and 9.0 seconds\n")
    (rank,) = list(memory.engine_figures(text)["ranks"].values())
    assert rank["weights_gib"] == 51.0
    assert memory.engine_figures("nothing here\n") == {"ranks": {}, "kv_tokens": None,
                                                       "device": None}


# --- processes -----------------------------------------------------------------------------

@pytest.mark.parametrize("process, kind", [
    ({"comm": "VLLM::Worker_TP", "container": "dgxspark-vllm"}, "engine"),
    ({"comm": "vllm", "container": "dgxspark-vllm"}, "engine"),
    ({"comm": "python3", "container": "dgxspark-vllm"}, "engine"),
    ({"comm": "ray::RayWorkerP", "container": "dgxspark-ray"}, "engine"),
    ({"comm": "raylet", "container": "dgxspark-ray"}, "ray"),
    ({"comm": "gcs_server", "container": "dgxspark-ray"}, "ray"),
    ({"comm": "ray::IDLE", "container": "dgxspark-ray"}, "ray"),
    ({"comm": "python3", "container": "dgxspark-ray",
      "cmdline": "python3 -u /usr/lib/python3/site-packages/ray/_private/log_monitor.py"}, "ray"),
    ({"comm": "sshd", "container": None}, None),
    ({"comm": "python3", "container": None}, None),
])
def test_classify(process, kind):
    assert memory.classify(process) == kind


def test_held_adds_the_proportional_sizes():
    held = memory.held_gib([
        {"comm": "VLLM::Worker_TP", "container": "dgxspark-vllm", "pss_kib": 1048576},
        {"comm": "vllm", "container": "dgxspark-vllm", "pss_kib": 524288},
        {"comm": "raylet", "container": "dgxspark-ray", "pss_kib": 262144},
        {"comm": "sshd", "container": None, "pss_kib": 999999}])
    assert held == {"engine": {"gib": 1.5, "processes": 2}, "ray": {"gib": 0.25, "processes": 1}}


# --- the ledger ----------------------------------------------------------------------------

GUARD = {"settings": {"mem_term_kib": 524288, "mem_term_percent": 0}}
SPARK_TOTAL = 127600000  # KiB, about 121.7 GiB


def read(available_gib, figures=None, guard=..., executor="mp", host_ip=None, **extra):
    guard = GUARD if guard is ... else guard  # (guard=None: a node without a guard)
    out = {"meminfo_kib": {"MemTotal": SPARK_TOTAL, "MemAvailable": int(available_gib * 1048576),
                           "SwapTotal": 16777216, "SwapFree": 16777216 - 1048576},
           "figures": figures or {"ranks": {}, "kv_tokens": None}, "guard": guard,
           "executor": executor, "host_ip": host_ip,
           "processes": {"engine": {"gib": 2.0, "processes": 3}, "ray": {"gib": 0.0,
                                                                         "processes": 0}}}
    out.update(extra)
    return out


def test_a_node_with_room_has_no_warning_and_the_margin_is_above_the_guard():
    figures = memory.engine_figures((FIXTURES / "gpu-mp-head-vllm-0.33.0.log").read_text())
    ledger = memory.ledgers(["spark1"], {"spark1": read(12.5, figures)}, {"floor_gib": 4})
    entry = ledger["nodes"]["spark1"]
    assert ledger["warnings"] == [] and ledger["kv_cache_tokens"] == 132096
    assert entry["mem_total_gib"] == 121.69 and entry["mem_available_gib"] == 12.5
    assert entry["guard_term_gib"] == 0.5 and entry["margin_gib"] == 12.0
    assert entry["swap_used_gib"] == 1.0
    assert entry["engine"] == {"ranks": 1, "weights_gib": 106.93, "kv_cache_gib": 1.69,
                               "kv_source": ["kv_cache_memory_bytes"], "non_kv_gib": None,
                               "processes_gib": 2.0}
    assert entry["ray"] is None and not ledger["lab"] and ledger["note"] == ""


def test_a_margin_under_the_floor_is_a_warning_naming_the_node_and_what_to_lower():
    ledger = memory.ledgers(["spark1", "spark2"], {"spark1": read(12.5), "spark2": read(3.0)},
                            {"floor_gib": 4})
    (warning,) = ledger["warnings"]
    assert warning.startswith("memory: spark2 has 2.5 GiB left above the memory guard's "
                              "SIGTERM level (0.5 GiB)")
    assert "under the floor of 4.0 GiB" in warning and "kv_cache_memory_bytes" in warning


def test_without_a_guard_the_margin_is_what_is_available_and_it_says_so():
    ledger = memory.ledgers(["s"], {"s": read(3.0, guard=None)}, {"floor_gib": 4})
    assert ledger["nodes"]["s"]["margin_gib"] == 3.0
    assert ledger["nodes"]["s"]["guard_term_gib"] is None
    assert "nothing (no memory guard on the node)" in ledger["warnings"][0]
    assert "(no memory guard)" in memory.ledger_lines(ledger)[0]


def test_the_guard_in_percent_and_in_kib_acts_at_the_lower():
    both = {"settings": {"mem_term_kib": 524288, "mem_term_percent": 2}}
    assert memory.term_threshold_kib(both, SPARK_TOTAL) == 524288
    percent = {"settings": {"mem_term_kib": 0, "mem_term_percent": 2}}
    assert memory.term_threshold_kib(percent, SPARK_TOTAL) == pytest.approx(2552000)
    assert memory.term_threshold_kib(None, SPARK_TOTAL) is None


def test_ray_ranks_logged_by_the_head_go_to_the_node_with_their_address():
    figures = memory.engine_figures((FIXTURES / "gpu-ray-head-vllm-0.33.0.log").read_text())
    reads = {"spark1": read(20, figures, executor="ray", host_ip="10.20.0.11",
                            ray_object_store_bytes=1073741824),
             "spark2": read(20, executor="ray", host_ip="10.20.2.12",
                            ray_object_store_bytes=1073741824),
             "spark3": read(20, executor="ray", host_ip="10.20.4.13",
                            ray_object_store_bytes=1073741824)}
    ledger = memory.ledgers(["spark1", "spark2", "spark3"], reads)
    weights = dict((n, e["engine"]["weights_gib"]) for n, e in ledger["nodes"].items())
    assert weights == {"spark1": 32.1, "spark2": 32.11, "spark3": 32.12}
    assert ledger["nodes"]["spark2"]["engine"]["kv_cache_gib"] == 60.25
    assert ledger["nodes"]["spark2"]["ray"] == {"object_store_cap_gib": 1.0,
                                                "processes_gib": 0.0, "processes": 0}
    assert ledger["kv_cache_tokens"] == 3127938
    assert "Ray object store cap 1.00 GiB" in memory.ledger_lines(ledger)[1]


def test_the_lab_says_its_figures_are_the_labs():
    figures = memory.engine_figures((FIXTURES / "cpu-tp3-vllm-0.32.0.log").read_text())
    ledger = memory.ledgers(["spark1"], {"spark1": read(15, figures)}, {"lab": True})
    lines = memory.ledger_lines(ledger)
    assert ledger["lab"] and "lab machine's" in ledger["note"]
    assert lines[0].startswith("memory: spark1: total 121.69 GiB; available 15.00 GiB; engine "
                               "(3 ranks) weights not logged, KV cache 0.18 GiB (cpu explicit)")
    assert lines[-1] == "memory: " + memory.LAB_NOTE
    assert "the engine's KV cache holds 32,768 tokens" in lines[-2]


def test_an_unreadable_node_and_a_last_kill_are_reported():
    kill = {"name": "VLLM::Worker_TP", "pid": 42, "time": "2026-12-02T01:00:00Z"}
    ledger = memory.ledgers(["a", "b"], {"a": read(20, last_kill=kill),
                                         "b": {"error": "no answer"}})
    assert ledger["warnings"] == ["memory: b: could not read the node (no answer)"]
    assert "last guard kill: VLLM::Worker_TP (pid 42) at 2026-12-02T01:00:00Z" in \
        memory.ledger_lines(ledger)[0]
