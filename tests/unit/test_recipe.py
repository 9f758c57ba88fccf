"""A recipe and what it means for every role (plugins/module_utils/recipe.py)."""
from __future__ import annotations

import copy

import pytest
import yaml

from ansible_collections.dgxspark.cluster.plugins.module_utils import recipe
from ansible_collections.dgxspark.cluster.plugins.module_utils.plan.errors import InputError

from conftest import ROOT


def load(name):
    return yaml.safe_load((ROOT / "recipes/vars" / ("%s.yml" % name)).read_text())


@pytest.mark.parametrize("name", ["site", "glm52", "mimo_v25", "tiny"])
def test_every_bundled_recipe_is_valid_and_maps_to_every_role(name):
    out = recipe.inputs(load(name), {}, {"collection_root": str(ROOT), "results_dir": "/r"})
    assert out["preflight_plan"]["vllm_build"] == out["vllm_image_build_profile"]
    assert out["vllm_cluster_executor"] in ("mp", "ray")
    assert out["benchmark_results_dir"] == out["eval_results_dir"] == "/r"
    assert out["preflight_fallback_model_config"].startswith(str(ROOT))


def test_overrides_merge_or_replace():
    data = load("glm52")
    out = recipe.inputs(data, {"dgxspark_plan": {"max_model_len": 65536},
                               "dgxspark_env": {"X": "1"},
                               "dgxspark_served_model_name": "glm",
                               "dgxspark_image_patches": []}, {})
    assert out["preflight_plan"]["max_model_len"] == 65536
    assert out["preflight_plan"]["tensor_parallel_size"] == data["recipe_plan"]["tensor_parallel_size"]
    assert out["vllm_cluster_env"]["X"] == "1" and "CUDA_DEVICE_ORDER" in out["vllm_cluster_env"]
    assert out["vllm_cluster_served_model_name"] == "glm"
    assert out["vllm_image_patches"] == [] and out["preflight_plan"]["vllm_patches"] == []
    # None counts as not given
    assert recipe.inputs(data, {"dgxspark_plan": None}, {})["preflight_plan"]["max_model_len"] \
        == data["recipe_plan"]["max_model_len"]


def test_the_plan_implies_its_environment():
    data = load("mimo_v25")
    out = recipe.inputs(data, {"dgxspark_plan": {"allow_long_max_model_len": True}}, {})
    assert out["vllm_cluster_env"]["VLLM_ALLOW_LONG_MAX_MODEL_LEN"] == "1"


def test_the_lab_has_no_eval_gate_unless_asked_for():
    data = load("glm52")
    assert recipe.inputs(data, {}, {"lab": True})["eval_min_scores"] == {}
    assert recipe.inputs(data, {}, {"lab": False})["eval_min_scores"] == data["recipe_eval_min_scores"]
    assert recipe.inputs(data, {"dgxspark_eval_min_scores": {"quality": 1}},
                         {"lab": True})["eval_min_scores"] == {"quality": 1}


@pytest.mark.parametrize("change, expect", [
    (lambda d: d.pop("recipe_image"), "recipe_image=None is missing"),
    (lambda d: d.update(recipe_imgae={}), "recipe_imgae='recipe_imgae' is not a recipe variable"),
    (lambda d: d["recipe_plan"].update(vllm_build="vllm-0.33"),
     "recipe_plan.vllm_build='vllm-0.33' belongs to the image"),
    (lambda d: d["recipe_image"].update(patchs=[]), "did you mean patches?"),
    (lambda d: d.update(recipe_env=["A=1"]), "recipe_env=['A=1'] must be a mapping"),
])
def test_a_bad_recipe_names_the_variable(change, expect):
    data = copy.deepcopy(load("glm52"))
    change(data)
    with pytest.raises(recipe.RecipeError, match=expect.replace("[", r"\[").replace("(", r"\(")):
        recipe.inputs(data, {}, {})


@pytest.mark.parametrize("overrides, error, expect", [
    ({"dgxspark_plan": {"tensor_paralel_size": 3}}, InputError, "did you mean tensor_parallel_size"),
    ({"dgxspark_serve_args": {"block_size": 16}}, InputError, "is a plan input"),
    ({"dgxspark_plan": {"vllm_patches": []}}, recipe.RecipeError, "belongs to the image"),
    ({"dgxspark_env": "A=1"}, recipe.RecipeError, "dgxspark_env='A=1' must be a mapping"),
    ({"dgxspark_recipe_typo": 1}, recipe.RecipeError, "is not a recipe override"),
])
def test_a_bad_override_names_the_key(overrides, error, expect):
    with pytest.raises(error, match=expect):
        recipe.inputs(load("glm52"), overrides, {})


def test_recipe_names_and_paths(tmp_path):
    dirs = [str(tmp_path), str(ROOT / "recipes/vars")]
    (tmp_path / "mine.yml").write_text("recipe_name: mine\n")
    assert recipe.recipe_path("mine", dirs) == str(tmp_path / "mine.yml")
    assert recipe.recipe_path("glm52", dirs).endswith("recipes/vars/glm52.yml")
    assert recipe.recipe_path(str(tmp_path / "mine.yml"), dirs) == str(tmp_path / "mine.yml")
    with pytest.raises(recipe.RecipeError, match="did you mean glm52"):
        recipe.recipe_path("glm5", dirs)
    with pytest.raises(recipe.RecipeError, match="is not a recipe name"):
        recipe.recipe_path("", dirs)


def test_the_image_probe_gets_the_recipes_library_environment_and_the_lab_is_said():
    data = load("glm52")
    out = recipe.inputs(data, {"dgxspark_env": {"LD_PRELOAD": "/opt/shim.so", "NCCL_DEBUG": "X"}},
                        {"lab": True, "fabric_topology": "ring4"})
    assert out["vllm_image_nccl_probe_env"] == {"LD_PRELOAD": "/opt/shim.so"}
    assert out["vllm_cluster_env"]["LD_PRELOAD"] == "/opt/shim.so"
    assert out["preflight_fabric_topology"] == "ring4"
    assert out["verify_lab"] is True and out["benchmark_lab"] is True
    plain = recipe.inputs(data, {}, {})
    assert plain["vllm_image_nccl_probe_env"] == {} and plain["preflight_fabric_topology"] == ""
    assert plain["verify_lab"] is False


def test_glm52_declares_its_hybrid_model_source():
    out = recipe.inputs(load("glm52"), {}, {"collection_root": str(ROOT)})
    source = out["model_source"]
    assert source["hybrid"] is True
    assert source["base"]["repo"] == "Mapika/GLM-5.2-NVFP4"
    assert source["mtp"]["repo"] == "sant1an/GLM-5.2-NVFP4-MTP"
    # the MTP layer's prefix is the base config.json's to say (num_hidden_layers 78), not the recipe's
    assert out["preflight_model_mtp_prefixes"] == []
    assert out["model_dir"] == out["preflight_model_dir"] == out["vllm_cluster_model_dir"]


def test_a_recipe_without_a_source_has_none_and_an_override_replaces_it():
    assert recipe.inputs(load("tiny"), {}, {})["model_source"] is None
    out = recipe.inputs(load("glm52"), {"dgxspark_model_source": {
        "base": {"path": "/data/glm", "on": "controller"},
        "mtp": {"path": "/data/mtp", "layer_prefix": "model.layers.78."}}}, {})
    assert out["model_source"]["base"] == {"path": "/data/glm", "on": "controller"}
    assert out["preflight_model_mtp_prefixes"] == ["model.layers.78."]


@pytest.mark.parametrize("where", ["recipe", "override"])
def test_a_bad_model_source_names_the_key(where):
    data = load("glm52")
    bad = {"base": {"repo": "Mapika/GLM-5.2-NVFP4"}}
    if where == "recipe":
        data["recipe_model_source"] = bad
        with pytest.raises(recipe.RecipeError) as err:
            recipe.validate(data)
        assert str(err.value).startswith("recipe_model_source.base.revision=None is not a revision")
    else:
        with pytest.raises(recipe.RecipeError) as err:
            recipe.inputs(data, {"dgxspark_model_source": bad}, {})
        assert str(err.value).startswith("dgxspark_model_source.base.revision")
    assert "commit" in err.value.fix
