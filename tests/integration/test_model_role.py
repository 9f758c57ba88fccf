"""playbooks/model.yml (the model role with site.yml's recipe mapping) as Ansible runs it, with
ansible_runner, on one local node, against a local stand-in of the Hugging Face hub (the lab
and the tests have no hub): a hybrid checkpoint downloaded in two parts and assembled, a second
run that changes nothing, check mode that says what it would fetch and changes nothing, a
refused MTP part, a head path source, and a token that never reaches the output.

The copy to workers runs with two "nodes" that are both this machine, each with its own model
directory, over 127.0.0.1 (needs rsync and root); over a real fabric, the lab's cluster3
scenario runs it (molecule test -s cluster3).
"""
from __future__ import annotations

import itertools
import os
import shutil
import sys

import ansible_runner
import pytest
import yaml
from checkpoints import data, write_checkpoint
from fake_hub import FakeHub

from ansible_collections.dgxspark.cluster.plugins.module_utils import checkpoint as ckpt
from ansible_collections.dgxspark.cluster.plugins.module_utils import model_manifest
from conftest import ROOT

TOKEN = "hf_" + "Zq9" * 10
CONFIG = {"architectures": ["GlmMoeDsaForCausalLM"], "model_type": "glm_moe_dsa",
          "num_hidden_layers": 2, "num_nextn_predict_layers": 1}
_runs = itertools.count()


def layer(n, fill=0):
    return {"model.layers.%d.self_attn.o_proj.weight" % n: data("BF16", [4, 4], fill),
            "model.layers.%d.mlp.up_proj.weight" % n: data("U8", [8, 4], fill)}


@pytest.fixture
def repos(tmp_path):
    base = write_checkpoint(tmp_path / "hub/base", {
        "model-00001-of-00002.safetensors": layer(0, 1),
        "model-00002-of-00002.safetensors": layer(1, 2)}, CONFIG,
        extra={"tokenizer.json": "{}"})
    # the MTP repository also holds shards without the MTP layer: they are not downloaded
    mtp = write_checkpoint(tmp_path / "hub/mtp", {"model-00001-of-00001.safetensors": layer(2, 3),
                                                  "other.safetensors": layer(0, 4)}, CONFIG)
    return {"owner/base": base, "owner/mtp": mtp}


def play(tmp_path, source, check=False, endpoint="http://127.0.0.1:9", verbose=False):
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"sparks": {"hosts": {"spark1": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "ansible_become": False}}}}}}))
    extravars = {"dgxspark_recipe": "tiny", "dgxspark_model_source": source,
                 "model_dir": str(tmp_path / "models/m"), "model_store_dir": str(tmp_path / "store"),
                 "model_hf_endpoint": endpoint, "model_hf_token": TOKEN, "model_poll_interval": 1}
    private = tmp_path / ("runner%d" % next(_runs))
    private.mkdir()
    cmdline = " ".join((["--check", "--diff"] if check else []) + (["-vvv"] if verbose else []))
    return ansible_runner.run(
        private_data_dir=str(private), project_dir=str(ROOT),
        playbook=str(ROOT / "playbooks/model.yml"), inventory=str(inventory), extravars=extravars,
        envvars={"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}, cmdline=cmdline or None,
        quiet=True)


def changed(runner):
    return runner.stats["changed"].get("spark1", 0)


HYBRID = {"base": {"repo": "owner/base", "revision": "main"},
          "mtp": {"repo": "owner/mtp", "revision": "main"}}


def test_a_hybrid_from_the_hub_is_assembled_then_nothing_changes(tmp_path, repos):
    with FakeHub(repos, token=TOKEN) as hub:
        # check mode first: says what it would download, touches nothing
        checked = play(tmp_path, HYBRID, check=True, endpoint=hub.endpoint)
        assert checked.status == "successful", checked.stdout.read()
        assert not (tmp_path / "store").exists() and not (tmp_path / "models").exists()
        first = play(tmp_path, HYBRID, endpoint=hub.endpoint, verbose=True)
        out = first.stdout.read()
        assert first.status == "successful", out
        assert TOKEN not in out
        second = play(tmp_path, HYBRID, endpoint=hub.endpoint)
        assert second.status == "successful", second.stdout.read()
    model = str(tmp_path / "models/m")
    index = ckpt.load_index(model)
    assert index["weight_map"]["model.layers.2.self_attn.o_proj.weight"] == \
        "model-00001-of-00001.safetensors"
    assert ckpt.check(model, {"mtp": True}) == []
    assert not (tmp_path / "store/owner--mtp@main/other.safetensors").exists()
    assert (tmp_path / "store/owner--mtp@main/model-00001-of-00001.safetensors").exists()
    store = tmp_path / "store/owner--base@main"
    assert os.path.samefile(store / "model-00001-of-00002.safetensors",
                            os.path.join(model, "model-00001-of-00002.safetensors"))
    assert changed(first) > 0 and changed(second) == 0
    # the token went to the hub, never to the CDN the hub redirects to
    assert all(r[2] is None for r in hub.requests if r[0].startswith("localhost"))


def test_an_mtp_part_without_the_mtp_layer_is_refused(tmp_path, repos):
    """(Assembly refuses the same from files: tests/unit/test_model.py.)"""
    repos["owner/mtp"] = write_checkpoint(tmp_path / "hub/nomtp",
                                          {"x.safetensors": layer(1)}, CONFIG)
    with FakeHub(repos, token=TOKEN) as hub:
        runner = play(tmp_path, HYBRID, endpoint=hub.endpoint)
    out = runner.stdout.read()
    assert runner.status == "failed"
    # refused as soon as the MTP part's index is read (before any shard is downloaded)
    assert "the MTP part's index maps no tensor under model.layers.2.*" in out
    assert not (tmp_path / "models/m").exists()


def test_a_head_path_source_and_a_wrong_token(tmp_path, repos):
    runner = play(tmp_path, {"base": {"path": repos["owner/base"]}})
    assert runner.status == "successful", runner.stdout.read()
    assert os.path.samefile(os.path.join(repos["owner/base"], "config.json"),
                            str(tmp_path / "models/m/config.json"))
    with FakeHub(repos, token="hf_other") as hub:
        runner = play(tmp_path, HYBRID, endpoint=hub.endpoint)
    out = runner.stdout.read()
    assert runner.status == "failed" and "gated or private" in out and TOKEN not in out


def preflight(tmp_path, model_dir, *extra):
    """site.yml --tags preflight on one local node (no GPU, no image yet) with the tiny recipe."""
    import json as _json
    import subprocess

    inventory = tmp_path / "preflight.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"sparks": {"hosts": {"spark1": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "ansible_become": False, "preflight_require_gpu": False, "preflight_min_kernel": "3.0",
        "preflight_mem_available_floor_gib": 0,
        "preflight_controller_dir": str(tmp_path / "ctl")}}}}}}))
    plan = _json.dumps({"dgxspark_plan": {"nodes": 1, "tensor_parallel_size": 1},
                        "dgxspark_model_dir": model_dir})
    return subprocess.run(["ansible-playbook", "-i", str(inventory), str(ROOT / "site.yml"),
                           "-e", "dgxspark_recipe=tiny", "-e", plan] + list(extra),
                          capture_output=True, text=True, cwd=str(ROOT), timeout=600, check=False)


def test_preflight_names_a_missing_shard_of_the_heads_checkpoint(tmp_path):
    import json as _json

    config = _json.loads((ROOT / "recipes/models/dgxspark-tiny/config.json").read_text())
    model = write_checkpoint(tmp_path / "tiny", {
        "model-00001-of-00002.safetensors": {"model.embed_tokens.weight": data("F32", [4, 4])},
        "model-00002-of-00002.safetensors": layer(0)}, config)
    os.unlink(os.path.join(model, "model-00002-of-00002.safetensors"))
    proc = preflight(tmp_path, model, "--tags", "preflight")
    assert proc.returncode != 0
    assert "the index names 1 shard(s) that are not there: model-00002-of-00002.safetensors" \
        in proc.stdout, proc.stdout[-4000:]
    assert "fix: fetch the missing shard(s)" in proc.stdout


def test_without_a_source_the_model_must_be_on_the_head(tmp_path, repos):
    runner = play(tmp_path, None)
    out = runner.stdout.read()
    assert runner.status == "failed" and "has no %s/config.json" % (tmp_path / "models/m") in out
    os.makedirs(str(tmp_path / "models"))
    os.symlink(repos["owner/base"], str(tmp_path / "models/m"))
    runner = play(tmp_path, None)
    assert runner.status == "successful", runner.stdout.read()
    assert changed(runner) == 0


def free_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def two_nodes(tmp_path, source):
    """The head and one worker, both this machine (each its own model directory), the copy
    over 127.0.0.1 through the head's temporary rsync daemon."""
    hosts = {}
    for name in ("spark1", "spark2"):
        hosts[name] = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                       "ansible_become": False, "model_dir": str(tmp_path / name / "model"),
                       "model_run_dir": str(tmp_path / name / "run")}
    inventory = tmp_path / "two.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"sparks": {"hosts": hosts}}}}))
    private = tmp_path / ("runner%d" % next(_runs))
    private.mkdir()
    return ansible_runner.run(
        private_data_dir=str(private), project_dir=str(ROOT),
        playbook=str(ROOT / "playbooks/model.yml"), inventory=str(inventory),
        extravars={"dgxspark_recipe": "tiny", "dgxspark_model_source": source,
                   "model_head_address": "127.0.0.1", "model_rsync_port": free_port(),
                   "model_poll_interval": 1, "model_store_dir": str(tmp_path / "store")},
        envvars={"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}, quiet=True)


@pytest.mark.skipif(shutil.which("rsync") is None or os.geteuid() != 0,
                    reason="needs rsync and root (the daemon runs as root, as on a Spark)")
def test_a_worker_receives_only_what_it_lacks_over_the_heads_rsync_daemon(tmp_path, repos):
    source = {"base": {"path": repos["owner/base"]}, "mtp": {"path": repos["owner/mtp"]}}
    first = two_nodes(tmp_path, source)
    assert first.status == "successful", first.stdout.read()
    head, worker = str(tmp_path / "spark1/model"), str(tmp_path / "spark2/model")
    assert model_manifest.differences(model_manifest.manifest(head),
                                      model_manifest.manifest(worker)) == []
    assert ckpt.check(worker, {"mtp": True}) == []
    assert not os.path.exists(str(tmp_path / "spark1/run"))  # password and daemon gone
    second = two_nodes(tmp_path, source)
    assert second.status == "successful" and sum(second.stats["changed"].values()) == 0
    # one shard differs on the worker (same size), one file is extra: that shard only moves
    shard = os.path.join(worker, "model-00002-of-00002.safetensors")
    with open(shard, "r+b") as handle:
        handle.seek(os.path.getsize(shard) - 1)
        handle.write(b"\x5a")
    with open(os.path.join(worker, "stray.txt"), "w") as handle:
        handle.write("x")
    third = two_nodes(tmp_path, source)
    out = third.stdout.read()
    assert third.status == "successful", out
    assert "spark2: 1 file(s)" in out and "model-00002-of-00002.safetensors" in out
    assert not os.path.exists(os.path.join(worker, "stray.txt"))
    assert model_manifest.differences(model_manifest.manifest(head),
                                      model_manifest.manifest(worker)) == []
