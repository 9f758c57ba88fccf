"""The model modules as Ansible runs them (ad hoc on localhost): model_manifest's transfer,
model_assemble in check and diff mode, model_checkpoint's findings."""
from __future__ import annotations

import json
import os

from checkpoints import data, write_checkpoint
from test_vllm_plan_module import adhoc_module

from ansible_collections.dgxspark.cluster.plugins.module_utils import model_manifest

CONFIG = {"architectures": ["GlmMoeDsaForCausalLM"], "model_type": "glm_moe_dsa",
          "num_hidden_layers": 1, "num_nextn_predict_layers": 1}


def checkpoint(path, layers):
    return write_checkpoint(path, dict(("s%d.safetensors" % n, {"model.layers.%d.w" % n:
                                                                data("U8", [8], n)})
                                       for n in layers), CONFIG)


def test_manifest_with_a_reference_says_what_to_copy(tmp_path):
    head = checkpoint(tmp_path / "head", [0, 1])
    node = checkpoint(tmp_path / "node", [0])
    rc, result = adhoc_module("dgxspark.cluster.model_manifest",
                              {"path": node, "reference": model_manifest.manifest(head)})
    assert rc == 0 and result["changed"] is False
    assert result["transfer"]["copy"] == ["model.safetensors.index.json", "s1.safetensors"]
    rc, result = adhoc_module("dgxspark.cluster.model_manifest",
                              {"path": str(tmp_path / "none"),
                               "reference": model_manifest.manifest(head)})
    assert result["exists"] is False and len(result["transfer"]["copy"]) == 4


def test_assemble_in_check_and_diff_mode_changes_nothing(tmp_path):
    base = checkpoint(tmp_path / "base", [0])
    mtp = checkpoint(tmp_path / "mtp", [1])
    args = {"base": base, "mtp": mtp, "dest": str(tmp_path / "out")}
    rc, result = adhoc_module("dgxspark.cluster.model_assemble", args, "--check", "--diff")
    assert rc == 0 and result["changed"] is True and result["mtp_tensors"] == 1
    assert "link s1.safetensors" in result["diff"]["after"]
    assert not os.path.exists(str(tmp_path / "out"))
    rc, result = adhoc_module("dgxspark.cluster.model_assemble", args)
    assert rc == 0 and result["changed"] is True
    rc, result = adhoc_module("dgxspark.cluster.model_assemble", args)
    assert rc == 0 and result["changed"] is False and result["actions"] == []


def test_checkpoint_findings_name_the_file_and_the_fix(tmp_path):
    base = checkpoint(tmp_path / "base", [0])
    rc, result = adhoc_module("dgxspark.cluster.model_checkpoint", {"path": base, "mtp": True})
    assert rc == 0 and result["exists"] is True and len(result["errors"]) == 1
    assert "has no model.layers.1.* tensor" in result["errors"][0]
    assert "-- fix: assemble a hybrid checkpoint" in result["errors"][0]
    assert result["findings"][0]["file"].endswith("model.safetensors.index.json")
    with open(os.path.join(base, "config.json"), "w") as handle:
        json.dump(dict(CONFIG, quantization_config={"quant_method": "fp8"}), handle)
    rc, result = adhoc_module("dgxspark.cluster.model_checkpoint", {
        "path": base, "profile": CONFIG, "profile_name": "recipes/models/x"})
    assert any("quantized as" in e for e in result["errors"])
    rc, result = adhoc_module("dgxspark.cluster.model_checkpoint", {"path": str(tmp_path / "no")})
    assert rc == 0 and result["exists"] is False and result["findings"] == []


def test_node_facts_reads_the_manifest_and_checks_the_checkpoint_in_the_same_call(tmp_path):
    """Preflight's one read per node: node_facts with model and checkpoint returns what
    model_manifest and model_checkpoint return for the same directory."""
    base = checkpoint(tmp_path / "base", [0])
    args = {"facts_dir": str(tmp_path / "facts"), "model": {"path": base, "hash_limit": 16},
            "checkpoint": {"path": base, "mtp": True}}
    rc, result = adhoc_module("dgxspark.cluster.node_facts", args)
    assert rc == 0 and result["changed"] is False and "kernel" in result["node"]
    dummy, alone = adhoc_module("dgxspark.cluster.model_manifest", {"path": base, "hash_limit": 16})
    assert result["model"] == {"exists": True, "manifest": alone["manifest"]}
    assert result["model"]["manifest"]["hash_limit"] == 16
    dummy, alone = adhoc_module("dgxspark.cluster.model_checkpoint", {"path": base, "mtp": True})
    assert result["checkpoint"]["errors"] == alone["errors"] and len(alone["errors"]) == 1
    assert "has no model.layers.1.* tensor" in result["checkpoint"]["errors"][0]
    # without the options: the node only; a bad hash_limit names the value and the fix
    rc, result = adhoc_module("dgxspark.cluster.node_facts", {"facts_dir": args["facts_dir"]})
    assert rc == 0 and "model" not in result and "checkpoint" not in result
    rc, result = adhoc_module("dgxspark.cluster.node_facts",
                              {"model": {"path": base, "hash_limit": -1}})
    assert rc != 0 and "hash_limit -1: give a number of bytes" in result["msg"]


def test_node_facts_says_which_paths_exist(tmp_path):
    """vllm_cluster's one read includes whether the model's config.json is there. The units'
    half needs systemd, which the lab's nodes have (molecule covers it); the call and its
    failure are in tests/unit/test_node.py."""
    here = tmp_path / "config.json"
    here.write_text("{}")
    rc, result = adhoc_module("dgxspark.cluster.node_facts", {
        "node": False, "paths": [str(here), str(tmp_path / "missing" / "config.json")]})
    assert rc == 0 and result["units"] == "" and "node" not in result
    assert result["paths"] == {str(here): True, str(tmp_path / "missing" / "config.json"): False}
