"""dgxspark.cluster.node_files as Ansible runs it (argument spec, check mode, diff) on
localhost, in a temporary directory."""
from __future__ import annotations

import os

from test_vllm_plan_module import adhoc_module


def spec(tmp_path, unit="[Unit]\nDescription=x\n"):
    return {"files": [
        {"path": str(tmp_path / "d"), "state": "directory"},
        {"path": str(tmp_path / "d/x.service"), "content": unit, "tag": "units",
         "validate": "grep -q Description %s"},
        {"path": str(tmp_path / "script"), "content": "#!/bin/sh\n", "mode": "0755"}]}


def test_check_then_apply_then_nothing_to_change(tmp_path):
    rc, result = adhoc_module("dgxspark.cluster.node_files", spec(tmp_path), "--check", "--diff")
    assert rc == 0 and result["changed"] is True, result
    assert result["changed_tags"] == ["units"] and len(result["changed_paths"]) == 3
    assert [d["after"] for d in result["diff"]][1:] == ["[Unit]\nDescription=x\n", "#!/bin/sh\n"]
    assert os.listdir(tmp_path) == []

    rc, result = adhoc_module("dgxspark.cluster.node_files", spec(tmp_path))
    assert rc == 0 and result["changed"] is True and "diff" not in result, result
    assert (tmp_path / "d/x.service").read_text() == "[Unit]\nDescription=x\n"
    assert oct(os.stat(tmp_path / "script").st_mode & 0o7777) == "0o755"

    rc, result = adhoc_module("dgxspark.cluster.node_files", spec(tmp_path))
    assert rc == 0 and result["changed"] is False and result["changed_tags"] == [], result


def test_a_content_that_fails_validate_changes_nothing(tmp_path):
    rc, result = adhoc_module("dgxspark.cluster.node_files", spec(tmp_path, unit="[Unit]\n"))
    assert rc != 0 and result["failed"] is True
    assert "x.service: validate (grep -q Description %s) failed with rc 1" in result["msg"]
    assert "nothing was changed" in result["msg"]
    assert os.listdir(tmp_path) == []


def test_bad_input_names_the_entry(tmp_path):
    rc, result = adhoc_module("dgxspark.cluster.node_files",
                              {"files": [{"path": str(tmp_path / "x"), "mode": "rw"}]})
    assert rc != 0
    assert "files[0] (%s): a file needs its content" % (tmp_path / "x") in result["msg"]
