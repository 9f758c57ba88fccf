"""The image patches: the catalog and the patch files agree, and every shipped patch applies
to the source of the vLLM release it is for (its PyPI sdist, sha256-checked, cached in .cache/):
0.33.0 (the Spark default, whose sources the lab's stand-in carries) and 0.32.0 (the release of
the lab's real engine, vLLM's CPU build: its Python sources are the release's)."""
from __future__ import annotations

import ast
import functools
import hashlib
import json
import re
import shutil
import subprocess
import tarfile
import types
import urllib.request

import pytest
import yaml

from ansible_collections.dgxspark.cluster.plugins.module_utils.plan import engine, rules
from ansible_collections.dgxspark.cluster.plugins.module_utils.plan.patches import PATCHES

from conftest import ROOT

PATCH_DIR = ROOT / "roles/vllm_image/files/patches"
LAB_DEFAULTS = yaml.safe_load((ROOT / "roles/lab/defaults/main.yml").read_text())
# release -> (sdist URL, sha256): the stand-in's pinned release, and the CPU engine's release.
SDISTS = {
    re.search(r"vllm-([0-9.]+)\.tar\.gz$", LAB_DEFAULTS["lab_standin_vllm_sdist_url"].strip())
    .group(1): (LAB_DEFAULTS["lab_standin_vllm_sdist_url"].strip(),
                LAB_DEFAULTS["lab_standin_vllm_sdist_sha256"]),
    "0.32.0": ("https://files.pythonhosted.org/packages/d5/df/5471312c76e335eaa2b8333e87ea39f0d"
               "37bfe24f10a582620e34ff12e33/vllm-0.32.0.tar.gz",
               "d2c957d5eee3d0985012151315ddc62cbe0cd368fc96a5fc3510438d9dddf2ad"),
}
VERSION = re.search(r"vllm-([0-9.]+)\.tar\.gz$",
                    LAB_DEFAULTS["lab_standin_vllm_sdist_url"].strip()).group(1)
ENGINE_RELEASE = LAB_DEFAULTS["lab_engine_package"].split("==")[1]


def shipped_files():
    return sorted(PATCH_DIR.glob("*/*.patch"))


def test_catalog_and_patch_files_agree():
    on_disk = {(path.parent.name, path.stem) for path in shipped_files()}
    shipped = {(pid, release) for pid, entry in PATCHES.items() if entry["shipped"]
               for release in entry["releases"]}
    assert on_disk == shipped, "patch files %s vs catalog shipped %s" % (on_disk, shipped)
    rule_names = {rule.id for rule in rules.RULES}
    for pid, entry in PATCHES.items():
        assert entry["required_by_rule"] in rule_names, pid
        for name in entry["lets_pass"]:
            assert name in rule_names, (pid, name)
        if not entry["shipped"]:
            assert "vllm_image_extra_patches" in entry["bring_your_own"], pid


def test_the_spark_default_release_has_the_patches_of_every_spark_plan():
    for pid, entry in PATCHES.items():
        if entry["shipped"] and pid != "cpu-eager-pp":  # the lab engine's own fix
            assert VERSION in entry["releases"], pid


def test_the_lab_recipe_s_patches_exist_for_the_lab_engine_s_release():
    recipe = yaml.safe_load((ROOT / "recipes/vars/tiny.yml").read_text())
    for pid in recipe["recipe_image"]["patches"]:
        assert (PATCH_DIR / pid / ("%s.patch" % ENGINE_RELEASE)).is_file(), pid


def test_every_patch_file_is_for_a_release_with_a_pinned_source():
    assert {path.stem for path in shipped_files()} <= set(SDISTS)


def release_source(tmp_path_factory, version):
    """The release's source tree (only the files its patches touch)."""
    url, sha256 = SDISTS[version]
    cache = ROOT / ".cache"
    cache.mkdir(exist_ok=True)
    sdist = cache / ("vllm-%s.tar.gz" % version)
    if not sdist.exists() or hashlib.sha256(sdist.read_bytes()).hexdigest() != sha256:
        part = sdist.with_suffix(".part")
        with urllib.request.urlopen(url, timeout=120) as response, open(part, "wb") as out:
            shutil.copyfileobj(response, out)
        digest = hashlib.sha256(part.read_bytes()).hexdigest()
        assert digest == sha256, "sdist %s has sha256 %s" % (url, digest)
        part.rename(sdist)
    touched = set()
    for path in PATCH_DIR.glob("*/%s.patch" % version):
        touched.update(re.findall(r"(?m)^\+\+\+ b/(\S+)", path.read_text()))
    top = "vllm-%s/" % version
    dest = tmp_path_factory.mktemp("src-%s" % version)
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if m.name[len(top):] in touched]
        tar.extractall(dest, members=members, filter="data")
    assert len(members) == len(touched), "files missing in the sdist: %s" % touched
    return dest / top


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    cache = {}

    def get(version):
        if version not in cache:
            cache[version] = release_source(tmp_path_factory, version)
        return cache[version]
    return get


def run_patch(src, patch, *extra):
    return subprocess.run(["patch", "--forward", "--batch", "-p1", "-d", str(src), "-i",
                           str(patch), *extra], capture_output=True, text=True, check=False)


@pytest.mark.parametrize("patch", shipped_files(),
                         ids=lambda p: "%s-%s" % (p.parent.name, p.stem))
def test_patch_applies_to_the_release_source(sources, tmp_path, patch):
    src = tmp_path / "src"
    shutil.copytree(sources(patch.stem), src)
    first = run_patch(src, patch)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "offset" not in first.stdout and "fuzz" not in first.stdout, first.stdout
    # What the image build relies on: a second application is refused, not doubled.
    second = run_patch(src, patch)
    assert second.returncode != 0 and "previously applied" in second.stdout


@pytest.mark.parametrize("version", sorted(p.stem for p in PATCH_DIR.glob("draft-dcp-inherit/*.patch")))
def test_draft_dcp_patch_makes_the_draft_inherit_dcp(sources, tmp_path, version):
    src = tmp_path / "src"
    shutil.copytree(sources(version), src)
    before = (src / "vllm/config/speculative.py").read_text()
    assert run_patch(src, PATCH_DIR / "draft-dcp-inherit" / ("%s.patch" % version)).returncode == 0
    after = (src / "vllm/config/speculative.py").read_text()
    call = after[after.index("draft_parallel_config = ParallelConfig("):]
    call = call[:call.index(")\n")]
    assert "decode_context_parallel_size=draft_dcp" in call
    assert "decode_context_parallel_size=draft_dcp" not in before
    compile(after, "speculative.py", "exec")


@pytest.mark.parametrize("version", sorted(SDISTS))
def test_a_release_s_patches_apply_together_as_the_image_role_applies_them(sources, tmp_path,
                                                                           version):
    """The vllm_image role applies every patch of an image to one tree, in id order: they
    must not conflict (offsets are fine, fuzz is not), and every patched file compiles."""
    src = tmp_path / "src"
    shutil.copytree(sources(version), src)
    for patch in sorted(PATCH_DIR.glob("*/%s.patch" % version), key=lambda p: p.parent.name):
        done = run_patch(src, patch)
        assert done.returncode == 0 and "fuzz" not in done.stdout, (patch, done.stdout)
    for path in src.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")


def patched_function(sources, tmp_path, version, path, names, namespace):
    """Functions of a file patched with the virtual-heads patch, executed on their own."""
    src = tmp_path / "src"
    shutil.copytree(sources(version), src)
    assert run_patch(src, PATCH_DIR / "virtual-heads" / ("%s.patch" % version)).returncode == 0
    tree = ast.parse((src / path).read_text())
    wanted = [node for node in tree.body
              if isinstance(node, ast.FunctionDef) and node.name in names]
    assert sorted(node.name for node in wanted) == sorted(names)
    for node in wanted:
        node.returns = None
        for arg in node.args.args:
            arg.annotation = None
    exec(compile(ast.Module(body=wanted, type_ignores=[]), path, "exec"), namespace)
    return namespace


def tiny_mimo_padding():
    recipe = yaml.safe_load((ROOT / "recipes/vars/tiny_mimo.yml").read_text())
    result = engine.evaluate(dict(recipe["recipe_plan"], model_config=str(
        ROOT / recipe["recipe_model_profile"])))
    return json.loads((ROOT / recipe["recipe_model_profile"] / "config.json").read_text()), \
        result["padding"]["hf_overrides"]


@pytest.mark.parametrize("version", sorted(p.stem for p in PATCH_DIR.glob("virtual-heads/*.patch")))
def test_virtual_heads_patch_pads_the_config_the_plan_engine_planned(sources, tmp_path, version):
    """The contract between the plan engine and the patched vLLM: the hf_overrides marker the
    plan engine renders pads exactly its fields, and a config that is not the planned one (or
    a malformed marker) is refused."""
    logged = []
    funcs = patched_function(sources, tmp_path, version, "vllm/config/model.py",
                             ["_apply_virtual_heads", "_check_virtual_heads_tp"],
                             {"logger": types.SimpleNamespace(info=lambda *a: logged.append(a))})
    config, overrides = tiny_mimo_padding()
    marker = overrides["virtual_heads"]
    hf_config = types.SimpleNamespace(**config)
    hf_config.virtual_heads = marker
    funcs["_apply_virtual_heads"](hf_config, hf_config)
    for field, (original, padded) in marker["padding"].items():
        assert config[field] == original and getattr(hf_config, field) == padded
    assert hf_config.vocab_size == config["vocab_size"]  # vLLM pads the vocabulary itself
    assert logged and "Virtual heads" in logged[0][0]
    # Applying it to an already padded config changes nothing.
    funcs["_apply_virtual_heads"](hf_config, hf_config)
    assert hf_config.num_attention_heads == marker["padding"]["num_attention_heads"][1]
    # Another model (other head counts) or a malformed marker is refused.
    other = types.SimpleNamespace(**dict(config, num_attention_heads=40), virtual_heads=marker)
    with pytest.raises(ValueError, match="planned for another model"):
        funcs["_apply_virtual_heads"](other, other)
    broken = types.SimpleNamespace(**dict(config, virtual_heads={"padding": []}))
    with pytest.raises(ValueError, match="must be"):
        funcs["_apply_virtual_heads"](broken, broken)
    # No marker: the config is left alone.
    plain = types.SimpleNamespace(**config)
    funcs["_apply_virtual_heads"](plain, plain)
    assert plain.num_attention_heads == config["num_attention_heads"]
    # The padding runs at the TP it was planned for, and only there.
    funcs["_check_virtual_heads_tp"](hf_config, 3)
    with pytest.raises(ValueError, match="for tensor parallel size 3, not 1"):
        funcs["_check_virtual_heads_tp"](hf_config, 1)
    funcs["_check_virtual_heads_tp"](plain, 1)


@pytest.mark.parametrize("version", sorted(p.stem for p in PATCH_DIR.glob("virtual-heads/*.patch")))
def test_virtual_heads_patch_passes_the_padding_on_to_the_mtp_draft(sources, tmp_path, version):
    """Dict hf_overrides stay target-only in vLLM; the patch hands the marker to the draft."""
    funcs = patched_function(sources, tmp_path, version, "vllm/config/speculative.py",
                             ["_draft_virtual_heads", "_with_virtual_heads"],
                             {"functools": functools})
    dummy, overrides = tiny_mimo_padding()

    def draft_override(hf_config):  # stands for SpeculativeConfig.hf_config_override
        hf_config.architectures = ["MiMoV2MTPModel"]
        return hf_config

    target = dict(overrides, architectures=["MiMoV2FlashForCausalLM"])
    composed = funcs["_draft_virtual_heads"](draft_override, target)
    draft = composed(types.SimpleNamespace(architectures=["MiMoV2FlashForCausalLM"]))
    assert draft.virtual_heads == overrides["virtual_heads"]
    assert draft.architectures == ["MiMoV2MTPModel"]
    # Without the marker the draft's override is vLLM's own.
    assert funcs["_draft_virtual_heads"](draft_override, {"architectures": ["X"]}) \
        is draft_override


@pytest.mark.parametrize("version", sorted(p.stem for p in PATCH_DIR.glob("virtual-heads/*.patch")))
def test_virtual_heads_patch_splits_a_fused_qkv_by_the_checkpoint_s_heads(sources, tmp_path,
                                                                          version):
    """MiMo V2.5's qkv_proj is fused on disk: the padded layer (96 q / 6 KV heads at TP3) splits
    the checkpoint's [Q | K | V] rows by the checkpoint's 64 / 4 heads, which follow from the
    rows because padding keeps the grouping; rows that are no whole groups are refused."""
    src = tmp_path / "src"
    shutil.copytree(sources(version), src)
    assert run_patch(src, PATCH_DIR / "virtual-heads" / ("%s.patch" % version)).returncode == 0
    tree = ast.parse((src / "vllm/model_executor/layers/linear.py").read_text())
    layer = next(node for node in tree.body
                 if isinstance(node, ast.ClassDef) and node.name == "QKVParallelLinear")
    method = next(node for node in layer.body
                  if isinstance(node, ast.FunctionDef) and node.name == "_checkpoint_heads")
    method.returns = None
    for arg in method.args.args:
        arg.annotation = None

    class BlockQuantScaleParameter(object):
        pass

    namespace = {"BlockQuantScaleParameter": BlockQuantScaleParameter}
    exec(compile(ast.Module(body=[method], type_ignores=[]), "linear.py", "exec"), namespace)
    split = namespace["_checkpoint_heads"]
    layer = types.SimpleNamespace(virtual_heads=True, total_num_heads=96, total_num_kv_heads=6,
                                  head_size=192, v_head_size=128)
    param = types.SimpleNamespace(output_dim=0)
    rows = 64 * 192 + 4 * 192 + 4 * 128
    assert split(layer, param, types.SimpleNamespace(shape=(rows, 4096))) == (64, 4)
    # Packed along the rows (two values per byte): the same heads.
    packed = types.SimpleNamespace(output_dim=0, packed_dim=0, packed_factor=2)
    assert split(layer, packed, types.SimpleNamespace(shape=(rows // 2, 4096))) == (64, 4)
    with pytest.raises(ValueError, match="not whole"):
        split(layer, param, types.SimpleNamespace(shape=(rows + 192, 4096)))
    with pytest.raises(NotImplementedError):
        split(layer, BlockQuantScaleParameter(), types.SimpleNamespace(shape=(rows, 32)))
    # Without virtual heads the layer's own heads, as upstream.
    layer.virtual_heads = False
    assert split(layer, param, types.SimpleNamespace(shape=(rows, 4096))) == (96, 6)
