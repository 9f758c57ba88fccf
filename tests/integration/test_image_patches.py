"""The image patches: the catalog and the patch files agree, and every shipped patch applies
to the pinned vLLM release's source (its PyPI sdist, sha256-checked, cached in .cache/)."""
from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tarfile
import urllib.request

import pytest
import yaml

from ansible_collections.dgxspark.cluster.plugins.module_utils.plan import rules
from ansible_collections.dgxspark.cluster.plugins.module_utils.plan.patches import PATCHES

from conftest import ROOT

PATCH_DIR = ROOT / "roles/vllm_image/files/patches"
LAB_DEFAULTS = yaml.safe_load((ROOT / "roles/lab/defaults/main.yml").read_text())
SDIST_URL = LAB_DEFAULTS["lab_standin_vllm_sdist_url"].strip()
SDIST_SHA256 = LAB_DEFAULTS["lab_standin_vllm_sdist_sha256"]
VERSION = re.search(r"vllm-([0-9.]+)\.tar\.gz$", SDIST_URL).group(1)


def shipped_files():
    return sorted(PATCH_DIR.glob("*/*.patch"))


def test_catalog_and_patch_files_agree():
    on_disk = {path.parent.name for path in shipped_files()}
    shipped = {pid for pid, entry in PATCHES.items() if entry["shipped"]}
    assert on_disk == shipped, "patch files %s vs catalog shipped %s" % (on_disk, shipped)
    rule_names = {rule.id for rule in rules.RULES}
    for pid, entry in PATCHES.items():
        assert entry["required_by_rule"] in rule_names, pid
        for name in entry["lets_pass"]:
            assert name in rule_names, (pid, name)
        if not entry["shipped"]:
            assert "vllm_image_extra_patches" in entry["bring_your_own"], pid


def test_every_shipped_patch_exists_for_the_pinned_release():
    for pid, entry in PATCHES.items():
        if entry["shipped"]:
            assert (PATCH_DIR / pid / ("%s.patch" % VERSION)).is_file(), pid


@pytest.fixture(scope="module")
def vllm_source(tmp_path_factory):
    """The pinned release's source tree (only the files the patches touch)."""
    cache = ROOT / ".cache"
    cache.mkdir(exist_ok=True)
    sdist = cache / ("vllm-%s.tar.gz" % VERSION)
    if not sdist.exists() or hashlib.sha256(sdist.read_bytes()).hexdigest() != SDIST_SHA256:
        part = sdist.with_suffix(".part")
        with urllib.request.urlopen(SDIST_URL, timeout=120) as response, open(part, "wb") as out:
            shutil.copyfileobj(response, out)
        digest = hashlib.sha256(part.read_bytes()).hexdigest()
        assert digest == SDIST_SHA256, "sdist %s has sha256 %s" % (SDIST_URL, digest)
        part.rename(sdist)
    touched = set()
    for path in shipped_files():
        touched.update(re.findall(r"(?m)^\+\+\+ b/(\S+)", path.read_text()))
    top = "vllm-%s/" % VERSION
    dest = tmp_path_factory.mktemp("src")
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if m.name[len(top):] in touched]
        tar.extractall(dest, members=members, filter="data")
    assert len(members) == len(touched), "files missing in the sdist: %s" % touched
    return dest / top


def run_patch(src, patch, *extra):
    return subprocess.run(["patch", "--forward", "--batch", "-p1", "-d", str(src), "-i",
                           str(patch), *extra], capture_output=True, text=True)


@pytest.mark.parametrize("patch", shipped_files(), ids=lambda p: p.parent.name)
def test_patch_applies_to_the_release_source(vllm_source, tmp_path, patch):
    src = tmp_path / "src"
    shutil.copytree(vllm_source, src)
    first = run_patch(src, patch)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "offset" not in first.stdout and "fuzz" not in first.stdout, first.stdout
    # What the image build relies on: a second application is refused, not doubled.
    second = run_patch(src, patch)
    assert second.returncode != 0 and "previously applied" in second.stdout


def test_draft_dcp_patch_makes_the_draft_inherit_dcp(vllm_source, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(vllm_source, src)
    before = (src / "vllm/config/speculative.py").read_text()
    assert run_patch(src, PATCH_DIR / "draft-dcp-inherit" / ("%s.patch" % VERSION)).returncode == 0
    after = (src / "vllm/config/speculative.py").read_text()
    call = after[after.index("draft_parallel_config = ParallelConfig("):]
    call = call[:call.index(")\n")]
    assert "decode_context_parallel_size=draft_dcp" in call
    assert "decode_context_parallel_size=draft_dcp" not in before
    compile(after, "speculative.py", "exec")
