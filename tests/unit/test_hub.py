"""The hub download (plugins/module_utils/hub.py) against a local stand-in of the hub."""
from __future__ import annotations

import os

import pytest
from checkpoints import data, write_checkpoint
from fake_hub import FakeHub

from ansible_collections.dgxspark.cluster.plugins.module_utils import hub

TOKEN = "hf_" + "s3cr3t" * 6


@pytest.fixture
def repo(tmp_path):
    return write_checkpoint(tmp_path / "repo", {
        "model-00001-of-00002.safetensors": {"a": data("U8", [4096], 1)},
        "model-00002-of-00002.safetensors": {"b": data("U8", [2048], 2)}},
        {"architectures": ["LlamaForCausalLM"]}, extra={"tokenizer.json": "{}"})


def fetch_all(fake, dest, include=None, token=TOKEN):
    listed = hub.listing(fake.endpoint, "owner/model", "main", token)
    files = hub.select(listed["files"], include)
    todo = hub.to_fetch(dest, files, hub.read_record(dest))
    for name in todo:
        hub.download(fake.endpoint, "owner/model", listed["commit"], name, dest, files[name], token)
    hub.write_record(dest, {"commit": listed["commit"], "files": files})
    return todo


def test_listing_resolves_the_commit_and_lists_sizes_and_hashes(repo):
    with FakeHub({"owner/model": repo}, token=TOKEN) as fake:
        listed = hub.listing(fake.endpoint, "owner/model", "main", TOKEN)
    assert listed["commit"] == "c" * 40
    shard = listed["files"]["model-00001-of-00002.safetensors"]
    assert shard["size"] == os.path.getsize(os.path.join(repo, "model-00001-of-00002.safetensors"))
    assert len(shard["sha256"]) == 64
    assert listed["files"]["config.json"]["sha256"] is None


def test_download_then_nothing_to_do(repo, tmp_path):
    dest = str(tmp_path / "dest")
    with FakeHub({"owner/model": repo}, token=TOKEN) as fake:
        assert len(fetch_all(fake, dest)) == 5
        for name in os.listdir(repo):
            with open(os.path.join(repo, name), "rb") as a, open(os.path.join(dest, name), "rb") as b:
                assert a.read() == b.read()
        assert fetch_all(fake, dest) == []


def test_the_token_never_reaches_another_host(repo, tmp_path):
    with FakeHub({"owner/model": repo}, token=TOKEN) as fake:
        fetch_all(fake, str(tmp_path / "dest"))
    hub_side = [r for r in fake.requests if r[0].startswith("127.0.0.1")]
    cdn_side = [r for r in fake.requests if r[0].startswith("localhost")]
    assert hub_side and cdn_side
    assert all(r[2] == "Bearer " + TOKEN for r in hub_side)
    assert all(r[2] is None for r in cdn_side)


def test_an_interrupted_download_resumes_with_a_range(repo, tmp_path):
    dest = str(tmp_path / "dest")
    name = "model-00001-of-00002.safetensors"
    with FakeHub({"owner/model": repo}, token=TOKEN) as fake:
        listed = hub.listing(fake.endpoint, "owner/model", "main", TOKEN)
        fake.cut_after = 1000
        with pytest.raises(Exception):
            hub.download(fake.endpoint, "owner/model", listed["commit"], name, dest,
                         listed["files"][name], TOKEN)
        assert hub.partial_bytes(dest, name) == 1000
        assert hub.to_fetch(dest, listed["files"], {}) == sorted(listed["files"])
        moved = hub.download(fake.endpoint, "owner/model", listed["commit"], name, dest,
                             listed["files"][name], TOKEN)
    assert moved == listed["files"][name]["size"] - 1000
    assert any(r[1].endswith(name) for r in fake.requests)
    with open(os.path.join(repo, name), "rb") as a, open(os.path.join(dest, name), "rb") as b:
        assert a.read() == b.read()


def test_a_corrupt_partial_file_fails_its_hash_and_is_removed(repo, tmp_path):
    dest = str(tmp_path / "dest")
    name = "model-00002-of-00002.safetensors"
    os.makedirs(os.path.join(dest, hub.PARTIAL))
    with open(os.path.join(dest, hub.PARTIAL, name), "wb") as handle:
        handle.write(b"\xff" * 100)
    with FakeHub({"owner/model": repo}, token=TOKEN) as fake:
        listed = hub.listing(fake.endpoint, "owner/model", "main", TOKEN)
        with pytest.raises(hub.HubError) as err:
            hub.download(fake.endpoint, "owner/model", listed["commit"], name, dest,
                         listed["files"][name], TOKEN)
    assert "SHA-256" in err.value.problem and "afresh" in err.value.fix
    assert hub.partial_bytes(dest, name) == 0


def test_a_file_of_another_blob_is_fetched_again(repo, tmp_path):
    dest = str(tmp_path / "dest")
    with FakeHub({"owner/model": repo}, token=TOKEN) as fake:
        fetch_all(fake, dest)
        record = hub.read_record(dest)
        record["files"]["model-00002-of-00002.safetensors"]["sha256"] = "0" * 64
        hub.write_record(dest, record)
        assert fetch_all(fake, dest) == ["model-00002-of-00002.safetensors"]


def test_include_selects_files_and_gitattributes_is_skipped():
    files = {".gitattributes": {}, "a.safetensors": {}, "config.json": {}, "README.md": {}}
    assert sorted(hub.select(files)) == ["README.md", "a.safetensors", "config.json"]
    assert sorted(hub.select(files, ["*.safetensors", "*.json"])) == ["a.safetensors", "config.json"]


@pytest.mark.parametrize("token, repo_id, words", [
    (None, "owner/model", "gated or private"),
    ("hf_wrong", "owner/model", "gated or private"),
    (TOKEN, "owner/other", "404"),
])
def test_hub_errors_say_what_and_the_fix_and_never_the_token(repo, token, repo_id, words):
    with FakeHub({"owner/model": repo}, token=TOKEN) as fake:
        with pytest.raises(hub.HubError) as err:
            hub.listing(fake.endpoint, repo_id, "main", token)
    assert words in str(err.value) and err.value.fix
    assert TOKEN not in str(err.value) and "hf_wrong" not in str(err.value)


def test_an_unreachable_hub():
    with pytest.raises(hub.HubError) as err:
        hub.listing("http://127.0.0.1:9", "owner/model", "main", TOKEN, timeout=2)
    assert "cannot reach" in err.value.problem and "path" in err.value.fix


def test_the_mtp_part_needs_only_the_shards_of_the_mtp_layer(tmp_path):
    config = {"architectures": ["GlmMoeDsaForCausalLM"], "model_type": "glm_moe_dsa",
              "num_hidden_layers": 2, "num_nextn_predict_layers": 1}
    repo = write_checkpoint(tmp_path / "mtp", {"a.safetensors": {"model.layers.0.w": data("U8", [4])},
                                               "b.safetensors": {"model.layers.2.w": data("U8", [4])}},
                            config)
    files = dict((n, {}) for n in os.listdir(repo))
    assert sorted(hub.mtp_files(repo, files)) == ["b.safetensors", "config.json",
                                                  "model.safetensors.index.json"]
    assert sorted(hub.mtp_files(repo, files, ["model.layers.0."]))[0] == "a.safetensors"
    with pytest.raises(hub.HubError) as err:
        hub.mtp_files(repo, files, ["model.layers.9."])
    assert "model.layers.9.*" in err.value.problem
    # without an index every shard is needed
    assert hub.mtp_files(repo, {"a.safetensors": {}, "b.safetensors": {}}) == \
        {"a.safetensors": {}, "b.safetensors": {}}
