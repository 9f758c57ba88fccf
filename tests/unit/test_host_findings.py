"""Checks of a node before a launch (plugins/module_utils/findings/hosts.py)."""
from __future__ import annotations

import json

import pytest

from ansible_collections.dgxspark.cluster.plugins.module_utils.findings import hosts

# `ip -j addr show` of a lab node (trimmed to the fields read).
IP_JSON = json.dumps([
    {"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1"}]},
    {"ifname": "enP7s7", "addr_info": [{"family": "inet", "local": "10.99.0.12"}]},
    {"ifname": "enp1s0f0np0", "addr_info": [{"family": "inet", "local": "10.20.2.12"},
                                            {"family": "inet6", "local": "fe80::1"}]},
    {"ifname": "enP2p1s0f1np1", "addr_info": [{"family": "inet", "local": "10.20.1.12"}]},
    {"ifname": "enp1s0f1np1", "addr_info": []},
])
ENV = {"VLLM_HOST_IP": "10.20.2.12", "GLOO_SOCKET_IFNAME": "enp1s0f0np0",
       "NCCL_SOCKET_IFNAME": "enp1s0f0np0"}


def test_interfaces_that_carry_the_address_pass():
    assert hosts.socket_interfaces("spark2", ENV, IP_JSON) == []
    assert hosts.socket_interfaces("spark2", dict(ENV, NCCL_SOCKET_IFNAME="=enp1s0f0np0,^lo"),
                                   IP_JSON) == []


def test_an_interface_with_another_address_is_named_with_the_right_one():
    found = hosts.socket_interfaces("spark2", dict(ENV, GLOO_SOCKET_IFNAME="enP2p1s0f1np1"),
                                    IP_JSON)
    assert len(found) == 1
    assert found[0].startswith(
        "spark2: GLOO_SOCKET_IFNAME=enP2p1s0f1np1 does not carry VLLM_HOST_IP 10.20.2.12 on spark2 "
        "(it has 10.20.1.12)")
    assert "Set GLOO_SOCKET_IFNAME to enp1s0f0np0" in found[0]


def test_a_missing_interface_and_an_empty_one_are_named():
    found = hosts.socket_interfaces("spark2", dict(ENV, GLOO_SOCKET_IFNAME="eth9",
                                                   NCCL_SOCKET_IFNAME="enp1s0f1np1"), IP_JSON)
    assert found[0].startswith("spark2: GLOO_SOCKET_IFNAME=eth9 does not exist on spark2")
    assert "NCCL_SOCKET_IFNAME=enp1s0f1np1 does not carry VLLM_HOST_IP 10.20.2.12 on spark2 (it " \
           "has no IPv4 address)" in found[1]


def test_no_host_ip_and_unreadable_output_are_findings_not_tracebacks():
    assert "VLLM_HOST_IP is not set" in hosts.socket_interfaces("spark2", {}, IP_JSON)[0]
    assert "could not read its interfaces" in hosts.socket_interfaces("spark2", ENV, "oops")[0]


def write_model(path, weights=b"\x00" * 64, extra=None):
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text('{"model_type": "llama"}')
    header = b'{"w":{"dtype":"F32","shape":[16],"data_offsets":[0,64]}}'
    (path / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + weights)
    for name, data in (extra or {}).items():
        (path / name).write_bytes(data)


def manifests(tmp_path, **kwargs):
    from ansible_collections.dgxspark.cluster.plugins.module_utils import model_manifest
    out = {}
    for node in ("spark1", "spark2", "spark3"):
        if (tmp_path / node).exists():
            out[node] = {"exists": True,
                         "manifest": model_manifest.manifest(str(tmp_path / node), **kwargs)}
        else:
            out[node] = {"exists": False, "manifest": {}}
    return out


NODES = ["spark1", "spark2", "spark3"]


def test_identical_model_directories_pass(tmp_path):
    for node in NODES:
        write_model(tmp_path / node, extra={"tokenizer.json": b"{}"})
    assert hosts.model_parity("/m", NODES, manifests(tmp_path)) == []


def test_a_node_with_other_weights_of_the_same_size_is_named(tmp_path):
    for node in NODES:
        write_model(tmp_path / node)
    write_model(tmp_path / "spark3", weights=b"\x01" + b"\x00" * 63)
    found = hosts.model_parity("/m", NODES, manifests(tmp_path))
    assert len(found) == 1
    assert found[0].startswith("spark3: /m differs from the head's (spark1): model.safetensors has "
                               "another content")
    # Above the hash limit only the safetensors header is compared: same header, not seen.
    assert hosts.model_parity("/m", NODES, manifests(tmp_path, hash_limit=10)) == []
    assert len(hosts.model_parity("/m", NODES, manifests(tmp_path, hash_limit=10, full=True))) == 1


def test_missing_extra_and_resized_files_and_a_missing_directory_are_named(tmp_path):
    write_model(tmp_path / "spark1", extra={"tokenizer.json": b"{}"})
    write_model(tmp_path / "spark2", weights=b"\x00" * 32, extra={"notes.txt": b"x"})
    found = hosts.model_parity("/m", NODES, manifests(tmp_path))
    assert found[0].startswith("spark3: no model directory /m")
    assert "spark2: /m differs" in found[1]
    assert "missing tokenizer.json" in found[1] and "extra notes.txt" in found[1]
    assert "model.safetensors is 96 bytes (head: 128)" in found[1]


def test_a_head_without_config_json_is_named(tmp_path):
    for node in NODES:
        (tmp_path / node).mkdir()
        (tmp_path / node / "weights.bin").write_bytes(b"x")
    assert hosts.model_parity("/m", NODES, manifests(tmp_path)) == [
        "spark1: /m has no config.json: is it a Hugging Face model directory?"]


def node_fact(kernel="6.17.0-1026-nvidia", gpu=("NVIDIA GB10", "580.159.03"), mem_gib=119,
              image=None):
    return {"kernel": kernel, "gpu": {"name": gpu[0], "driver": gpu[1]} if gpu else None,
            "gpu_error": None if gpu else "nvidia-smi: not found",
            "memory_kib": {"MemAvailable": int(mem_gib * 1048576)},
            "records": {"image": image}}


IMAGE = {"id": "sha256:aa", "ref": "dgxspark/vllm:0.33.0-x",
         "labels": {"dgxspark.patches": "draft-dcp-inherit", "dgxspark.vllm_build": "vllm-0.33"}}
SETTINGS = {"plan_nodes": 3, "min_kernel": "6.8", "require_gpu": True, "min_driver": "580",
            "mem_floor_gib": 100, "model_dir": "/m", "model_findings": [],
            "head_has_config": True, "fallback_model_config": "/profiles/m",
            "image_stage": False, "declared_patches": ["draft-dcp-inherit"],
            "declared_build": "vllm-0.33"}


def preflight(facts=None, **changes):
    facts = facts or dict((n, node_fact(image=IMAGE)) for n in NODES)
    return hosts.preflight(NODES, facts, dict(SETTINGS, **changes))


def test_healthy_hosts_pass_and_the_plan_uses_the_head_and_the_image_labels():
    out = preflight()
    assert out["failures"] == []
    assert out["model_config"] == "head"
    assert out["image_patches"] == ["draft-dcp-inherit"] and out["image_build"] == "vllm-0.33"


@pytest.mark.parametrize("node, fact, expect", [
    ("spark2", node_fact(kernel="6.5.0-1", image=IMAGE),
     "spark2: kernel 6.5.0-1 is older than preflight_min_kernel 6.8"),
    ("spark3", node_fact(gpu=None, image=IMAGE), "spark3: nvidia-smi reports no GPU"),
    ("spark1", node_fact(gpu=("NVIDIA GB10", "575.1"), image=IMAGE),
     "spark1: GPU driver 575.1 is older than preflight_min_driver 580"),
    ("spark2", node_fact(mem_gib=80, image=IMAGE),
     "spark2: MemAvailable 80.0 GiB is below preflight_mem_available_floor_gib 100"),
    ("spark3", node_fact(image=dict(IMAGE, id="sha256:bb")), "image: nodes hold different images"),
])
def test_each_host_finding_names_the_node(node, fact, expect):
    facts = dict((n, node_fact(image=IMAGE)) for n in NODES)
    facts[node] = fact
    out = preflight(facts)
    assert len(out["failures"]) == 1 and out["failures"][0].startswith(expect), out["failures"]


def test_the_node_count_must_match_the_plan():
    assert preflight(plan_nodes=4)["failures"][0].startswith(
        "nodes: the plan needs 4 Sparks but the group sparks has 3")


def test_an_image_other_than_the_declared_one_fails_unless_the_image_stage_runs():
    out = preflight(declared_patches=["draft-dcp-inherit", "sink-padding"])
    assert len(out["failures"]) == 1 and "the recipe declares draft-dcp-inherit, sink-padding" \
        in out["failures"][0]
    staged = preflight(declared_patches=["draft-dcp-inherit", "sink-padding"], image_stage=True)
    assert staged["failures"] == []
    assert staged["image_patches"] == ["draft-dcp-inherit", "sink-padding"]


def test_no_image_on_the_head_and_no_config_json_use_the_declared_image_and_the_profile():
    facts = dict((n, node_fact()) for n in NODES)
    out = preflight(facts, head_has_config=False)
    assert out["failures"] == ["image: spark1 holds no image of the vllm_image role: run the image "
                               "stage (--tags image)"]
    assert out["model_config"] == "/profiles/m"
    assert "plan check uses the bundled profile /profiles/m" in out["lines"]


def test_model_findings_and_a_simulated_node_without_gpu():
    out = preflight(require_gpu=False, model_findings=["spark3: /m differs"],
                    facts=dict((n, node_fact(gpu=None, image=IMAGE)) for n in NODES))
    assert out["failures"] == ["spark3: /m differs"]


def test_node_facts_addresses_are_accepted_as_they_are():
    addrs = {"enp1s0f0np0": ["10.20.2.12"], "enP2p1s0f1np1": ["10.20.1.12"]}
    assert hosts.socket_interfaces("spark2", ENV, addrs) == []
    assert "does not carry" in hosts.socket_interfaces(
        "spark2", dict(ENV, GLOO_SOCKET_IFNAME="enP2p1s0f1np1"), addrs)[0]


def test_the_planned_hca_list_must_be_the_devices_discovery_found():
    env = {"NCCL_IB_HCA": "rocep1s0f0,roceP2p1s0f0,rocep1s0f1,roceP2p1s0f1"}
    selection = {"enp1s0f0np0": {"rdma": "rocep1s0f0"}, "enP2p1s0f0np0": {"rdma": "roceP2p1s0f0"},
                 "enp1s0f1np1": {"rdma": "rocep1s0f1"}, "enP2p1s0f1np1": {"rdma": "roceP2p1s0f1"}}
    assert hosts.planned_hca("spark1", env, selection) == []
    renamed = dict(selection, enp1s0f1np1={"rdma": "mlx5_2"})
    found = hosts.planned_hca("spark1", env, renamed)
    assert len(found) == 1 and found[0].startswith(
        "spark1: the plan's NCCL_IB_HCA is rocep1s0f0,roceP2p1s0f0,rocep1s0f1,roceP2p1s0f1, but "
        "the RoCE devices behind the fabric interfaces are mlx5_2,roceP2p1s0f0,roceP2p1s0f1,"
        "rocep1s0f0")
    # no RoCE devices (the lab): nothing to compare
    assert hosts.planned_hca("spark1", env, {}) == []


def test_the_filters_name_a_malformed_argument():
    from ansible.errors import AnsibleFilterError
    from ansible_collections.dgxspark.cluster.plugins.filter import hosts as filters
    cases = [
        (lambda: filters.socket_interface_findings("x", "[]", "spark1"), "socket_interface_findings: _input='x'"),
        (lambda: filters.model_parity_findings({"spark1": 3}, "/m", ["spark1"]), "_input.spark1=3"),
        (lambda: filters.preflight_findings([], {}, {}), "no nodes"),
        (lambda: filters.preflight_findings(["a"], {}, {"min_kernel": "6"}), "settings.min_driver is missing"),
        (lambda: filters.hca_findings({}, [1], "spark1"), "selection=[1]"),
        (lambda: filters.padding_findings([1], {}, "/m"), "padding_findings: _input=[1]"),
        (lambda: filters.padding_findings(None, "x", "/m"), "plan_padding='x'"),
    ]
    for call, expect in cases:
        with pytest.raises(AnsibleFilterError, match=expect.replace("[", r"\[")):
            call()


def test_the_engine_padding_must_be_the_padding_of_the_model_proven():
    """The recipe lookup pads with the bundled profile; the head's own model must pad the same,
    computed by the plan engine for both (real model configs, not made-up paddings)."""
    from ansible_collections.dgxspark.cluster.plugins.module_utils.plan import engine

    from conftest import ROOT
    plan = {"nodes": 3, "tensor_parallel_size": 3, "virtual_heads": True,
            "vllm_patches": ["virtual-heads", "moe-zero-fill", "sink-padding"]}
    mimo = engine.evaluate(dict(plan, model_config=str(ROOT / "recipes/models/mimo-v2.5-nvfp4")))
    tiny = engine.evaluate(dict(plan, model_config=str(ROOT / "recipes/models/dgxspark-tiny-mimo")))
    assert mimo["padding"]["applied"] and tiny["padding"]["applied"]
    engine_padding = mimo["padding"]["hf_overrides"]
    assert hosts.padding_agreement(engine_padding, mimo["padding"], "/models/mimo") == []
    found = hosts.padding_agreement(engine_padding, tiny["padding"], "/models/other")
    assert len(found) == 1 and "/models/other" in found[0] and "recipe_model_profile" in found[0]
    # nothing padded on either side agrees; padding on one side only does not
    unpadded = {"applied": False, "needed": False, "patches": []}
    assert hosts.padding_agreement(None, unpadded, "m") == []
    assert hosts.padding_agreement(None, mimo["padding"], "m")
    assert hosts.padding_agreement(engine_padding, unpadded, "m")


MISSING_MTP = {"severity": "error", "file": "/m/model.safetensors.index.json",
               "message": "/m has no model.layers.78.* tensor", "fix": "assemble a hybrid"}
WRONG_QUANT = {"severity": "error", "file": "/m/config.json",
               "message": "/m/config.json is quantized as FP8", "fix": "fetch the recipe's"}
DUPLICATE = {"severity": "warning", "file": "/m", "message": "/m: 1 tensor(s) are in two shards",
             "fix": "keep each tensor in one shard"}


def test_checkpoint_errors_fail_preflight_with_the_fix_and_warnings_are_lines():
    out = preflight(checkpoint_findings=[MISSING_MTP, DUPLICATE])
    assert out["failures"] == ["/m has no model.layers.78.* tensor -- fix: assemble a hybrid"]
    assert "model: warning: /m: 1 tensor(s) are in two shards -- fix: keep each tensor in one " \
        "shard" in out["lines"]
    ok = preflight(checkpoint_findings=[])
    assert ok["failures"] == [] and "model: the same /m on 3 node(s), the head's checkpoint " \
        "complete" in ok["lines"]
    assert "model: the same /m on 3 node(s)" in preflight()["lines"]  # not checked: not said


def test_the_model_stage_puts_right_what_it_can():
    parity = ["spark3: no model directory /m"]
    # it copies the head's model to the workers: parity findings are what it will do
    staged = preflight(model_findings=parity, model_stage=True)
    assert staged["failures"] == []
    assert any(line.startswith("model: the model stage copies it to every node; now: spark3")
               for line in staged["lines"])
    # without a source it cannot mend the head's checkpoint
    out = preflight(model_findings=parity, checkpoint_findings=[WRONG_QUANT], model_stage=True)
    assert out["failures"] == ["/m/config.json is quantized as FP8 -- fix: fetch the recipe's"]
    # with a source it fetches and assembles the head's checkpoint too
    fetched = preflight(model_findings=parity, checkpoint_findings=[MISSING_MTP],
                        model_stage=True, model_source=True)
    assert fetched["failures"] == []
    assert any("fetches and assembles the checkpoint on spark1" in line for line in fetched["lines"])
    # nothing on the head and no source: nothing to copy from
    empty = preflight(model_findings=["spark1: no model directory /m"], head_has_config=False,
                      model_stage=True)
    assert empty["failures"] == ["spark1: no model directory /m"]
    # a fresh cluster with a source: the model stage brings everything
    fresh = preflight(model_findings=["spark1: no model directory /m"], head_has_config=False,
                      model_stage=True, model_source=True)
    assert fresh["failures"] == []
    # the stage skipped: every finding fails
    assert preflight(model_findings=parity, model_source=True)["failures"] == parity
