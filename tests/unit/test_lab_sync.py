"""The lab gives every node its tiny models (roles/lab/files/lab_models.py sync_models): the
first run writes every file, a re-run writes none, and a file whose size or time changed is
written again."""
from __future__ import annotations

import importlib.util
import os

from conftest import ROOT


def load_lab_models():
    spec = importlib.util.spec_from_file_location(
        "lab_models", str(ROOT / "roles/lab/files/lab_models.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_model(root, name):
    (root / name / "sub").mkdir(parents=True)
    (root / name / "config.json").write_text("{}\n")
    (root / name / "sub" / "model.safetensors").write_bytes(b"\0" * 64)
    os.chmod(root / name / "config.json", 0o640)


def test_sync_writes_everything_once_then_only_what_differs(tmp_path):
    lab_models = load_lab_models()
    src, nodes = tmp_path / "built", tmp_path / "nodes"
    make_model(src, "tiny-a")
    make_model(src, "tiny-b")
    first = lab_models.sync_models(str(src), str(nodes), "/opt/models", ["n1", "n2"],
                                   ["tiny-a", "tiny-b"])["written"]
    assert len(first) == 8
    copy = nodes / "n2" / "merged" / "opt" / "models" / "tiny-b" / "sub" / "model.safetensors"
    assert copy.read_bytes() == b"\0" * 64
    config = nodes / "n1" / "merged" / "opt" / "models" / "tiny-a" / "config.json"
    assert os.stat(config).st_mode & 0o777 == 0o640  # mode and times come along
    assert lab_models.sync_models(str(src), str(nodes), "/opt/models", ["n1", "n2"],
                                  ["tiny-a", "tiny-b"])["written"] == []
    # a source file that changed size, and a copy whose time differs, are written again
    (src / "tiny-a" / "config.json").write_text('{"changed": true}\n')
    os.utime(copy, (1, 1))
    again = lab_models.sync_models(str(src), str(nodes), "/opt/models", ["n1", "n2"],
                                   ["tiny-a", "tiny-b"])["written"]
    assert sorted(os.path.relpath(p, nodes) for p in again) == [
        "n1/merged/opt/models/tiny-a/config.json", "n2/merged/opt/models/tiny-a/config.json",
        "n2/merged/opt/models/tiny-b/sub/model.safetensors"]
    assert config.read_text() == '{"changed": true}\n'
