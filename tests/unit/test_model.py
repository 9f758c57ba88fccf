"""The model role's domain (plugins/module_utils/model.py): the recipe's model source, hybrid
assembly and what a node must receive -- every pass/fail decision, on temp directories."""
from __future__ import annotations

import json
import os

import pytest
from checkpoints import data, write_checkpoint

from ansible_collections.dgxspark.cluster.plugins.module_utils import checkpoint as ckpt
from ansible_collections.dgxspark.cluster.plugins.module_utils import model
from ansible_collections.dgxspark.cluster.plugins.module_utils import model_manifest

NVFP4 = {"quant_method": "modelopt", "quant_algo": "NVFP4", "group_size": 16}
# GLM-5-shaped toy: decoder layers 0-1, the MTP layer after them (model.layers.2.*)
CONFIG = {"architectures": ["GlmMoeDsaForCausalLM"], "model_type": "glm_moe_dsa",
          "num_hidden_layers": 2, "num_nextn_predict_layers": 1, "quantization_config": NVFP4}
MTP = "model.layers.2."


def layer(n, fill=0):
    return {"model.layers.%d.self_attn.o_proj.weight" % n: data("BF16", [4, 4], fill),
            "model.layers.%d.mlp.experts.0.up_proj.weight" % n: data("U8", [8, 4], fill)}


@pytest.fixture
def base(tmp_path):
    """The NVFP4 base without its MTP layer (as Mapika/GLM-5.2-NVFP4 lacks model.layers.78)."""
    shards = {"model-00001-of-00002.safetensors": dict(layer(0), **{
        "model.embed_tokens.weight": data("BF16", [16, 4])}),
        "model-00002-of-00002.safetensors": layer(1)}
    return write_checkpoint(tmp_path / "base", shards, CONFIG, extra={"tokenizer.json": "{}"})


@pytest.fixture
def mtp(tmp_path):
    """The MTP repository: the MTP layer in a shard named like one of the base's."""
    return write_checkpoint(tmp_path / "mtp", {"model-00002-of-00002.safetensors": layer(2, 7)},
                            CONFIG)


def assemble(base_dir, out_dir, mtp_dir=None, prefixes=None):
    plan = model.hybrid_plan(base_dir, out_dir, mtp_dir, prefixes)
    model.apply_plan(plan, out_dir)
    return plan


# --- the source declaration --------------------------------------------------------------

def test_a_hub_source_with_an_mtp_part():
    source = model.normalize_source({
        "base": {"repo": "Mapika/GLM-5.2-NVFP4", "revision": "a" * 40},
        "mtp": {"repo": "sant1an/GLM-5.2-NVFP4-MTP", "revision": "main",
                "layer_prefix": "model.layers.78."}})
    assert source["hybrid"] is True
    assert source["base"] == {"repo": "Mapika/GLM-5.2-NVFP4", "revision": "a" * 40}
    assert source["mtp"]["layer_prefixes"] == ["model.layers.78."]
    assert model.is_pinned(source["base"]) and not model.is_pinned(source["mtp"])
    assert model.store_name(source["base"]) == "Mapika--GLM-5.2-NVFP4@" + "a" * 40


def test_a_path_source_on_the_controller():
    source = model.normalize_source({"base": {"path": "/data/glm/", "on": "controller"}})
    assert source == {"base": {"path": "/data/glm", "on": "controller"}, "mtp": None,
                      "hybrid": False}
    assert model.normalize_source({"base": {"path": "/m"}})["base"]["on"] == "head"
    assert model.normalize_source(None) is None


@pytest.mark.parametrize("source, key, words", [
    ([], "recipe_model_source", "not a mapping"),
    ({"mtp": {"path": "/m"}}, "recipe_model_source", "no base part"),
    ({"base": {"path": "/m"}, "draft": {}}, "recipe_model_source.draft", "not a part"),
    ({"base": {"repo": "a/b", "path": "/m"}}, "recipe_model_source.base", "exactly one"),
    ({"base": {}}, "recipe_model_source.base", "exactly one"),
    ({"base": {"repo": "no-owner", "revision": "main"}}, "recipe_model_source.base.repo",
     "not a Hugging Face repository"),
    ({"base": {"repo": "a/b"}}, "recipe_model_source.base.revision", "not a revision"),
    ({"base": {"repo": "a/b", "revision": "ma in"}}, "recipe_model_source.base.revision",
     "not a revision"),
    ({"base": {"path": "relative"}}, "recipe_model_source.base.path", "absolute"),
    ({"base": {"path": "/m", "on": "worker"}}, "recipe_model_source.base.on", "head or controller"),
    ({"base": {"path": "/m", "revision": "x"}}, "recipe_model_source.base.revision", "repo only"),
    ({"base": {"repo": "a/b", "revision": "x", "on": "head"}}, "recipe_model_source.base.on",
     "path only"),
    ({"base": {"path": "/m", "layer_prefix": "model.layers.2."}},
     "recipe_model_source.base.layer_prefix", "not a key"),
    ({"base": {"path": "/m"}, "mtp": {"path": "/n", "layer_prefix": "model.layers.2"}},
     "recipe_model_source.mtp.layer_prefix", "not a weight-name prefix"),
    ({"base": {"path": "/m", "include": "*.json"}}, "recipe_model_source.base.include",
     "glob patterns"),
])
def test_bad_sources_name_the_key_and_the_fix(source, key, words):
    with pytest.raises(model.SourceError) as err:
        model.normalize_source(source)
    assert err.value.key == key and words in str(err.value) and err.value.fix


# --- hybrid assembly ---------------------------------------------------------------------

def test_assembly_links_the_base_adds_the_mtp_shard_and_merges_the_index(base, mtp, tmp_path):
    out = str(tmp_path / "hybrid")
    plan = assemble(base, out, mtp)
    assert plan["changed"] and plan["mtp_tensors"] == 2 and plan["replaced"] == []
    # base files are hard links: no byte copied
    for name in ("config.json", "tokenizer.json", "model-00001-of-00002.safetensors"):
        assert os.path.samefile(os.path.join(base, name), os.path.join(out, name))
    # the MTP shard's name is the base's: it joins under another name
    index = ckpt.load_index(out)
    assert index["weight_map"][MTP + "self_attn.o_proj.weight"] == \
        "mtp-model-00002-of-00002.safetensors"
    assert index["weight_map"]["model.layers.1.self_attn.o_proj.weight"] == \
        "model-00002-of-00002.safetensors"
    assert os.path.samefile(os.path.join(mtp, "model-00002-of-00002.safetensors"),
                            os.path.join(out, "mtp-model-00002-of-00002.safetensors"))
    # the base's own index is untouched; the merged one has every tensor, total_size right
    assert MTP + "self_attn.o_proj.weight" not in ckpt.load_index(base)["weight_map"]
    found = ckpt.tensors(out)
    assert set(found) == set(index["weight_map"])
    assert index["metadata"]["total_size"] == sum(t["bytes"] for t in found.values())
    # what preflight's checkpoint check then says: complete, MTP layer there
    assert ckpt.check(out, {"mtp": True}) == []


def test_a_second_assembly_changes_nothing(base, mtp, tmp_path):
    out = str(tmp_path / "hybrid")
    assemble(base, out, mtp)
    again = model.hybrid_plan(base, out, mtp)
    assert again["changed"] is False and again["actions"] == [] and again["extra"] == []


def test_an_interrupted_assembly_finishes(base, mtp, tmp_path):
    out = str(tmp_path / "hybrid")
    assemble(base, out, mtp)
    os.unlink(os.path.join(out, "mtp-model-00002-of-00002.safetensors"))
    os.unlink(os.path.join(out, ckpt.INDEX))
    plan = model.hybrid_plan(base, out, mtp)
    assert sorted(a["rel"] for a in plan["actions"]) == [
        ckpt.INDEX, "mtp-model-00002-of-00002.safetensors"]
    model.apply_plan(plan, out)
    assert model.hybrid_plan(base, out, mtp)["changed"] is False


def test_the_base_tensors_of_the_mtp_layer_are_replaced_not_loaded_twice(tmp_path, mtp):
    # a base whose shard 2 holds layer 1 and a stale layer 2: that shard is rewritten without it
    shards = {"a.safetensors": layer(0), "b.safetensors": dict(layer(1), **layer(2, 1))}
    base = write_checkpoint(tmp_path / "base2", shards, CONFIG)
    out = str(tmp_path / "hybrid")
    plan = assemble(base, out, mtp)
    assert plan["replaced"] == sorted(layer(2))
    header = ckpt.read_header(os.path.join(out, "b.safetensors"))
    assert sorted(header["tensors"]) == sorted(layer(1))
    assert not os.path.samefile(os.path.join(base, "b.safetensors"),
                                os.path.join(out, "b.safetensors"))
    assert ckpt.check(out, {"mtp": True}) == []  # no tensor in two shards
    # the rewritten shard keeps the bytes of the tensors it keeps
    name = "model.layers.1.self_attn.o_proj.weight"
    src, dst = ckpt.read_header(os.path.join(base, "b.safetensors")), header
    with open(os.path.join(base, "b.safetensors"), "rb") as a, \
            open(os.path.join(out, "b.safetensors"), "rb") as b:
        a.seek(src["header_bytes"] + src["tensors"][name]["data_offsets"][0])
        b.seek(dst["header_bytes"] + dst["tensors"][name]["data_offsets"][0])
        assert a.read(32) == b.read(32)
    assert model.hybrid_plan(base, out, mtp)["changed"] is False


def test_the_prefix_comes_from_the_base_config_or_the_recipe(base, mtp, tmp_path):
    assert model.mtp_prefixes_for(base) == [MTP]
    assert model.mtp_prefixes_for(base, ["model.mtp.layers.0."]) == ["model.mtp.layers.0."]
    with open(os.path.join(base, "config.json"), "w") as handle:
        json.dump({"architectures": ["Foo"]}, handle)
    with pytest.raises(model.AssemblyError) as err:
        model.hybrid_plan(base, str(tmp_path / "out"), mtp)
    assert "layer_prefix" in err.value.fix
    assert model.hybrid_plan(base, str(tmp_path / "out"), mtp, [MTP])["mtp_tensors"] == 2


def test_refuses_an_mtp_part_without_the_mtp_layer(base, tmp_path):
    wrong = write_checkpoint(tmp_path / "wrong", {"x.safetensors": layer(1)})
    with pytest.raises(model.AssemblyError) as err:
        model.hybrid_plan(base, str(tmp_path / "out"), wrong)
    assert "model.layers.2.*" in str(err.value) and "MTP layer" in err.value.fix
    assert not os.path.exists(str(tmp_path / "out"))


def test_refuses_every_missing_layer_prefix(base, mtp, tmp_path):
    with pytest.raises(model.AssemblyError) as err:
        model.hybrid_plan(base, str(tmp_path / "out"), mtp, [MTP, "model.layers.3."])
    assert "model.layers.3.*" in str(err.value) and "model.layers.2.*" not in str(err.value)


def test_refuses_a_missing_mtp_shard(base, tmp_path):
    part = write_checkpoint(tmp_path / "part", {"m1.safetensors": layer(2),
                                                "m2.safetensors": {"x": data("U8", [1])}})
    os.unlink(os.path.join(part, "m1.safetensors"))
    with pytest.raises(model.AssemblyError) as err:
        model.hybrid_plan(base, str(tmp_path / "out"), part)
    assert "m1.safetensors" in str(err.value) and "refusing" in err.value.fix


def test_refuses_an_mtp_shard_without_the_tensors_its_index_names(base, tmp_path):
    part = write_checkpoint(tmp_path / "part", {"m1.safetensors": layer(2)})
    ckpt.write_safetensors(os.path.join(part, "m1.safetensors"),
                           {MTP + "self_attn.o_proj.weight": data("BF16", [4, 4])})
    with pytest.raises(model.AssemblyError) as err:
        model.hybrid_plan(base, str(tmp_path / "out"), part)
    assert "up_proj" in str(err.value)


def test_refuses_a_cut_short_mtp_shard(base, mtp, tmp_path):
    path = os.path.join(mtp, "model-00002-of-00002.safetensors")
    with open(path, "r+b") as handle:
        handle.truncate(os.path.getsize(path) - 10)
    with pytest.raises(model.AssemblyError) as err:
        model.hybrid_plan(base, str(tmp_path / "out"), mtp)
    assert "cut short" in str(err.value)


def test_refuses_to_assemble_into_the_base(base, mtp):
    with pytest.raises(model.AssemblyError) as err:
        model.hybrid_plan(base, base, mtp)
    assert "base part's own directory" in str(err.value)


def test_an_mtp_part_without_an_index_is_read_from_its_headers(base, tmp_path):
    part = write_checkpoint(tmp_path / "part", {"mtp.safetensors": layer(2)}, index=False)
    out = str(tmp_path / "out")
    plan = assemble(base, out, part)
    assert ckpt.load_index(out)["weight_map"][MTP + "self_attn.o_proj.weight"] == "mtp.safetensors"
    assert plan["mtp_tensors"] == 2


def test_a_plain_source_is_linked_whole_and_a_source_that_is_the_model_dir_is_left(base, tmp_path):
    out = str(tmp_path / "copy")
    plan = assemble(base, out)
    assert plan["index"] is None and len(plan["actions"]) == 5
    assert os.path.samefile(os.path.join(base, ckpt.INDEX), os.path.join(out, ckpt.INDEX))
    assert model.hybrid_plan(base, out)["changed"] is False
    assert model.hybrid_plan(base, base)["actions"] == []


def test_files_the_assembly_does_not_make_are_reported(base, mtp, tmp_path):
    out = str(tmp_path / "hybrid")
    assemble(base, out, mtp)
    with open(os.path.join(out, "notes.txt"), "w") as handle:
        handle.write("x")
    assert model.hybrid_plan(base, out, mtp)["extra"] == ["notes.txt"]


def test_describe_names_every_action(base, mtp, tmp_path):
    lines = model.describe(model.hybrid_plan(base, str(tmp_path / "o"), mtp))
    assert any(line.startswith("link mtp-model-00002") for line in lines)
    assert lines[-1].startswith("write model.safetensors.index.json")


def test_hard_links_fall_back_to_a_copy(base, tmp_path, monkeypatch):
    import errno as errnos

    def no_link(src, dst):
        raise OSError(errnos.EXDEV, "cross-device link")

    monkeypatch.setattr(model.os, "link", no_link)
    out = str(tmp_path / "copy")
    assemble(base, out)
    assert not os.path.samefile(os.path.join(base, "config.json"), os.path.join(out, "config.json"))
    assert model.hybrid_plan(base, out)["changed"] is False  # a copy with the same size and mtime


# --- what a node must receive ------------------------------------------------------------

def test_transfer_lists_missing_changed_and_extra_files(base, tmp_path):
    head = model_manifest.manifest(base)
    node = str(tmp_path / "node")
    assemble(base, node)
    assert model.transfer(head, model_manifest.manifest(node))["same"] is True
    os.unlink(os.path.join(node, "tokenizer.json"))
    os.unlink(os.path.join(node, "config.json"))
    with open(os.path.join(node, "config.json"), "w") as handle:
        json.dump(dict(CONFIG, num_hidden_layers=3), handle)
    with open(os.path.join(node, "stray.safetensors"), "w") as handle:
        handle.write("x")
    moved = model.transfer(head, model_manifest.manifest(node))
    assert moved["copy"] == ["config.json", "tokenizer.json"]
    assert moved["delete"] == ["stray.safetensors"]
    assert moved["bytes"] == head["files"]["config.json"]["size"] + 2
    assert moved["same"] is False


def test_transfer_catches_a_shard_of_another_checkpoint_by_its_header(base, tmp_path):
    head = model_manifest.manifest(base, hash_limit=0)
    node = write_checkpoint(tmp_path / "node", {
        "model-00001-of-00002.safetensors": dict(layer(0), **{
            "model.embed_tokens.weight": data("F16", [16, 4])}),
        "model-00002-of-00002.safetensors": layer(1)}, CONFIG,
        extra={"tokenizer.json": "{}"})
    moved = model.transfer(head, model_manifest.manifest(node, hash_limit=0))
    assert "model-00001-of-00002.safetensors" in moved["copy"]


def test_transfer_to_an_empty_node_moves_everything(base):
    head = model_manifest.manifest(base)
    moved = model.transfer(head, {})
    assert moved["copy"] == sorted(head["files"]) and moved["bytes"] == head["total_bytes"]


def test_head_parts_say_where_each_part_is_on_the_head():
    source = model.normalize_source({
        "base": {"repo": "Mapika/GLM-5.2-NVFP4", "revision": "main"},
        "mtp": {"path": "/data/mtp", "on": "controller"}})
    parts = model.head_parts(source, "/store")
    assert [(p["name"], p["kind"], p["dir"]) for p in parts] == [
        ("base", "hub", "/store/Mapika--GLM-5.2-NVFP4@main"),
        ("mtp", "controller", "/store/controller--mtp")]
    assert model.head_parts({"base": {"path": "/m"}}, "/store")[0]["dir"] == "/m"
    assert model.head_parts(None, "/store") == []
    with pytest.raises(model.SourceError):
        model.head_parts({"base": {"path": "/m"}}, "store")
    with pytest.raises(model.SourceError):
        model.head_parts({"base": {"repo": "x"}}, "/store")
