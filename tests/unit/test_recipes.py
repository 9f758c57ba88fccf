"""The recipes' rendered vllm serve command lines and environments against the published ones.

Every difference between what a recipe renders and what the published build ran must be
listed below with its reason; a new difference (or an explanation that no longer applies)
fails the test. Published sources (../shared/reference/spark-clusters.md section 6):
GLM-5.2: m9e/blackwell-llm-docker recipes/4x-spark-cluster/glm52-b12x-spark (serve.sh,
glm52-mtp1-dcp4-128k.env, launch-ray.sh); MiMo V2.5: tonyd2wild/MiMo-V2.5-Omni-3x-DGX-Spark-
TP-3-MTP recipe WORKING-mimo-v25-tp3-omni-1mctx-6seq-mtp2-audio-20260620.yaml.
"""
from __future__ import annotations

import json
import shlex

import pytest
import yaml

from ansible_collections.dgxspark.cluster.plugins.module_utils import cluster, recipe
from ansible_collections.dgxspark.cluster.plugins.module_utils.plan import engine
from ansible_collections.dgxspark.cluster.plugins.module_utils.plan.patches import PATCHES

from conftest import ROOT

GLM_PUBLISHED = r"""
--model /models --tokenizer /models --served-model-name glm-5.2 --trust-remote-code
--load-format auto --quantization modelopt_fp4 --distributed-executor-backend ray
--tensor-parallel-size 4 --decode-context-parallel-size 4 --dcp-comm-backend ag_rs
--dcp-kv-cache-interleave-size 1 --pipeline-parallel-size 1 --gpu-memory-utilization 0.915
--max-model-len 131072 --max-num-seqs 1 --max-num-batched-tokens 1024 --generation-config vllm
--hf-overrides '{"use_index_cache":true,"index_topk_pattern":"FFFSSS"}' --port 18089
--host 0.0.0.0 --no-enable-log-requests --max-cudagraph-capture-size 4
--kv-cache-memory-bytes 1810000000 --kv-cache-dtype fp8 --attention-backend B12X_MLA_SPARSE
--moe-backend flashinfer_cutlass
--speculative-config '{"model":"/models","method":"mtp","num_speculative_tokens":1,"moe_backend":"flashinfer_cutlass",""" \
    r""""draft_attention_backend":"B12X_MLA_SPARSE","draft_sample_method":"probabilistic"}'
"""

GLM_PUBLISHED_ENV = """
RAY_memory_usage_threshold=0.99 RAY_memory_monitor_refresh_ms=0 CUDA_DEVICE_ORDER=PCI_BUS_ID
CUDA_DEVICE_MAX_CONNECTIONS=32 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
SAFETENSORS_FAST_GPU=1 CUTE_DSL_ARCH=sm_121a VLLM_WORKER_MULTIPROC_METHOD=spawn
VLLM_USE_FLASHINFER_SAMPLER=1 VLLM_DISABLE_TP_MQ_BROADCASTER=1 VLLM_ENABLE_PCIE_ALLREDUCE=0
VLLM_HOST_IP=node HOST_IP=node VLLM_DCP_GLOBAL_TOPK=1 VLLM_DCP_SHARD_DRAFT=1
VLLM_KZ_TRIM_AFTER_LOAD=1 RAY_DEDUP_LOGS=0
"""

MIMO_PUBLISHED = r"""
--served-model-name MiMo-V2.5-NVFP4 --trust-remote-code --tensor-parallel-size 3
--pipeline-parallel-size 1 --distributed-executor-backend ray --load-format instanttensor
--hf-overrides '{"architectures":["MiMoV2OmniForCausalLM"]}'
--limit-mm-per-prompt '{"image":4,"video":1,"audio":1}' --mm-encoder-tp-mode data
--attention-backend triton_attn_diffkv --kv-cache-dtype fp8_e4m3 --gpu-memory-utilization 0.89
--max-model-len 1000000 --max-num-batched-tokens 8192 --max-num-seqs 6 --block-size 32
--enable-prefix-caching --enable-chunked-prefill
--speculative-config '{"method":"mtp","num_speculative_tokens":2}' --no-async-scheduling
--enable-auto-tool-choice --tool-call-parser mimo --reasoning-parser mimo --host 0.0.0.0
--port 8000
"""

MIMO_PUBLISHED_ENV = """
TORCH_CUDA_ARCH_LIST=12.1a PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
VLLM_MIMO_V2_TP3_VIRTUAL_HEADS=1 VLLM_NVFP4_GEMM_BACKEND=flashinfer-cutlass
VLLM_USE_FLASHINFER_MOE_FP4=1 VLLM_FLASHINFER_MOE_BACKEND=throughput
VLLM_USE_RAY_V2_EXECUTOR_BACKEND=0 VLLM_USE_RAY_COMPILED_DAG_OVERLAP_COMM=0
VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 VLLM_HOST_IP=node
"""

# The head's part of vLLM's Ray-free multi-node launch, which the recipes run by default
# (vllm_cluster_executor mp) where the published builds ran Ray.
MP_EXPLAINED = {
    "--distributed-executor-backend": "mp: vLLM's Ray-free multi-node launch, the collection's "
                                      "default (README); the published builds ran Ray, which "
                                      "a plan gets back with distributed_executor_backend: ray",
    "--nnodes": "the mp launch: one vllm serve per node",
    "--node-rank": "the mp launch: the head is node rank 0",
    "--master-addr": "the mp launch: the head's fabric identity address",
    "--master-port": "the mp launch: the head's rendezvous port (vllm_cluster_master_port)",
}

# Flag -> why the recipe differs from the published command line.
GLM_EXPLAINED = {
    **MP_EXPLAINED,
    "--model": "vllm serve takes the model positionally: /models/glm-5.2-nvfp4 (the model "
               "directory is mounted under its own name)",
    "--tokenizer": "defaults to the model directory, as published",
    "--host": "binds the head's inventory address (vllm_cluster_api_host), not 0.0.0.0",
    "--port": "8000 (vllm_cluster_api_port) instead of the published 18089",
    "--gpu-memory-utilization": "the KV pool is set by --kv-cache-memory-bytes alone (the "
                                "published build used it for the same reason); GMU varied "
                                "0.90-0.918 across the published files",
    "--dcp-kv-cache-interleave-size": "spelled --cp-kv-cache-interleave-size in vLLM 0.33 "
                                      "(same value 1)",
    "--cp-kv-cache-interleave-size": "vLLM 0.33's name of --dcp-kv-cache-interleave-size",
    "--hf-overrides": "use_index_cache and index_topk_pattern are options of the published "
                      "fork's DSA index cache; upstream vLLM 0.33 has no such config fields",
    "--attention-backend": "B12X_MLA_SPARSE exists only in the published fork; vLLM 0.33 picks "
                           "its sparse-MLA backend itself",
    "--speculative-config": "method and num_speculative_tokens as published; model defaults to "
                            "the target; moe_backend, draft_attention_backend and "
                            "draft_sample_method are fork-only keys",
}

# The default GLM recipe is the MTP3 plan of the follow-up post (section 14): the June command
# line with three speculative tokens and a capture cap with headroom.
GLM_MTP3_EXPLAINED = {
    **GLM_EXPLAINED,
    "--max-cudagraph-capture-size": "8 = 2 x (num_speculative_tokens + 1): headroom above N + 1, "
                                    "which fails startup on the author's build; 4 was the "
                                    "MTP1 plan's",
}
GLM_MTP4_EXPLAINED = {
    **GLM_EXPLAINED,
    "--max-cudagraph-capture-size": "16: the author's 10 = 2 x (N + 1) truncates to 8 on vLLM "
                                    "0.33's capture ladder; 16 keeps the headroom",
}

MIMO_EXPLAINED = {
    **MP_EXPLAINED,
    "--hf-overrides": "the published architectures override plus the virtual_heads marker: the "
                      "plan engine's padding (64/4 -> 96/6 full, 64/8 -> 96/12 SWA, experts "
                      "2048 -> 2304, dense 16384 -> 16416), which the shipped virtual-heads "
                      "patch reads; the published mod padded by its own rule behind "
                      "VLLM_MIMO_V2_TP3_VIRTUAL_HEADS=1",
    "--decode-context-parallel-size": "the plan states vLLM's default DCP 1 explicitly",
    "--host": "binds the head's inventory address (vllm_cluster_api_host), not 0.0.0.0",
    "--gpu-memory-utilization": "replaced by the explicit --kv-cache-memory-bytes 19521699840: "
                                "the 52,956-block pool that GMU 0.89 gave the published run "
                                "(3,127,938 tokens), so the plan engine can prove it",
    "--kv-cache-memory-bytes": "see --gpu-memory-utilization",
}

# Ray's own settings of the published Ray launches: the mp launch runs no Ray
# (vllm_cluster_ray_env sets them when the executor is ray).
RAY_ENV_EXPLAINED = {
    "RAY_memory_monitor_refresh_ms": "no Ray in the mp launch",
    "RAY_DEDUP_LOGS": "no Ray in the mp launch",
}

MIMO_ENV_EXPLAINED = {
    "VLLM_MIMO_V2_TP3_VIRTUAL_HEADS": "the published mod's switch; the shipped virtual-heads "
                                      "patch takes the plan engine's padding from "
                                      "--hf-overrides instead",
}

GLM_ENV_EXPLAINED = {
    **RAY_ENV_EXPLAINED,
    "CUTE_DSL_ARCH": "B12X (CuTe DSL) kernels of the published fork only",
    "VLLM_DCP_GLOBAL_TOPK": "fork-only DCP knob",
    "VLLM_DCP_SHARD_DRAFT": "fork-only DCP knob; the draft-dcp-inherit patch gives the draft "
                            "the target's DCP",
    "VLLM_KZ_TRIM_AFTER_LOAD": "the published image hook's switch (malloc_trim after load); "
                               "the image's shipped post-load-trim patch runs it unasked",
    "HOST_IP": "read only by the published launch scripts",
}


def flags(text):
    """Parse a command line into {flag: value} (True for a bare flag)."""
    words = shlex.split(text)
    out, i = {}, 0
    while i < len(words):
        word = words[i]
        if word.startswith("--"):
            if i + 1 < len(words) and not words[i + 1].startswith("--"):
                out[word] = words[i + 1]
                i += 2
                continue
            out[word] = True
        i += 1
    return out


def env_pairs(text):
    return dict(pair.split("=", 1) for pair in text.split())


def load(recipe):
    return yaml.safe_load((ROOT / "recipes/vars" / ("%s.yml" % recipe)).read_text())


def inputs(name, overrides=None):
    """The roles' inputs of a recipe, as site.yml takes them (module_utils/recipe.py)."""
    return recipe.inputs(load(name), overrides, {"collection_root": str(ROOT)})


def executor(data):
    """The recipe's executor as site.yml takes it (mp unless the plan says ray)."""
    return data["recipe_plan"].get("distributed_executor_backend", "mp")


def rendered(name):
    """The head's vllm serve command line as the vllm_cluster role renders it."""
    data, roles = load(name), inputs(name)
    model = "/models/" + roles["vllm_cluster_model_dir"].rsplit("/", 1)[1]
    launch = None
    if roles["vllm_cluster_executor"] == "mp" and data["recipe_plan"]["nodes"] > 1:
        launch = cluster.multi_node(data["recipe_plan"]["nodes"], 0, "10.20.0.11", 29501)
    argv = cluster.serve_argv(model, roles["vllm_cluster_engine_args"],
                              roles["vllm_cluster_served_model_name"], "10.99.0.11", 8000, launch)
    return argv, flags(cluster.shell_line(argv[3:]))


def same(a, b):
    if a == b:
        return True
    try:
        return json.loads(a) == json.loads(b)
    except (TypeError, ValueError):
        return False


def differences(ours, published):
    return {flag for flag in set(ours) | set(published)
            if flag not in ours or flag not in published or not same(ours[flag], published[flag])}


@pytest.mark.parametrize("recipe, published, explained", [
    ("glm52_mtp1", GLM_PUBLISHED, GLM_EXPLAINED),
    ("glm52", GLM_PUBLISHED, GLM_MTP3_EXPLAINED),
    ("glm52_mtp4", GLM_PUBLISHED, GLM_MTP4_EXPLAINED),
    ("mimo_v25", MIMO_PUBLISHED, MIMO_EXPLAINED),
    # site.yml's default plan is the published MiMo V2.5 TP3 / MTP2 plan.
    ("site", MIMO_PUBLISHED, MIMO_EXPLAINED),
])
def test_serve_command_matches_the_published_one_or_says_why(recipe, published, explained):
    argv, ours = rendered(recipe)
    assert argv[:3] == ["vllm", "serve", "/models/" + load(recipe)["recipe_model_dir"].rsplit(
        "/", 1)[1]]
    diff = differences(ours, flags(published))
    assert diff == set(explained), (
        "unexplained: %s; explained but equal: %s" % (sorted(diff - set(explained)),
                                                      sorted(set(explained) - diff)))


@pytest.mark.parametrize("name, tokens, cap", [("glm52_mtp1", 1, "4"), ("glm52", 3, "8"),
                                               ("glm52_mtp4", 4, "16")])
def test_glm_speculative_config_keeps_the_published_method_and_tokens(name, tokens, cap):
    dummy, ours = rendered(name)
    spec = json.loads(ours["--speculative-config"])
    published = json.loads(flags(GLM_PUBLISHED)["--speculative-config"])
    assert {"method": published["method"], "num_speculative_tokens": tokens} == spec
    assert ours["--max-cudagraph-capture-size"] == cap
    # the capture cap leaves headroom above num_speculative_tokens + 1 (section 14)
    assert int(cap) >= 2 * (tokens + 1)


@pytest.mark.parametrize("name", ["glm52", "glm52_mtp4", "glm52_mtp1"])
def test_glm_recipes_carry_the_author_s_build(name):
    """The draft fix, the post-load trim and the NCCL channel narrowing in every GLM plan."""
    roles = inputs(name)
    assert set(roles["vllm_image_patches"]) == {"draft-dcp-inherit", "post-load-trim"}
    env = roles["vllm_cluster_env"]
    assert (env["NCCL_MIN_NCHANNELS"], env["NCCL_MAX_NCHANNELS"]) == ("4", "4")
    plan = roles["preflight_plan"]
    assert (plan["tensor_parallel_size"], plan["decode_context_parallel_size"],
            plan["max_model_len"], plan["kv_cache_memory_bytes"]) == (4, 4, 131072, 1810000000)


def test_glm_default_is_mtp3_and_its_verdict_is_clean_of_capture_findings():
    result = engine.evaluate(dict(inputs("glm52")["preflight_plan"],
                                  model_config=str(ROOT / load("glm52")["recipe_model_profile"])))
    assert result["satisfiable"] and result["plan"]["num_speculative_tokens"] == 3
    found = {w["rule"] for w in result["warnings"]}
    assert not found & {"cudagraph_truncated", "cudagraph_decode_coverage",
                        "dcp_mtp_draft_inherit"}, result["warnings"]
    assert result["kv_cache"]["tokens"] == 132096  # the published pool, as MTP1 logged
    # the author's MTP4 cap of 10 is off vLLM 0.33's ladder: truncated, with a warning
    peak = inputs("glm52_mtp4", {"dgxspark_plan": {"max_cudagraph_capture_size": 10}})
    result = engine.evaluate(dict(peak["preflight_plan"], model_config=str(
        ROOT / load("glm52")["recipe_model_profile"])))
    assert "cudagraph_truncated" in {w["rule"] for w in result["warnings"]}


@pytest.mark.parametrize("recipe, published, explained", [
    ("glm52", GLM_PUBLISHED_ENV, GLM_ENV_EXPLAINED),
    ("glm52_mtp4", GLM_PUBLISHED_ENV, GLM_ENV_EXPLAINED),
    ("glm52_mtp1", GLM_PUBLISHED_ENV, GLM_ENV_EXPLAINED),
    ("mimo_v25", MIMO_PUBLISHED_ENV, MIMO_ENV_EXPLAINED),
    ("site", MIMO_PUBLISHED_ENV, MIMO_ENV_EXPLAINED),
])
def test_environment_matches_the_published_one_or_says_why(recipe, published, explained):
    data = load(recipe)
    defaults = yaml.safe_load((ROOT / "roles/vllm_cluster/defaults/main.yml").read_text())
    # What a container gets: the node's fabric environment (VLLM_HOST_IP is per node), Ray's
    # settings when the executor is Ray, and the recipe's environment.
    ours = {"VLLM_HOST_IP": "node"}
    if executor(data) == "ray":
        ours.update(defaults["vllm_cluster_ray_env"])
    ours.update(data["recipe_env"])
    published = env_pairs(published)
    missing = {k for k in published if k not in ours}
    assert missing == set(explained), "unexplained missing: %s" % sorted(missing - set(explained))
    for key in set(published) & set(ours):
        assert ours[key] == published[key], key


RECIPES = ["glm52", "glm52_mtp4", "glm52_mtp1", "mimo_v25", "mimo_v25_pp3", "site", "tiny", "tiny_mimo"]


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_plan_passes_preflight_on_its_image(name):
    """What site.yml's preflight checks: the plan with the build profile and the patches of
    the image the recipe builds, every patch shipped for the image's vLLM release."""
    roles = inputs(name)
    plan = roles["preflight_plan"]
    # one verdict: the build profile and patches are the image's, in every role's input
    assert plan["vllm_build"] == roles["vllm_image_build_profile"] == roles["preflight_image_build"]
    assert plan["vllm_patches"] == sorted(roles["vllm_image_patches"])
    release = "0.32.0" if name.startswith("tiny") else "0.33.0"
    for pid in roles["vllm_image_patches"]:
        assert PATCHES[pid]["shipped"], pid
        assert (ROOT / "roles/vllm_image/files/patches" / pid / ("%s.patch" % release)).is_file()
    result = engine.evaluate(dict(plan, model_config=roles["preflight_fallback_model_config"]))
    assert result["satisfiable"], result["violations"]
    assert not result["patches"]["missing"]


def test_site_s_default_plan_is_the_published_mimo_tp3_mtp2_plan():
    assert (ROOT / "recipes/vars/site.yml").resolve() == (ROOT / "recipes/vars/mimo_v25.yml")
    plan = load("site")["recipe_plan"]
    assert (plan["tensor_parallel_size"], plan["pipeline_parallel_size"], plan["virtual_heads"],
            plan["speculative_config"]) == (3, 1, True, {"method": "mtp",
                                                         "num_speculative_tokens": 2})
    assert load("mimo_v25_pp3")["recipe_plan"]["pipeline_parallel_size"] == 3


def test_mimo_padding_reaches_vllm_as_hf_overrides():
    dummy, ours = rendered("mimo_v25")
    overrides = json.loads(ours["--hf-overrides"])
    assert overrides["architectures"] == ["MiMoV2OmniForCausalLM"]
    assert overrides["virtual_heads"] == {"tensor_parallel_size": 3, "padding": {
        "num_attention_heads": [64, 96], "num_key_value_heads": [4, 6],
        "swa_num_attention_heads": [64, 96], "swa_num_key_value_heads": [8, 12],
        "moe_intermediate_size": [2048, 2304], "intermediate_size": [16384, 16416]}}
    # host preflight is told the same padding, to compare with the head's model
    assert inputs("mimo_v25")["preflight_engine_padding"] == {"virtual_heads": overrides["virtual_heads"]}
    # Without the padding a virtual-heads plan is not rendered at all.
    data = load("mimo_v25")
    with pytest.raises(ValueError, match="virtual_heads"):
        cluster.engine_args(data["recipe_plan"], data["recipe_serve_args"])
    # Without virtual heads (the PP3 plan) nothing is padded and preflight expects nothing.
    assert "virtual_heads" not in rendered("mimo_v25_pp3")[1]["--hf-overrides"]
    assert inputs("mimo_v25_pp3")["preflight_engine_padding"] is None


PUBLISHED_GLM = "glm52-b12x-eldritch"


@pytest.mark.parametrize("name, overrides, rule", [
    ("glm52", {"dgxspark_plan": {"speculative_config": {"method": "mtp",
                                                        "num_speculative_tokens": 4},
                                 "max_cudagraph_capture_size": 5,
                                 "decode_context_parallel_size": 1},
               "dgxspark_image_build_profile": PUBLISHED_GLM}, "cudagraph_no_valid_sizes"),
    ("glm52", {"dgxspark_plan": {"speculative_config": {"method": "mtp",
                                                        "num_speculative_tokens": 3}},
               "dgxspark_image_build_profile": PUBLISHED_GLM, "dgxspark_image_patches": []},
     "dcp_mtp_draft_inherit"),
    ("glm52", {"dgxspark_plan": {"tensor_parallel_size": 1, "pipeline_parallel_size": 3,
                                 "nodes": 3, "decode_context_parallel_size": 1},
               "dgxspark_image_build_profile": PUBLISHED_GLM}, "pp_mtp"),
    ("mimo_v25", {"dgxspark_plan": {"virtual_heads": False}}, "attention_heads_tp"),
    ("mimo_v25", {"dgxspark_image_patches": ["sink-padding"]}, "virtual_heads_patches"),
])
def test_known_bad_variants_fail_preflight(name, overrides, rule):
    roles = inputs(name, overrides)
    result = engine.evaluate(dict(roles["preflight_plan"],
                                  model_config=roles["preflight_fallback_model_config"]))
    assert not result["satisfiable"]
    assert rule in {v["rule"] for v in result["violations"]}, result["violations"]


@pytest.mark.parametrize("name", RECIPES)
def test_site_serve_args_are_consistent_with_its_plan(name):
    inputs(name)
