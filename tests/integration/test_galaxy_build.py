"""What `ansible-galaxy collection build` ships: every tracked file, and none of the caches,
outputs and local state a working checkout accumulates (galaxy.yml build_ignore).

The checkout's tracked files are copied to a temporary directory, every path .gitignore and
build_ignore name is planted there (a directory with a file in it, or a file), the collection
is built and the tarball listed."""
from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import sys
import tarfile

import pytest
import yaml

from conftest import ROOT

# Left out of the tarball on purpose, although tracked: the checkout's own plumbing (make
# test's molecule base config included).
NOT_SHIPPED = (".collections/", ".ci/", ".config/")

# One concrete path for each kind of local state (besides the .gitignore and build_ignore
# entries themselves): tool caches in the root and below, run outputs, the lab's inventory.
PLANTED = [
    ".venv/bin/python", ".cache/lab/rootfs.tar", ".lab/state.json", ".ansible/collections/x",
    ".pytest_cache/v/cache/lastfailed", ".ruff_cache/0.14.0/x", ".hypothesis/examples/x",
    ".benchmarks/Linux/0001.json", ".mypy_cache/x", "results/eval-20261201T000000Z.json",
    "inventory/lab.yml", "inventory/lab/hosts.yml", "tests/output/junit.xml",
    "plugins/module_utils/__pycache__/recipe.cpython-311.pyc", "site.retry",
    "dgxspark-cluster-0.0.1.tar.gz",
]

LOCAL_DIRS = {".venv", ".cache", ".lab", ".ansible", ".pytest_cache", ".ruff_cache",
              ".hypothesis", ".benchmarks", ".mypy_cache", "__pycache__", "results", "output"}


def _tracked():
    proc = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return [p for p in proc.stdout.decode().split("\0") if p]


def _gitignore_paths():
    """A concrete path for every .gitignore pattern (a directory pattern gets a file in it)."""
    out = []
    for line in (ROOT / ".gitignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        path = line.lstrip("/").replace("*", "x")
        out.append(path.rstrip("/") + "/x" if line.endswith("/") else path)
    return out


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    src = tmp_path_factory.mktemp("checkout")
    for rel in _tracked():
        if rel.startswith(".collections/"):
            continue  # a symlink to the checkout itself (left out of the build anyway)
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        if os.path.islink(ROOT / rel):  # recipes/vars/site.yml -> mimo_v25.yml
            os.symlink(os.readlink(ROOT / rel), src / rel)
        else:
            shutil.copy2(ROOT / rel, src / rel)
    ignores = yaml.safe_load((ROOT / "galaxy.yml").read_text())["build_ignore"]
    planted = PLANTED + _gitignore_paths() + [
        p.replace("*", "x") + "/x" for p in ignores if not p.startswith("*")]
    for index, rel in enumerate(planted):
        if (src / rel).is_dir():  # ".venv" of .gitignore after .venv/bin/python
            rel = planted[index] = rel + "/x"
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text("local state\n")
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-galaxy"), "collection",
         "build", str(src), "--output-path", str(out)],
        capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [path] = list(out.glob("dgxspark-cluster-*.tar.gz"))
    with tarfile.open(path) as tar:
        names = set(m.name for m in tar.getmembers() if m.isfile() or m.issym())
    return names, planted


def test_no_local_state_ships(tarball):
    names, planted = tarball
    shipped = sorted(p for p in planted if p in names)
    assert not shipped, "build_ignore in galaxy.yml misses: %s" % shipped
    # nothing below an ignored directory either (a cache with other file names)
    leaked = [n for n in names if set(n.split("/")) & LOCAL_DIRS or
              fnmatch.fnmatch(n, "inventory/lab*")]
    assert not leaked, leaked


def test_every_tracked_file_ships(tarball):
    names, dummy = tarball
    expected = [p for p in _tracked() if not p.startswith(NOT_SHIPPED)
                and p not in (".collections/ansible_collections/dgxspark/cluster", "galaxy.yml")]
    missing = [p for p in expected if p not in names]
    assert not missing, "tracked files left out of the tarball: %s" % missing[:20]
    assert {"LICENSE", "README.md", "MANIFEST.json", "FILES.json"} <= names
