"""The lab's tiny model as a hybrid source (roles/lab/files/lab_models.py split_hybrid), and the
model role's Python pieces end to end on temp directories, molecule-free: split the made model
into a base without its MTP layer and an MTP part, assemble it on the "head" as the model role
does, work out what an empty "worker" must receive, copy it, and prove parity."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil

import pytest
from checkpoints import data, write_checkpoint

from ansible_collections.dgxspark.cluster.plugins.module_utils import checkpoint as ckpt
from ansible_collections.dgxspark.cluster.plugins.module_utils import model
from ansible_collections.dgxspark.cluster.plugins.module_utils import model_manifest
from conftest import ROOT

# The tiny MiMo's shape in small: its MTP module is model.mtp.layers.0.* (vLLM's mimo_v2_mtp.py)
MIMO = {"architectures": ["MiMoV2FlashForCausalLM"], "model_type": "mimo_v2_flash",
        "num_hidden_layers": 2, "num_nextn_predict_layers": 1}
MTP = "model.mtp.layers.0."


def load_lab_models():
    spec = importlib.util.spec_from_file_location(
        "lab_models", str(ROOT / "roles/lab/files/lab_models.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def made(tmp_path):
    """A made model as lab_models.py writes it: one model.safetensors, no index."""
    tensors = {"model.embed_tokens.weight": data("F32", [8, 4], 1),
               "lm_head.weight": data("F32", [8, 4], 2)}
    for n in range(2):
        tensors["model.layers.%d.self_attn.q_proj.weight" % n] = data("F32", [4, 4], 3 + n)
    for name in ("eh_proj.weight", "self_attn.q_proj.weight", "enorm.weight"):
        tensors[MTP + name] = data("F32", [4, 4], 9)
    return write_checkpoint(tmp_path / "made", {"model.safetensors": tensors}, MIMO, index=False,
                            extra={"tokenizer.json": "{}", "dgxspark-reference.json": "{}"})


def split(made, tmp_path):
    base, mtp = str(tmp_path / "src/base"), str(tmp_path / "src/mtp")
    out = load_lab_models().split_hybrid(made, base, mtp, str(ROOT))
    return base, mtp, out


def test_split_takes_the_mtp_layer_out_of_the_base(made, tmp_path):
    base, mtp, out = split(made, tmp_path)
    assert out == {"prefixes": [MTP], "base_tensors": 4, "mtp_tensors": 3}
    base_tensors, mtp_tensors = ckpt.tensors(base), ckpt.tensors(mtp)
    assert not any(t.startswith(MTP) for t in base_tensors)
    assert sorted(mtp_tensors) == sorted(MTP + n for n in
                                         ("eh_proj.weight", "self_attn.q_proj.weight", "enorm.weight"))
    assert sorted(os.listdir(base)) == ["config.json", "dgxspark-reference.json", "model.safetensors",
                                        ckpt.INDEX, "tokenizer.json"]
    assert sorted(os.listdir(mtp)) == ["config.json", "model.safetensors.index.json",
                                       "mtp-model.safetensors"]
    # the base alone is what preflight refuses when MTP is planned
    found = ckpt.check(base, {"mtp": True})
    assert [f["severity"] for f in found] == ["error"] and MTP in found[0]["message"]


def test_a_model_without_an_mtp_layer_is_not_split(tmp_path):
    plain = write_checkpoint(tmp_path / "plain", {"model.safetensors": {
        "model.layers.0.w": data("F32", [2])}}, dict(MIMO, architectures=["LlamaForCausalLM"],
                                                     model_type="llama"), index=False)
    with pytest.raises(SystemExit) as err:
        load_lab_models().split_hybrid(plain, str(tmp_path / "b"), str(tmp_path / "m"), str(ROOT))
    assert "no MTP layer" in str(err.value)


def test_the_model_roles_pieces_assemble_distribute_and_prove_parity(made, tmp_path):
    base, mtp, dummy = split(made, tmp_path)
    head = str(tmp_path / "head/model")
    # 1. assemble on the head (model_assemble): the MTP part's shard joins, the index is merged
    plan = model.hybrid_plan(base, head, mtp, model.mtp_prefixes_for(base))
    assert plan["mtp_tensors"] == 3
    model.apply_plan(plan, head)
    assert ckpt.check(head, {"mtp": True}) == []
    # every tensor of the made model is back, with its bytes
    assert {t: i["bytes"] for t, i in ckpt.tensors(head).items()} == \
        {t: i["bytes"] for t, i in ckpt.tensors(made).items()}
    assert os.path.samefile(os.path.join(base, "model.safetensors"),
                            os.path.join(head, "model.safetensors"))
    assert model.hybrid_plan(base, head, mtp)["changed"] is False
    # 2. what an empty worker receives (model_manifest with the head's as reference): all of it
    reference = model_manifest.manifest(head)
    worker = str(tmp_path / "worker/model")
    moved = model.transfer(reference, {})
    assert moved["copy"] == sorted(reference["files"])
    for name in moved["copy"]:  # what rsync --files-from does
        os.makedirs(os.path.dirname(os.path.join(worker, name)), exist_ok=True)
        shutil.copy2(os.path.join(head, name), os.path.join(worker, name))
    # 3. parity: nothing left to move, the manifests agree
    assert model.transfer(reference, model_manifest.manifest(worker))["same"] is True
    assert model_manifest.differences(reference, model_manifest.manifest(worker)) == []
    # a worker whose MTP shard is lost receives exactly that shard
    os.unlink(os.path.join(worker, "mtp-model.safetensors"))
    assert model.transfer(reference, model_manifest.manifest(worker))["copy"] == [
        "mtp-model.safetensors"]


def test_refuses_to_assemble_when_the_mtp_shard_is_missing(made, tmp_path):
    base, mtp, dummy = split(made, tmp_path)
    os.unlink(os.path.join(mtp, "mtp-model.safetensors"))
    with pytest.raises(model.AssemblyError) as err:
        model.hybrid_plan(base, str(tmp_path / "head"), mtp)
    assert "mtp-model.safetensors" in str(err.value)
    # and when the index lacks a key of the MTP layer, that prefix is missing entirely
    with open(os.path.join(mtp, ckpt.INDEX)) as handle:
        index = json.load(handle)
    index["weight_map"] = {"x": "mtp-model.safetensors"}
    with open(os.path.join(mtp, ckpt.INDEX), "w") as handle:
        json.dump(index, handle)
    with pytest.raises(model.AssemblyError) as err:
        model.hybrid_plan(base, str(tmp_path / "head"), mtp)
    assert "has no tensor under model.mtp.layers.0.*" in str(err.value)
