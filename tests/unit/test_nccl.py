"""The NCCL an image loads (module_utils/nccl.py, the image's probe) and the preflight gate
that fails a ring on an old NCCL (findings/hosts.py nccl_gate)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.dgxspark.cluster.plugins.filter import hosts as host_filters
from ansible_collections.dgxspark.cluster.plugins.filter import nccl as nccl_filters
from ansible_collections.dgxspark.cluster.plugins.module_utils import nccl
from ansible_collections.dgxspark.cluster.plugins.module_utils.findings import hosts
from ansible_collections.dgxspark.cluster.plugins.module_utils.plan.errors import InputError
from conftest import ROOT

PROBE = ROOT / "roles/vllm_image/files/nccl_probe.py"

# What the probe prints in a CUDA image: torch and vLLM's PyNccl load the same library
# (values as the probe's own code produces them: torch's tuple, ncclGetVersion's code).
GPU_PROBE = {"ld_preload": "", "ld_library_path": "", "vllm_nccl_so_path": "",
             "torch": [2, 28, 9], "torch_error": None, "torch_cuda": "13.0",
             "vllm": 22809, "vllm_library": "libnccl.so.2", "vllm_error": None,
             "loaded": ["/usr/local/lib/python3.12/dist-packages/nvidia/nccl/lib/libnccl.so.2"]}


@pytest.mark.parametrize("raw, text", [
    (22809, "2.28.9"), (23007, "2.30.7"), (2804, "2.8.4"), ([2, 30, 7], "2.30.7"),
    ((2, 28, 9), "2.28.9"), (None, None), (0, None), ("2.28.9", None), (True, None), ([], None)])
def test_nccl_version_codes(raw, text):
    assert nccl.version_text(raw) == text


def test_version_tuples_compare_as_nccl_releases():
    assert nccl.version_tuple("2.30") == (2, 30, 0) < nccl.version_tuple("2.30.7")
    assert nccl.version_tuple("2.28.9") < nccl.version_tuple("2.30")
    assert nccl.version_tuple("2.9.0") < nccl.version_tuple("2.28.9")
    assert nccl.version_tuple("none") is None and nccl.version_tuple("") is None


def test_a_cuda_image_is_labelled_with_its_nccl_and_where_it_comes_from():
    labels = nccl.probe_labels(json.dumps(GPU_PROBE))
    assert labels["dgxspark.nccl_version"] == "2.28.9"
    assert labels["dgxspark.nccl_detail"] == (
        "torch 2.28.9; vLLM PyNccl 2.28.9 (libnccl.so.2); loaded "
        "/usr/local/lib/python3.12/dist-packages/nvidia/nccl/lib/libnccl.so.2")


def test_an_ld_preload_shim_that_torch_loads_is_the_version_the_label_names():
    probe = dict(GPU_PROBE, torch=[2, 27, 3], vllm=23007, ld_preload="/opt/shim/libnccl.so.2",
                 loaded=["/opt/shim/libnccl.so.2", "/usr/lib/aarch64-linux-gnu/libnccl.so.2"])
    labels = nccl.probe_labels(probe)
    assert labels["dgxspark.nccl_version"] == "2.27.3"  # the lowest one the process loads
    detail = labels["dgxspark.nccl_detail"]
    assert "torch 2.27.3; vLLM PyNccl 2.30.7 (libnccl.so.2)" in detail
    assert "LD_PRELOAD=/opt/shim/libnccl.so.2" in detail
    assert detail.endswith("torch and vLLM load different NCCL versions")


def test_an_image_without_nccl_is_labelled_none_with_the_reason():
    probe = dict(GPU_PROBE, torch=None, vllm=None, loaded=[], torch_cuda=None,
                 torch_error="AttributeError: module 'torch._C' has no attribute '_nccl_version'",
                 vllm_error="ValueError: NCCL only supports CUDA and ROCm backends.")
    labels = nccl.probe_labels(probe)
    assert labels == {"dgxspark.nccl_version": "none", "dgxspark.nccl_detail": (
        "no NCCL: torch AttributeError: module 'torch._C' has no attribute '_nccl_version'; "
        "vLLM PyNccl ValueError: NCCL only supports CUDA and ROCm backends.")}


def test_probe_output_without_json_fails_naming_the_probe():
    with pytest.raises(InputError) as error:
        nccl.probe_labels("Traceback (most recent call last):\n  boom\n")
    assert error.value.variable == "nccl_probe"
    with pytest.raises(AnsibleFilterError) as error:
        nccl_filters.nccl_probe_labels(["x"])
    assert str(error.value).startswith("dgxspark.cluster.nccl_probe_labels: nccl_probe=")


def test_the_probe_itself_runs_and_reports_a_python_without_nccl(tmp_path):
    """The real probe, run by a Python that has no torch and no NCCL (this test venv's, with
    a library path that has none): it must print its JSON line, and the label must be none."""
    env = dict(os.environ, LD_LIBRARY_PATH=str(tmp_path), VLLM_NCCL_SO_PATH=str(tmp_path / "x.so"))
    proc = subprocess.run([sys.executable, "-"], input=PROBE.read_text(), capture_output=True,
                          text=True, env=env, timeout=120, check=True)
    probe = json.loads(proc.stdout.strip().splitlines()[-1])
    assert probe["vllm_nccl_so_path"] == str(tmp_path / "x.so")
    assert probe["vllm"] is None and "x.so" in probe["vllm_error"]
    labels = nccl.probe_labels(proc.stdout)
    assert labels["dgxspark.nccl_version"] == "none"
    assert "VLLM_NCCL_SO_PATH=%s" % (tmp_path / "x.so") in labels["dgxspark.nccl_detail"]


def test_the_library_environment_the_probe_runs_with():
    env = {"LD_PRELOAD": "/opt/shim.so", "VLLM_NCCL_SO_PATH": "/x", "NCCL_DEBUG": "INFO", "N": 1}
    assert nccl_filters.nccl_library_env(env) == {"LD_PRELOAD": "/opt/shim.so",
                                                  "VLLM_NCCL_SO_PATH": "/x"}


# --- the gate ------------------------------------------------------------------------------

def image(version=None, detail="torch 2.28.9; vLLM PyNccl 2.28.9 (libnccl.so.2)"):
    labels = {"dgxspark.patches": "draft-dcp-inherit"}
    if version is not None:
        labels.update({"dgxspark.nccl_version": version, "dgxspark.nccl_detail": detail})
    return {"ref": "dgxspark/vllm:0.33.0-abc", "id": "sha256:1", "labels": labels}


@pytest.mark.parametrize("topology", ["ring3", "ring4"])
def test_a_ring_on_an_old_nccl_fails_naming_the_version_and_the_fix(topology):
    gate = hosts.nccl_gate(image("2.28.9"), topology, {})
    assert gate["lines"] == []
    (failure,) = gate["failures"]
    assert failure.startswith("nccl: dgxspark/vllm:0.33.0-abc loads NCCL 2.28.9 (torch 2.28.9; "
                              "vLLM PyNccl 2.28.9 (libnccl.so.2)), but the %s topology sets "
                              "NCCL_IB_SUBNET_AWARE_ROUTING=1, which needs NCCL 2.30 or newer"
                              % topology)
    assert "Fix: use a base image whose NCCL is 2.30 or newer (vllm_image_base)" in failure
    assert "preflight_nccl_min_version" in failure


def test_a_ring_on_nccl_2_30_passes():
    gate = hosts.nccl_gate(image("2.30.7", "torch 2.30.7"), "ring3", {})
    assert gate["failures"] == []
    assert gate["lines"] == ["nccl: dgxspark/vllm:0.33.0-abc loads NCCL 2.30.7 (torch 2.30.7), "
                             "at least 2.30 as the ring3 topology sets "
                             "NCCL_IB_SUBNET_AWARE_ROUTING=1 needs"]


def test_a_switch_needs_no_minimum_unless_a_node_sets_subnet_aware_routing():
    assert hosts.nccl_gate(image("2.28.9"), "switch", {"s1": {"NCCL_IB_HCA": "x"}})["failures"] \
        == []
    gate = hosts.nccl_gate(image("2.28.9"), "", {"s1": {}, "s2": {
        "NCCL_IB_SUBNET_AWARE_ROUTING": "1"}})
    assert "s2's fabric environment sets NCCL_IB_SUBNET_AWARE_ROUTING=1" in gate["failures"][0]


def test_an_image_without_nccl_is_reported_and_skipped_never_passed_silently():
    gate = hosts.nccl_gate(image("none", "no NCCL: torch AttributeError"), "ring3", {})
    assert gate["failures"] == []
    (line,) = gate["lines"]
    assert line.startswith("nccl: dgxspark/vllm:0.33.0-abc loads no NCCL (no NCCL: torch "
                           "AttributeError): the NCCL 2.30 minimum of a ring, checked only for "
                           "an engine that uses NCCL -- skipped")


def test_an_unlabelled_image_fails_a_ring_and_is_only_reported_on_a_switch():
    (failure,) = hosts.nccl_gate(image(), "ring4", {})["failures"]
    assert "carries no dgxspark.nccl_version label" in failure and "Rebuild it" in failure
    gate = hosts.nccl_gate(image(), "switch", {})
    assert gate["failures"] == [] and "needs no minimum" in gate["lines"][0]


def test_a_label_that_is_no_version_and_no_image_at_all():
    assert "is not a version" in hosts.nccl_gate(image("2.x"), "ring3", {})["failures"][0]
    assert hosts.nccl_gate({}, "ring3", {})["failures"] == [
        "nccl: no image recorded on the nodes yet: run the image stage (--tags image)"]
    assert hosts.nccl_gate({}, "switch", {})["failures"] == []


def test_the_minimum_can_be_lowered_for_nvidias_ring_branch_and_must_be_a_version():
    assert hosts.nccl_gate(image("2.28.9"), "ring3", {}, "2.28")["failures"] == []
    with pytest.raises(InputError) as error:
        hosts.nccl_gate(image("2.28.9"), "ring3", {}, "newest")
    assert error.value.variable == "preflight_nccl_min_version"


NODES = ["spark1", "spark2", "spark3"]


def facts(version, topology="ring3"):
    fact = {"kernel": "6.17.0-1026-nvidia", "gpu": {"name": "NVIDIA GB10", "driver": "580.159"},
            "memory_kib": {"MemAvailable": 120 * 1048576},
            "records": {"image": image(version), "fabric": {"topology": topology, "env": {}}}}
    return dict((n, fact) for n in NODES)


SETTINGS = {"min_kernel": "6.8", "require_gpu": True, "min_driver": "580",
            "mem_floor_gib": 100, "model_dir": "/m", "model_findings": [],
            "head_has_config": True, "fallback_model_config": "",
            "declared_patches": ["draft-dcp-inherit"], "declared_build": "vllm-0.33"}


def test_preflight_fails_a_ring_whose_recorded_image_has_an_old_nccl():
    result = hosts.preflight(NODES, facts("2.28.9"), dict(SETTINGS))
    (failure,) = [f for f in result["failures"] if f.startswith("nccl:")]
    assert "loads NCCL 2.28.9" in failure and "the ring3 topology" in failure
    ok = hosts.preflight(NODES, facts("2.30.7"), dict(SETTINGS))
    assert ok["failures"] == [] and any(line.startswith("nccl:") for line in ok["lines"])


def test_preflight_takes_the_topology_it_is_given_before_the_records():
    result = hosts.preflight(NODES, facts("2.28.9", topology="switch"),
                             dict(SETTINGS, fabric_topology="ring4"))
    assert any("the ring4 topology" in f for f in result["failures"])


def test_when_the_image_stage_runs_the_gate_comes_after_it():
    result = hosts.preflight(NODES, facts("2.28.9"), dict(SETTINGS, image_stage=True))
    assert result["failures"] == []
    assert ("nccl: checked right after the image stage has built the image (its "
            "dgxspark.nccl_version label)") in result["lines"]


def test_the_nccl_entry_points_filter():
    gate = host_filters.nccl_findings(NODES, facts("2.28.9"), "", "2.30")
    assert "loads NCCL 2.28.9" in gate["failures"][0]
    with pytest.raises(AnsibleFilterError) as error:
        host_filters.nccl_findings([], {}, "", "2.30")
    assert "no nodes" in str(error.value)
