"""Virtual heads on a real engine: the tiny MiMo, padded at TP3, computes what it computes at TP1.

The lab's engine is vLLM's CPU build (playbooks/lab_engine.yml builds and caches it, and makes
the tiny models with their one-process TP1 references, with and without MTP2). The lab's tiny
MiMo (recipes/models/dgxspark-tiny-mimo) has MiMo V2's GQA grouping on full and
sliding-window layers with heads TP 3 does not divide, attention sinks, experts and a dense MLP
whose widths need padding at TP3, a vocabulary 3 does not divide, and an MTP module. Every run
here is at TP3 in a throw-away nspawn overlay of the engine with:

* the shipped image patches of the engine's release applied with ``patch --forward`` to copies
  of the engine's vllm/ files, bound over the originals (what the vllm_image role does to a
  base image);
* the padding the plan engine computes for the lab recipe (recipes/vars/tiny_mimo.yml) handed
  to vLLM as ``hf_overrides`` (what the vllm_cluster role renders into --hf-overrides);
* uninitialised memory poisoned: torch's deterministic mode fills torch.empty with NaN. On a
  CPU, fresh allocations are zero pages, so a pad the patches forgot to zero would look right
  here by luck (on a GPU it is garbage); poisoned, a forgotten pad is NaN.

One process group (vLLM's mp executor) must return the TP1 reference's greedy tokens with
logprobs within 1e-4 and the KV-cache size the plan engine predicts (pad heads included). The
lab recipe launched as the vllm_cluster role launches it (one ``vllm serve`` per node rank,
MTP2), its three ranks on one host, must serve the same tokens with the TP1 draft's
acceptance. Each of the three fixes, removed from the patched sources, makes the run fail for
its reason.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess

import pytest
import yaml

from ansible_collections.dgxspark.cluster.plugins.module_utils import cluster
from ansible_collections.dgxspark.cluster.plugins.module_utils import recipe as recipes
from ansible_collections.dgxspark.cluster.plugins.module_utils.plan import engine as plan_engine

from conftest import ROOT
from lab_helpers import needs_root, play

pytestmark = pytest.mark.lab

PATCH_DIR = ROOT / "roles/vllm_image/files/patches"
LAB_DEFAULTS = yaml.safe_load((ROOT / "roles/lab/defaults/main.yml").read_text())
RELEASE = LAB_DEFAULTS["lab_engine_package"].split("==")[1]
RECIPE = yaml.safe_load((ROOT / "recipes/vars/tiny_mimo.yml").read_text())
MODEL = "dgxspark-tiny-mimo"
REFERENCE = "dgxspark-reference.json"
SITE = "/usr/local/lib/python3.11/dist-packages"
TOLERANCE = 1e-4
# The run's own limits (smaller than the recipe's 1K context: the prompts are short).
MAX_MODEL_LEN = 256
KV_BYTES = 64 * 1024 * 1024
POISON = ("import torch\n"
          "torch.use_deterministic_algorithms(True, warn_only=True)\n"
          "torch.utils.deterministic.fill_uninitialized_memory = True\n")

# Each fix, removed: (file, the patched text, the text without the fix, how often).
FAULTS = {
    # moe-zero-fill without its zero fill: the expert tail past the checkpoint's width keeps
    # what the allocation held.
    "no-zero-fill": [("vllm/model_executor/layers/fused_moe/routed_experts.py",
                      "        expert_data.zero_()\n", "", 1)],
    # sink-padding sized 21-style: each rank narrows the checkpoint's sinks by
    # total // TP (32 // 3 = 10 here, 64 // 3 = 21 on MiMo V2.5), not by its padded heads.
    "sinks-21-style": [
        (path, "heads_per_rank = param.numel()",
         "heads_per_rank = loaded_weight.shape[0] // tp_size", 1)
        for path in ("vllm/model_executor/models/mimo_v2.py",
                     "vllm/model_executor/models/mimo_v2_mtp.py")],
    # virtual-heads without zero pad heads: the pad heads' q/k/v rows keep what the
    # allocation held.
    "pad-heads-not-zero": [(
        "vllm/model_executor/parameter.py",
        "                param_data, loaded_weight, self.output_dim, shard_id_int * shard_size\n"
        "            ).zero_()\n",
        "                param_data, loaded_weight, self.output_dim, shard_id_int * shard_size\n"
        "            )\n", 1)],
}


@pytest.fixture(scope="module")
def lab_engine(tmp_path_factory):
    """The engine's root file system and the tiny MiMo's directory (built and cached)."""
    needs_root()
    tmp = tmp_path_factory.mktemp("engine")
    status, runner = play(tmp, "playbooks/lab_engine.yml")
    assert status == "successful", runner.stdout.read()[-3000:]
    said = [e["event_data"]["res"]["msg"] for e in runner.events
            if e.get("event") == "runner_on_ok"
            and e["event_data"].get("task") == "Engine | Say where they are"]
    paths = dict(line.split(": ", 1) for line in said[0])
    model = os.path.join(paths["tiny models"], MODEL)
    with open(os.path.join(model, REFERENCE)) as handle:
        reference = json.load(handle)
    return {"rootfs": paths["engine root file system"], "model": model,
            "reference": reference, "tmp": tmp}


def patched_sources(lab_engine, dest, fault=None):
    """The engine's vllm/ files that the recipe's patches touch, patched (and one fix removed)."""
    patches = [PATCH_DIR / pid / ("%s.patch" % RELEASE)
               for pid in sorted(RECIPE["recipe_image"]["patches"])]
    site = os.path.join(lab_engine["rootfs"], SITE.lstrip("/"))
    touched = sorted({path for patch in patches
                      for path in re.findall(r"(?m)^\+\+\+ b/(\S+)", patch.read_text())})
    for path in touched:
        os.makedirs(os.path.join(dest, os.path.dirname(path)), exist_ok=True)
        shutil.copyfile(os.path.join(site, path), os.path.join(dest, path))
    for patch in patches:
        done = subprocess.run(["patch", "--forward", "--batch", "-p1", "-d", str(dest), "-i",
                               str(patch)], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
    for path, before, after, count in FAULTS.get(fault, []):
        text = open(os.path.join(dest, path)).read()
        assert text.count(before) == count, "fault %s: %r not in %s" % (fault, before, path)
        with open(os.path.join(dest, path), "w") as handle:
            handle.write(text.replace(before, after))
    return touched


def padding(**plan):
    """The plan engine's evaluation of the lab recipe (with ``plan``'s changes)."""
    result = plan_engine.evaluate(dict(
        RECIPE["recipe_plan"], model_config=str(ROOT / RECIPE["recipe_model_profile"]),
        vllm_build=RECIPE["recipe_image"]["build_profile"],
        vllm_patches=RECIPE["recipe_image"]["patches"], **plan))
    assert result["satisfiable"], result["violations"]
    return result


def container(lab_engine, name, command, fault=None, env=None, private_network=False):
    """Run ``command`` in the engine's root file system (throw-away overlay) with the patched
    files bound over the engine's, uninitialised memory poisoned; /work is ``name``'s work
    directory, /model the tiny MiMo. Returns the output (the engine's log)."""
    work = lab_engine["tmp"] / name
    touched = patched_sources(lab_engine, work / "src", fault)
    (work / "poison").mkdir(parents=True, exist_ok=True)
    (work / "poison" / "sitecustomize.py").write_text(POISON)
    machine = ("dgxspark-vh-%d-%s" % (os.getpid(), name))[:60]
    propagate = "/run/systemd/nspawn/propagate/" + machine
    shutil.rmtree(propagate, ignore_errors=True)
    argv = ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--as-pid2",
            "--volatile=overlay", "-M", machine, "-D", lab_engine["rootfs"],
            "--bind=%s:/work" % work, "--bind-ro=%s:/model" % lab_engine["model"],
            "--bind-ro=%s:/lab_models.py" % (ROOT / "roles/lab/files/lab_models.py"),
            "--bind-ro=%s:/serve_ranks.py" % (ROOT / "tests/lab/serve_ranks.py")]
    if private_network:
        argv.append("--private-network")
    argv += ["--bind-ro=%s:%s/%s" % (work / "src" / path, SITE, path) for path in touched]
    variables = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/root",
                 "VLLM_NO_USAGE_STATS": "1", "PYTHONPATH": "/work/poison"}
    variables.update(RECIPE["recipe_env"])
    variables.update(env or {})
    argv += ["env", "-i"] + ["%s=%s" % item for item in sorted(variables.items())] + command
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=1200, check=False)
    finally:
        shutil.rmtree(propagate, ignore_errors=True)
    log = done.stdout + done.stderr
    (work / "engine.log").write_text(log)
    assert done.returncode == 0, log[-4000:]
    return log


def tp3(lab_engine, name, fault=None):
    """The tiny MiMo at TP3 in one vLLM process group (mp executor), padded: (result, log)."""
    reference = lab_engine["reference"]
    run = {"prompt_token_ids": [r["prompt_token_ids"] for r in reference["requests"]],
           "max_tokens": reference["max_tokens"], "dtype": reference["dtype"],
           "max_model_len": MAX_MODEL_LEN, "kv_cache_memory_bytes": KV_BYTES,
           "engine": {"tensor_parallel_size": 3, "distributed_executor_backend": "mp",
                      "hf_overrides": padding()["padding"]["hf_overrides"]}}
    work = lab_engine["tmp"] / name
    work.mkdir(parents=True)
    (work / "run.json").write_text(json.dumps(run))
    log = container(lab_engine, name, ["python3", "/lab_models.py", "generate", "/model",
                                       "/work/run.json", "/work/out.json"], fault)
    return json.loads((work / "out.json").read_text()), log


def worst(result, reference):
    """Largest logprob difference from the reference over every generated token."""
    return max(abs(a - b) for ours, ref in zip(result["requests"], reference["requests"])
               for a, b in zip(ours["logprobs"], ref["logprobs"]))


def same_tokens(result, reference):
    return [r["token_ids"] for r in result["requests"]] == \
        [r["token_ids"] for r in reference["requests"]]


def logged_kv_tokens(log):
    found = re.findall(r"CPU KV cache size: ([0-9,]+) tokens", log)
    assert found, "vLLM logged no KV-cache size"
    return int(found[-1].replace(",", ""))


def test_padded_tp3_returns_the_tp1_reference(lab_engine):
    reference = lab_engine["reference"]
    result, log = tp3(lab_engine, "equivalence")
    assert "Virtual heads for tensor parallel size 3" in log
    assert same_tokens(result, reference)
    assert worst(result, reference) <= TOLERANCE
    # The pad KV heads cost what the plan engine says (vLLM's own figure, TP3, padded).
    assert logged_kv_tokens(log) == padding(
        max_model_len=MAX_MODEL_LEN, kv_cache_memory_bytes=KV_BYTES,
        speculative_config=None)["kv_cache"]["tokens"]
    print("TP3 padded vs TP1: same tokens, max logprob difference %.2g" % worst(result, reference))


def test_the_lab_recipe_s_launch_serves_the_reference_with_mtp(lab_engine):
    """recipes/vars/tiny_mimo.yml as the vllm_cluster role launches it (the plan engine's
    padding in --hf-overrides, MTP2, one vllm serve per node rank, the workers headless), its
    three node ranks on one host: the reference tokens, and the TP1 draft's acceptance."""
    reference = lab_engine["reference"]
    tp1 = reference["speculative"]
    assert tp1["same_tokens"], "the TP1 reference with MTP changed the tokens"
    assert tp1["config"] == RECIPE["recipe_plan"]["speculative_config"]
    # the head's arguments as site.yml renders them (the recipe lookup's inputs)
    args = recipes.inputs(RECIPE, None, {"collection_root": str(ROOT)})["vllm_cluster_engine_args"]
    nodes = RECIPE["recipe_plan"]["nodes"]
    ranks = [cluster.serve_argv("/model", args, RECIPE["recipe_served_model_name"],
                                "127.0.0.1", 18000,
                                cluster.multi_node(nodes, rank, "127.0.0.1", 29501))
             for rank in range(nodes)]
    work = lab_engine["tmp"] / "launch"
    work.mkdir(parents=True)
    (work / "run.json").write_text(json.dumps({
        "ranks": ranks, "url": "http://127.0.0.1:18000", "timeout": 900,
        "model": RECIPE["recipe_served_model_name"], "reference": "/model/" + REFERENCE}))
    container(lab_engine, "launch", ["python3", "/serve_ranks.py", "/work/run.json",
                                     "/work/out.json"],
              env={"GLOO_SOCKET_IFNAME": "lo", "VLLM_HOST_IP": "127.0.0.1"},
              private_network=True)
    served = json.loads((work / "out.json").read_text())
    assert same_tokens(served, reference)
    assert worst(served, reference) <= TOLERANCE
    head = (work / "rank0.log").read_text()
    assert "Virtual heads for tensor parallel size 3" in head
    # What the verify role checks in the lab: the KV size the head logs, as planned.
    assert logged_kv_tokens(head) == padding()["kv_cache"]["tokens"]
    ours = served["speculative"]
    # The padded draft drafts what the TP1 draft drafts: the same acceptance, position by
    # position (the tiny MiMo's MTP module is made to agree with the model, so most drafts
    # are accepted and a draft that computed differently would show).
    for key in ("drafts", "draft_tokens", "accepted_tokens", "accepted_per_position"):
        assert ours[key] == tp1[key], (key, ours, tp1)
    assert ours["accepted_tokens"] > ours["draft_tokens"] / 2
    print("launch at TP3 with MTP2: same tokens, max logprob difference %.2g; acceptance %d of "
          "%d draft tokens, per position %s (TP1: the same)" % (
              worst(served, reference), ours["accepted_tokens"], ours["draft_tokens"],
              ours["accepted_per_position"]))


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_removing_a_fix_fails_for_its_reason(lab_engine, fault):
    reference = lab_engine["reference"]
    result, dummy = tp3(lab_engine, fault, fault=fault)
    logprobs = [x for r in result["requests"] for x in r["logprobs"]]
    if fault in ("no-zero-fill", "pad-heads-not-zero"):
        # The pad kept the poisoned allocation: NaN flows into every logit.
        assert all(math.isnan(x) for x in logprobs), logprobs
    else:
        # Wrong sink values on real heads: finite numbers, but not the model's.
        assert not any(math.isnan(x) for x in logprobs)
        assert worst(result, reference) > 10 * TOLERANCE
