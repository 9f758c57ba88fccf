"""The eugr recipe importer (module_utils/eugr.py) on recipes written from the published format
(tests/fixtures/eugr/, sources in its README): what each part of an eugr recipe becomes, what
is reported as not imported (never dropped silently), malformed recipes refused naming the
field, the value and the fix, and the imported recipes proven as site.yml's preflight proves
them (recipe.inputs and the plan engine's evaluate)."""
from __future__ import annotations

import ast
import copy

import pytest
import yaml

from ansible_collections.dgxspark.cluster.plugins.module_utils import eugr, recipe
from ansible_collections.dgxspark.cluster.plugins.module_utils.eugr import EugrError

from conftest import ROOT

FIXTURES = ROOT / "tests/fixtures/eugr"


def load(name):
    return yaml.safe_load((FIXTURES / ("%s.yaml" % name)).read_text())


def fields(converted):
    return [(item["field"], item["value"]) for item in converted["unmapped"]]


def proven(converted):
    return eugr.preflight(converted["recipe"], str(ROOT))


# -- the MiMo V2.5 TP3 recipe (tonyd2wild, eugr format) -------------------------------------

def test_mimo_tp3_becomes_the_virtual_heads_plan_and_passes_preflight():
    converted = eugr.convert(load("mimo_v25_tp3"), name="mimo_eugr")
    out = converted["recipe"]
    plan = out["recipe_plan"]
    assert plan == {
        "tensor_parallel_size": 3, "pipeline_parallel_size": 1,
        "distributed_executor_backend": "ray", "kv_cache_dtype": "fp8_e4m3",
        "max_model_len": 1000000, "max_num_batched_tokens": 8192, "max_num_seqs": 6,
        "block_size": 32, "enable_chunked_prefill": True,
        "speculative_config": {"method": "mtp", "num_speculative_tokens": 2},
        "async_scheduling": False, "virtual_heads": True, "allow_long_max_model_len": True,
        "nodes": 3}
    # the mod becomes the shipped patches, its switch is not copied
    assert out["recipe_image"] == {"build_profile": "vllm-0.33",
                                   "patches": ["virtual-heads", "moe-zero-fill", "sink-padding"]}
    assert "VLLM_MIMO_V2_TP3_VIRTUAL_HEADS" not in out["recipe_env"]
    assert out["recipe_served_model_name"] == "MiMo-V2.5-NVFP4"
    assert out["recipe_model_profile"] == "recipes/models/mimo-v2.5-nvfp4"
    assert out["recipe_model_dir"] == "/var/lib/dgxspark/models/mimo-v2.5-nvfp4"
    # the serve-only arguments as published, JSON values as mappings
    assert out["recipe_serve_args"]["hf_overrides"] == {"architectures": ["MiMoV2OmniForCausalLM"]}
    assert out["recipe_serve_args"]["limit_mm_per_prompt"] == {"image": 4, "video": 1, "audio": 1}
    assert out["recipe_serve_args"]["gpu_memory_utilization"] == 0.89
    # what could not be imported is listed, each with a reason and a fix
    assert fields(converted) == [
        ("mods", "mods/fix-prometheus-instrumentator-router"), ("mods", "mods/fix-mimo-v2-vllm"),
        ("mods", "mods/fix-modelopt-mixed-mxfp8"),
        ("container", "vllm-mimo-omni-mtp2-1m-audio-exp:20260620"),
        ("env.NCCL_IB_GID_INDEX", "3"),
        ("env.NCCL_IB_ADDR_RANGE", "192.168.100.0/24,192.168.101.0/24,192.168.102.0/24")]
    assert all(item["reason"] and item["fix"] for item in converted["unmapped"])
    notes = "\n".join(converted["notes"])
    for covered in ("mods/drop-caches", "mods/ray-keep-node-nccl-hca", "--host", "--port",
                    "VLLM_ALLOW_LONG_MAX_MODEL_LEN", "Ray-free"):
        assert covered in notes
    verdict = proven(converted)
    assert verdict["satisfiable"], verdict["violations"]
    # the padding reaches vLLM as the shipped patches read it
    assert "virtual_heads" in verdict["engine_args"]["hf_overrides"]
    assert verdict["env"]["VLLM_ALLOW_LONG_MAX_MODEL_LEN"] == "1"


def test_mimo_tp3_plan_is_the_shipped_mimo_recipe_s():
    """The imported plan is the bundled mimo_v25 recipe's, but for what the collection chose
    otherwise (README: mp instead of Ray, an explicit KV budget instead of GMU 0.89)."""
    ours = eugr.convert(load("mimo_v25_tp3"))["recipe"]
    shipped = yaml.safe_load((ROOT / "recipes/vars/mimo_v25.yml").read_text())
    differ = {key for key in set(ours["recipe_plan"]) | set(shipped["recipe_plan"])
              if ours["recipe_plan"].get(key) != shipped["recipe_plan"].get(key)}
    assert differ == {"distributed_executor_backend", "kv_cache_memory_bytes",
                      "allow_long_max_model_len", "decode_context_parallel_size"}
    assert ours["recipe_image"] == shipped["recipe_image"]
    shipped_serve = dict(shipped["recipe_serve_args"])
    assert dict(ours["recipe_serve_args"], gpu_memory_utilization=None) == dict(
        shipped_serve, gpu_memory_utilization=None)


def test_without_the_virtual_heads_mod_tp3_fails_preflight_naming_the_fix():
    data = load("mimo_v25_tp3")
    data["mods"] = [m for m in data["mods"] if "virtual-heads" not in m]
    verdict = proven(eugr.convert(data))
    assert not verdict["satisfiable"]
    rules = {v["rule"] for v in verdict["violations"]}
    assert {"attention_heads_tp", "kv_heads_tp", "moe_width_tp"} <= rules
    assert all("virtual_heads" in v["fix"] for v in verdict["violations"])


# -- GLM-5.2 (eugr's 8-node recipe, and m9e's 4-node production as an eugr recipe) ---------

def test_glm52_8x_imports_with_its_mods_reported_and_passes_preflight():
    converted = eugr.convert(load("glm52_8x"))
    out = converted["recipe"]
    assert out["recipe_name"] == "glm_5_2_nvfp4"
    assert out["recipe_plan"]["nodes"] == 8 and out["recipe_plan"]["tensor_parallel_size"] == 8
    assert out["recipe_plan"]["block_size"] == 64
    assert out["recipe_serve_args"]["hf_overrides"]["index_topk_pattern"].startswith("FFFSSS")
    assert out["recipe_serve_args"]["tool_call_parser"] == "glm47"
    assert fields(converted) == [("mods", "mods/glm-5.2"), ("mods", "mods/sparse-mla-chunked"),
                                 ("container", "vllm-node")]
    assert out["recipe_env"]["VLLM_USE_FLASHINFER_SAMPLER"] == "0"
    assert proven(converted)["satisfiable"]


@pytest.mark.parametrize("tp, ok", [(4, True), (3, False)])
def test_params_override_the_defaults_as_eugr_s_command_line_does(tp, ok):
    converted = eugr.convert(load("glm52_8x"), params={"tensor_parallel": tp})
    assert "--tensor-parallel-size %d" % tp in converted["command"]
    assert converted["recipe"]["recipe_plan"]["nodes"] == tp
    verdict = proven(converted)
    assert verdict["satisfiable"] is ok
    if not ok:  # 64 heads on TP3: named, with the fix
        assert "attention_heads_tp" in {v["rule"] for v in verdict["violations"]}


def test_glm52_4x_dcp4_keeps_the_fork_spelling_s_meaning_and_the_channel_pins():
    converted = eugr.convert(load("glm52_4x_dcp4"), name="glm52_eugr")
    out = converted["recipe"]
    plan = out["recipe_plan"]
    assert plan["decode_context_parallel_size"] == 4 and plan["nodes"] == 4
    assert plan["cp_kv_cache_interleave_size"] == 1  # --dcp-kv-cache-interleave-size
    assert plan["speculative_config"] == {"method": "mtp", "num_speculative_tokens": 3}
    assert plan["kv_cache_memory_bytes"] == 1810000000
    assert plan["max_cudagraph_capture_size"] == 8
    assert out["recipe_serve_args"]["enable_log_requests"] is False  # --no-enable-log-requests
    assert out["recipe_serve_args"]["dcp_comm_backend"] == "ag_rs"
    # the model path of the command is a mount of the launcher: the HF id names the profile
    assert out["recipe_model_profile"] == "recipes/models/glm-5.2-nvfp4"
    # NCCL channel pins are a deliberate choice: kept, with a note that they override the fabric's
    assert out["recipe_env"]["NCCL_MIN_NCHANNELS"] == "4"
    assert any("NCCL_MIN_NCHANNELS=4 overrides" in note for note in converted["notes"])
    assert any("cp-kv-cache-interleave-size" in note for note in converted["notes"])
    assert fields(converted) == [("container", "eldritch-final-cu132")]
    verdict = proven(converted)
    assert verdict["satisfiable"], verdict["violations"]
    assert verdict["engine_args"]["decode_context_parallel_size"] == 4


def test_a_flag_vllm_does_not_have_is_reported_with_the_closest_one():
    data = load("glm52_8x")
    data["command"] = data["command"].replace("--enable-prefix-caching",
                                              "--enable-prefix-cachin --b12x-moe-off")
    converted = eugr.convert(data)
    lost = [item for item in converted["unmapped"] if item["field"].startswith("command")]
    assert [item["field"] for item in lost] == ["command --enable-prefix-cachin",
                                                "command --b12x-moe-off"]
    assert "did you mean --enable-prefix-caching?" in lost[0]["fix"]
    assert "vLLM 0.33.0" in lost[1]["reason"]
    assert "enable_prefix_caching" not in converted["recipe"]["recipe_serve_args"]


# -- the command line -------------------------------------------------------------------------

def test_command_forms():
    env, model, args = eugr.parse_command(
        "NCCL_DEBUG=INFO vllm serve org/m -tp 2 --max-model-len=8192 --no-async-scheduling "
        "--cudagraph-capture-sizes 1 2 4 -cc.cudagraph_mode=PIECEWISE --enforce-eager "
        "--speculative-config '{\"method\": \"mtp\"}'")
    assert env == {"NCCL_DEBUG": "INFO"} and model == "org/m"
    assert [arg[1:] for arg in args] == [
        ("tensor_parallel_size", 2), ("max_model_len", 8192), ("no_async_scheduling", True),
        ("cudagraph_capture_sizes", [1, 2, 4]),
        ("compilation_config", {"cudagraph_mode": "PIECEWISE"}), ("enforce_eager", True),
        ("speculative_config", {"method": "mtp"})]
    converted = eugr.convert({"name": "x", "container": "c", "model": "nvidia/GLM-5.2-NVFP4",
                              "command": "vllm serve nvidia/GLM-5.2-NVFP4 -tp 4 "
                                         "--no-async-scheduling -cc.cudagraph_mode=PIECEWISE"})
    assert converted["recipe"]["recipe_plan"]["async_scheduling"] is False
    assert converted["recipe"]["recipe_serve_args"] == {
        "compilation_config": {"cudagraph_mode": "PIECEWISE"}}


def test_literal_braces_and_parameters():
    assert eugr.render_command("--x '{{\"a\":{n}}}' --p {port}", {"n": 3, "port": 80}) \
        == "--x '{\"a\":3}' --p 80"


# -- malformed recipes: refused, naming the field, the value and the fix ----------------------

BASE = {"recipe_version": "1", "name": "m", "container": "c", "model": "nvidia/GLM-5.2-NVFP4",
        "defaults": {"tp": 4}, "command": "vllm serve nvidia/GLM-5.2-NVFP4 -tp {tp}"}


@pytest.mark.parametrize("change, field, words", [
    ({"containr": "x"}, "containr", ["did you mean container?"]),
    ({"command": None}, "command", ["is missing"]),
    ({"recipe_version": "2"}, "recipe_version", ['recipe_version: "1"']),
    ({"mods": "mods/x"}, "mods", ["a list"]),
    ({"mods": [3]}, "mods", ["list of strings"]),
    ({"defaults": {"tp": [4]}}, "defaults.tp", ["single value"]),
    ({"cluster_only": True, "solo_only": True}, "solo_only", ["keep one"]),
    ({"cluster_only": "yes"}, "cluster_only", ["true or false"]),
    ({"command": "vllm serve m -tp {tensor_parallel}"}, "command", ["add tensor_parallel under "
                                                                    "defaults (known: tp)"]),
    ({"command": "vllm serve m --speculative-config '{\"method\":\"mtp\"}'"}, "command",
     ["double the literal braces"]),
    ({"command": "vllm serve m --speculative-config '{{\"method\":mtp}}'"},
     "command --speculative-config", ["not valid JSON"]),
    ({"command": "vllm serve m --served-model-name 'x"}, "command", ["close every quote"]),
    ({"command": "python3 -m sglang.launch_server --model m"}, "command", ["vllm serve"]),
    ({"command": "vllm serve m --max-model-len 8192 4096"}, "command", ["value without a flag"]),
    ({"model": "someone/unknown-model", "command": "vllm serve someone/unknown-model"}, "model",
     ["model_profile"]),
])
def test_malformed_recipes_are_refused_with_field_value_and_fix(change, field, words):
    data = dict(copy.deepcopy(BASE), **change)
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(EugrError) as info:
        eugr.convert(data)
    assert info.value.variable == field, str(info.value)
    for word in words:
        assert word in str(info.value)
    assert "Fix:" in str(info.value)


def test_not_a_mapping_is_refused():
    with pytest.raises(EugrError, match="not a mapping of eugr recipe fields"):
        eugr.convert(["vllm serve x"])


def test_a_plan_value_of_the_wrong_type_fails_naming_the_flag():
    data = dict(BASE, command="vllm serve nvidia/GLM-5.2-NVFP4 --tensor-parallel-size four")
    with pytest.raises(EugrError, match="command --tensor-parallel-size='four': must be a whole "
                                        "number. Fix: use the number of ranks"):
        eugr.convert(data)


def test_a_plan_the_engine_refuses_fails_naming_the_option():
    data = dict(BASE, command="vllm serve nvidia/GLM-5.2-NVFP4 --kv-cache-dtype 8")
    with pytest.raises(ValueError, match="kv_cache_dtype"):
        proven(eugr.convert(data))


def test_a_recipe_without_a_version_is_read_as_version_1():
    data = dict(BASE)
    del data["recipe_version"]
    assert eugr.convert(data)["recipe"]["recipe_plan"]["tensor_parallel_size"] == 4


# -- the written file --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["mimo_v25_tp3", "glm52_8x", "glm52_4x_dcp4"])
def test_the_written_file_is_the_recipe_with_what_was_not_imported_on_top(name):
    converted = eugr.convert(load(name))
    text = eugr.dump(converted, "eugr/%s.yaml" % name, "/srv/recipes/%s.yml" % name)
    assert yaml.safe_load(text) == converted["recipe"]
    recipe.validate(yaml.safe_load(text))
    head = [line for line in text.splitlines() if line.startswith("#")]
    assert all(len(line) <= 100 for line in head)
    for item in converted["unmapped"]:
        assert item["field"] in "\n".join(head)
    assert "dgxspark_recipe=/srv/recipes/%s.yml" % name in " ".join(head).replace("# ", "")


# -- the module's documentation is its argument spec --------------------------------------------

def test_module_documentation_matches_the_argument_spec():
    tree = ast.parse((ROOT / "plugins/modules/eugr_recipe.py").read_text())
    docs = next(node.value.value for node in tree.body if isinstance(node, ast.Assign)
                and node.targets[0].id == "DOCUMENTATION")
    options = yaml.safe_load(docs)["options"]
    assert set(options) == set(eugr.ARGUMENT_SPEC)
    for name, spec in eugr.ARGUMENT_SPEC.items():
        doc = options[name]
        for key in ("type", "required", "default", "elements"):
            assert doc.get(key) == spec.get(key) or (key == "required" and not doc.get(key)
                                                     and not spec.get(key)), (name, key)
