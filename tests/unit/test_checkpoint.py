"""A checkpoint directory read without loading tensors (plugins/module_utils/checkpoint.py)."""
from __future__ import annotations

import json
import os
import random
import struct

import pytest
from checkpoints import data, write_checkpoint

from ansible_collections.dgxspark.cluster.plugins.module_utils import checkpoint as ckpt

NVFP4 = {"quant_method": "modelopt", "quant_algo": "NVFP4", "group_size": 16}
# A GLM-5-shaped toy: two decoder layers and the MTP layer after them (model.layers.2.*).
GLM_CONFIG = {"architectures": ["GlmMoeDsaForCausalLM"], "model_type": "glm_moe_dsa",
              "num_hidden_layers": 2, "num_nextn_predict_layers": 1,
              "quantization_config": NVFP4}


def zeros(dtype, shape):
    return data(dtype, shape)


def layer(n):
    return {"model.layers.%d.self_attn.o_proj.weight" % n: zeros("BF16", [8, 8]),
            "model.layers.%d.mlp.experts.0.up_proj.weight" % n: zeros("U8", [16, 4]),
            "model.layers.%d.mlp.experts.0.up_proj.weight_scale" % n: zeros("F8_E4M3", [16, 1])}


def make_checkpoint(directory, config=None, mtp=True, index=True):
    """The toy GLM (config: GLM_CONFIG unless given): shard 1 embeddings + layers 0-1, shard 2 the MTP
    layer (layer 2)."""
    config = GLM_CONFIG if config is None else config
    base = dict(layer(0), **layer(1))
    base["model.embed_tokens.weight"] = zeros("BF16", [32, 8])
    shards = {"model-00001-of-00002.safetensors": base}
    if mtp:
        shards["model-00002-of-00002.safetensors"] = layer(2)
    return write_checkpoint(directory, shards, config, index)


@pytest.fixture
def glm(tmp_path):
    return make_checkpoint(str(tmp_path / "glm"))


def errors(found):
    return [f for f in found if f["severity"] == "error"]


def test_read_header_gives_dtype_shape_and_bytes(glm):
    header = ckpt.read_header(os.path.join(glm, "model-00002-of-00002.safetensors"))
    up = header["tensors"]["model.layers.2.mlp.experts.0.up_proj.weight"]
    assert up["dtype"] == "U8" and up["shape"] == [16, 4] and up["bytes"] == 64
    assert header["tensors"]["model.layers.2.self_attn.o_proj.weight"]["bytes"] == 128
    assert header["data_bytes"] == 128 + 64 + 16
    assert header["file_bytes"] == header["header_bytes"] + header["data_bytes"]
    assert (header["header_bytes"] - 8) % 8 == 0  # data 8-byte aligned as safetensors writes


def test_tensors_name_the_shard_of_every_tensor(glm):
    found = ckpt.tensors(glm)
    assert found["model.layers.2.self_attn.o_proj.weight"] == {
        "dtype": "BF16", "shape": [8, 8], "bytes": 128, "file": "model-00002-of-00002.safetensors"}
    assert found["model.embed_tokens.weight"]["file"] == "model-00001-of-00002.safetensors"
    assert len(found) == 10
    index = ckpt.load_index(glm)
    assert set(index["weight_map"]) == set(found)
    assert index["metadata"]["total_size"] == sum(t["bytes"] for t in found.values())


def test_a_one_file_checkpoint_has_no_index(tmp_path):
    directory = str(tmp_path / "one")
    os.makedirs(directory)
    ckpt.write_safetensors(os.path.join(directory, "model.safetensors"), layer(0))
    assert ckpt.load_index(directory) is None
    assert set(ckpt.tensors(directory)) == set(layer(0))


def test_a_complete_checkpoint_has_no_findings(glm):
    assert ckpt.check(glm, {"mtp": True, "profile": {"quantization_config": NVFP4}}) == []


def test_a_missing_mtp_shard_is_named_with_the_mtp_layer(glm):
    os.remove(os.path.join(glm, "model-00002-of-00002.safetensors"))
    found = ckpt.check(glm, {"mtp": True})
    assert len(found) == 1 and found[0]["severity"] == "error"
    assert "model-00002-of-00002.safetensors" in found[0]["message"]
    assert "3 of them of the MTP layer model.layers.2.*" in found[0]["message"]
    assert "MTP part" in found[0]["fix"]
    # without MTP planned the index is still incomplete (vLLM refuses a missing shard)
    found = ckpt.check(glm, {"mtp": False})
    assert len(found) == 1 and found[0]["severity"] == "error"


def test_a_base_without_the_mtp_layer_fails_only_when_mtp_is_planned(tmp_path):
    base = make_checkpoint(str(tmp_path / "base"), mtp=False)
    assert ckpt.check(base, {"mtp": False}) == []
    found = ckpt.check(base, {"mtp": True})
    assert len(found) == 1
    assert "has no model.layers.2.* tensor" in found[0]["message"]
    assert "layer_prefix is model.layers.2." in found[0]["fix"]


def test_the_recipes_layer_prefix_wins(tmp_path):
    base = make_checkpoint(str(tmp_path / "base"), mtp=True)
    assert ckpt.check(base, {"mtp": True, "mtp_prefixes": ["model.layers.2."]}) == []
    found = ckpt.check(base, {"mtp": True, "mtp_prefixes": ["model.layers.78."]})
    assert "model.layers.78.*" in found[0]["message"]


def test_a_shard_without_the_tensors_the_index_maps_to_it(glm):
    ckpt.write_safetensors(os.path.join(glm, "model-00002-of-00002.safetensors"),
                           {"model.layers.2.self_attn.o_proj.weight": zeros("BF16", [8, 8])})
    found = ckpt.check(glm, {"mtp": True})
    assert len(found) == 1
    assert "does not hold 2 tensor(s) the index maps to it" in found[0]["message"]
    assert found[0]["file"].endswith("model-00002-of-00002.safetensors")


def test_a_shard_cut_short_is_named_with_the_missing_bytes(glm):
    path = os.path.join(glm, "model-00001-of-00002.safetensors")
    size = os.path.getsize(path)
    with open(path, "r+b") as handle:
        handle.truncate(size - 100)
    with pytest.raises(ckpt.CheckpointError) as err:
        ckpt.read_header(path)
    assert "is cut short" in str(err.value) and "100 bytes missing" in str(err.value)
    assert path in str(err.value)
    found = ckpt.check(glm, {})
    assert len(found) == 1 and found[0]["file"] == path and "copy" in found[0]["fix"]


def test_quantization_other_than_the_profiles_is_an_error(glm):
    found = ckpt.check(glm, {"profile": {"quantization_config": {"quant_method": "fp8"}},
                             "profile_name": "recipes/models/x"})
    assert len(found) == 1
    assert "quantized as modelopt NVFP4, the recipe's model profile recipes/models/x as fp8" \
        in found[0]["message"]
    found = ckpt.check(glm, {"profile": {}})
    assert "no quantization" in found[0]["message"]


def test_hf_quant_config_counts_when_config_has_none(tmp_path):
    directory = make_checkpoint(str(tmp_path / "m"), config=dict(
        GLM_CONFIG, quantization_config=None))
    with open(os.path.join(directory, "hf_quant_config.json"), "w") as handle:
        json.dump({"producer": {"name": "modelopt"}, "quantization": {"quant_algo": "NVFP4"}},
                  handle)
    assert ckpt.check(directory, {"profile": {"quantization_config": NVFP4}}) == []


def test_mtp_prefixes_by_architecture():
    assert ckpt.mtp_prefixes(GLM_CONFIG) == ["model.layers.2."]
    assert ckpt.mtp_prefixes(dict(GLM_CONFIG, num_hidden_layers=78)) == ["model.layers.78."]
    assert ckpt.mtp_prefixes(dict(GLM_CONFIG, num_nextn_predict_layers=2)) == [
        "model.layers.2.", "model.layers.3."]
    assert ckpt.mtp_prefixes({"architectures": ["MiMoV2FlashForCausalLM"],
                              "num_nextn_predict_layers": 3}) == ["model.mtp.layers.0."]
    assert ckpt.mtp_prefixes({"architectures": ["LlamaForCausalLM"]}) is None
    assert ckpt.mtp_prefixes(dict(GLM_CONFIG, num_nextn_predict_layers=0)) == []


def test_mtp_planned_on_a_config_without_mtp_layers(tmp_path):
    directory = make_checkpoint(str(tmp_path / "m"), config=dict(
        GLM_CONFIG, num_nextn_predict_layers=0), mtp=False)
    found = ckpt.check(directory, {"mtp": True})
    assert len(found) == 1 and "declares no MTP layer" in found[0]["message"]


def test_mtp_on_an_unknown_architecture_is_a_warning(tmp_path):
    directory = make_checkpoint(str(tmp_path / "m"), config={"architectures": ["Foo"]})
    found = ckpt.check(directory, {"mtp": True})
    assert [f["severity"] for f in found] == ["warning"]


def test_a_tensor_in_two_shards_is_a_warning(glm):
    ckpt.write_safetensors(os.path.join(glm, "model-00002-of-00002.safetensors"),
                           dict(layer(2), **{"model.embed_tokens.weight": zeros("BF16", [32, 8])}))
    found = ckpt.check(glm, {"mtp": True})
    assert [f["severity"] for f in found] == ["warning"]
    assert "model.embed_tokens.weight in model-00001-of-00002.safetensors and " \
           "model-00002-of-00002.safetensors" in found[0]["message"]


@pytest.mark.parametrize("content, problem", [
    (b"", "too short for a safetensors file"),
    (b"\xff" * 64, "is not a safetensors file"),
    (struct.pack("<Q", 4) + b"nope", "header that is not JSON"),
    (struct.pack("<Q", 2) + b"[]", "not a JSON object"),
    (struct.pack("<Q", 40) + json.dumps({"t": {"dtype": "F32", "shape": [4],
                                               "data_offsets": [0, 8]}}).encode()[:40],
     "not JSON"),
])
def test_malformed_shards_name_the_file_and_the_fix(tmp_path, content, problem):
    path = str(tmp_path / "x.safetensors")
    with open(path, "wb") as handle:
        handle.write(content)
    with pytest.raises(ckpt.CheckpointError) as err:
        ckpt.read_header(path)
    assert problem in str(err.value) and path in str(err.value) and "Fix:" in str(err.value)


def test_a_header_whose_offsets_disagree_with_the_shape(tmp_path):
    path = str(tmp_path / "x.safetensors")
    body = json.dumps({"t": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}).encode()
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(body)) + body + b"\0" * 8)
    with pytest.raises(ckpt.CheckpointError) as err:
        ckpt.read_header(path)
    assert "tensor t is F32 [4] (16 bytes) but its data_offsets span 8 bytes" in str(err.value)


@pytest.mark.parametrize("index, problem", [
    ("{", "is not valid JSON"),
    ("[]", "is not a JSON object"),
    ('{"weight_map": {}}', "has no weight_map"),
    ('{"weight_map": {"a": "../../etc/passwd"}}', "not a file name in the checkpoint"),
])
def test_a_malformed_index_is_a_finding_not_a_traceback(glm, index, problem):
    with open(os.path.join(glm, ckpt.INDEX), "w") as handle:
        handle.write(index)
    found = ckpt.check(glm, {"mtp": True})
    assert len(found) == 1 and problem in found[0]["message"]
    assert found[0]["file"].endswith(ckpt.INDEX) and "re-download" in found[0]["fix"]


def test_missing_and_broken_configs_are_findings(glm):
    os.remove(os.path.join(glm, "config.json"))
    found = ckpt.check(glm, {"mtp": True})
    assert len(found) == 1 and "config.json does not exist" in found[0]["message"]
    with open(os.path.join(glm, "config.json"), "w") as handle:
        handle.write("{nope")
    found = ckpt.check(glm, {"mtp": True})
    assert "is not valid JSON" in found[0]["message"]


def test_no_directory_and_no_shards(tmp_path):
    assert "is not a directory" in ckpt.check(str(tmp_path / "none"))[0]["message"]
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text("{}")
    found = ckpt.check(str(tmp_path / "empty"))
    assert len(found) == 1 and "has no *.safetensors file" in found[0]["message"]
    with pytest.raises(ckpt.CheckpointError):
        ckpt.tensors(str(tmp_path / "empty"))


def test_garbage_in_any_file_never_raises(glm):
    rng = random.Random(7)
    names = sorted(os.listdir(glm))
    for trial in range(40):
        name = names[trial % len(names)]
        path = os.path.join(glm, name)
        with open(path, "rb") as handle:
            data = bytearray(handle.read())
        if data:
            for dummy in range(3):
                data[rng.randrange(len(data))] = rng.randrange(256)
        with open(path, "wb") as handle:
            handle.write(bytes(data[:rng.randrange(len(data) + 1)]))
        for item in ckpt.check(glm, {"mtp": True, "profile": {"quantization_config": NVFP4}}):
            assert item["message"] and item["fix"] and item["severity"] in ("error", "warning")


def test_copy_tensors_keeps_the_bytes(glm, tmp_path):
    src = os.path.join(glm, "model-00002-of-00002.safetensors")
    with open(src, "r+b") as handle:  # give the tensors recognisable bytes
        header = ckpt.read_header(src)
        handle.seek(header["header_bytes"])
        handle.write(bytes(range(256))[:header["data_bytes"]])
    dst = str(tmp_path / "part.safetensors")
    name = "model.layers.2.mlp.experts.0.up_proj.weight"
    ckpt.copy_tensors(src, dst, [name])
    out = ckpt.read_header(dst)
    assert list(out["tensors"]) == [name]
    info = header["tensors"][name]
    with open(src, "rb") as a, open(dst, "rb") as b:
        a.seek(header["header_bytes"] + info["data_offsets"][0])
        b.seek(out["header_bytes"])
        assert a.read(info["bytes"]) == b.read(info["bytes"])
    with pytest.raises(ckpt.CheckpointError):
        ckpt.copy_tensors(src, dst, ["nope"])


def test_layer_prefixes():
    assert ckpt.layer_prefixes(["model.layers.10.a", "model.layers.2.b", "model.mtp.layers.0.c",
                                "lm_head.weight"]) == [
        "model.layers.2.", "model.layers.10.", "model.mtp.layers.0."]
