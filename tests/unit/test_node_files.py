"""node_files: a role's files on a node in one call (plugins/module_utils/node_files.py)."""
from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.dgxspark.cluster.plugins.module_utils import node_files as nf


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def entries(tmp_path, **overrides):
    base = [{"path": str(tmp_path / "bin"), "state": "directory"},
            {"path": str(tmp_path / "bin/hook"), "content": "#!/bin/sh\n", "mode": "0755",
             "tag": "scripts"},
            {"path": str(tmp_path / "unit.service"), "content": "[Unit]\n", "tag": "units"}]
    return nf.normalize([dict(e, **overrides.get(os.path.basename(e["path"]), {}))
                         for e in base])


def never(command):
    raise AssertionError("no validate command expected, got %s" % command)


def test_first_run_creates_everything_in_order_with_modes_and_tags(tmp_path):
    result = nf.apply(entries(tmp_path), run=never)
    assert result["changed_paths"] == [str(tmp_path / "bin"), str(tmp_path / "bin/hook"),
                                       str(tmp_path / "unit.service")]
    assert result["changed_tags"] == ["scripts", "units"]
    assert (tmp_path / "bin/hook").read_text() == "#!/bin/sh\n"
    assert mode_of(tmp_path / "bin") == 0o755 and mode_of(tmp_path / "bin/hook") == 0o755
    assert mode_of(tmp_path / "unit.service") == 0o644
    assert [d["after"] for d in result["diff"]] == ["(directory)\n", "#!/bin/sh\n", "[Unit]\n"]
    assert all(d["before"] == "(absent)\n" for d in result["diff"])


def test_second_run_changes_nothing(tmp_path):
    nf.apply(entries(tmp_path), run=never)
    again = nf.apply(entries(tmp_path), run=never)
    assert again["changed_paths"] == [] and again["changed_tags"] == [] and again["diff"] == []
    assert [f["actions"] for f in again["files"]] == [[], [], []]


def test_only_what_differs_changes_and_only_its_tag_is_reported(tmp_path):
    nf.apply(entries(tmp_path), run=never)
    os.chmod(tmp_path / "bin/hook", 0o700)
    result = nf.apply(entries(tmp_path, **{"unit.service": {"content": "[Unit]\nX=1\n"}}),
                      run=never)
    assert [f["actions"] for f in result["files"]] == [[], ["mode"], ["content"]]
    assert result["changed_tags"] == ["scripts", "units"]
    assert mode_of(tmp_path / "bin/hook") == 0o755
    assert (tmp_path / "unit.service").read_text() == "[Unit]\nX=1\n"
    unit_diff = result["diff"][1]
    assert unit_diff["before"] == "[Unit]\n" and unit_diff["after"] == "[Unit]\nX=1\n"
    assert result["diff"][0]["before_header"].endswith("mode 0700")


def test_check_mode_reports_the_changes_and_touches_nothing(tmp_path):
    result = nf.apply(entries(tmp_path), check_mode=True, run=never)
    assert len(result["changed_paths"]) == 3
    assert list(tmp_path.iterdir()) == []


def test_absent_removes_a_file_and_refuses_a_directory(tmp_path):
    (tmp_path / "old.conf").write_text("x")
    gone = nf.normalize([{"path": str(tmp_path / "old.conf"), "state": "absent", "tag": "t"}])
    assert nf.apply(gone, run=never)["changed_tags"] == ["t"]
    assert not (tmp_path / "old.conf").exists()
    assert nf.apply(gone, run=never)["changed_paths"] == []
    (tmp_path / "d").mkdir()
    with pytest.raises(nf.EntryError, match="is a directory"):
        nf.apply(nf.normalize([{"path": str(tmp_path / "d"), "state": "absent"}]), run=never)


def test_validate_checks_every_new_content_before_anything_changes(tmp_path):
    seen = []

    def run(command):
        seen.append(command)
        path = command.split()[-1]
        body = open(path).read()
        return (1, "", "bad unit") if "bad" in body else (0, "", "")

    files = nf.normalize([
        {"path": str(tmp_path / "a.service"), "content": "good\n", "validate": "verify %s"},
        {"path": str(tmp_path / "b.service"), "content": "bad\n", "validate": "verify %s"}])
    with pytest.raises(nf.EntryError, match=r"b.service: validate .* rc 1: bad unit; nothing"):
        nf.apply(files, run=run)
    assert list(tmp_path.iterdir()) == []  # a.service, valid and written, was taken back
    # the command saw the file under its own name, and the scratch directory is gone
    assert [os.path.basename(c.split()[-1]) for c in seen] == ["a.service", "b.service"]
    assert not any(os.path.exists(os.path.dirname(c.split()[-1])) for c in seen)
    ok = nf.normalize([{"path": str(tmp_path / "a.service"), "content": "good\n",
                        "validate": "verify %s"}])
    assert nf.apply(ok, run=run)["changed_paths"] == [str(tmp_path / "a.service")]
    # unchanged content is not validated again
    seen.clear()
    nf.apply(ok, run=run)
    assert seen == []


def test_a_missing_parent_or_a_wrong_type_fails_before_anything_changes(tmp_path):
    with pytest.raises(nf.EntryError, match="its directory .*/missing does not exist: list"):
        nf.apply(nf.normalize([{"path": str(tmp_path / "first"), "content": "1"},
                               {"path": str(tmp_path / "missing/x"), "content": "x"}]),
                 run=never)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "dir").mkdir()
    with pytest.raises(nf.EntryError, match="is a directory on the node, not a file"):
        nf.apply(nf.normalize([{"path": str(tmp_path / "first"), "content": "1"},
                               {"path": str(tmp_path / "dir"), "content": "x"}]), run=never)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir"]


@pytest.mark.parametrize("entry, message", [
    ("not a dict", r"files\[0\] is 'not a dict', not a dict"),
    ({"path": "relative/x", "content": ""}, "is not an absolute path"),
    ({"path": "/", "state": "directory"}, "is not an absolute path below /"),
    ({"path": "/x", "state": "link"}, "state 'link' is not one of file, directory, absent"),
    ({"path": "/x"}, r"files\[0\] \(/x\): a file needs its content as a string \(got NoneType\)"),
    ({"path": "/x", "state": "directory", "content": "a"}, "content is only for state file"),
    ({"path": "/x", "content": "", "mode": "644x"}, "mode '644x' is not an octal mode"),
    ({"path": "/x", "content": "", "mode": "0999"}, "mode '0999' is not an octal mode"),
    ({"path": "/x", "content": "", "validate": "true"}, "must be a command with %s"),
    ({"path": "/x", "state": "absent", "mode": "0644"}, "not for state absent"),
    ({"path": "/x", "content": "", "owner": "root"}, r"unknown key\(s\) owner"),
])
def test_bad_entries_name_the_entry_the_value_and_the_fix(entry, message):
    with pytest.raises(nf.EntryError, match=message):
        nf.normalize([entry])


def test_a_path_listed_twice_is_refused():
    with pytest.raises(nf.EntryError, match=r"files\[1\] \(/x\): the path is also files\[0\]"):
        nf.normalize([{"path": "/x", "content": ""}, {"path": "/x/", "content": ""}])


def test_modes_parse_as_octal():
    assert nf.parse_mode("0644", "e") == 0o644 and nf.parse_mode("755", "e") == 0o755
    assert nf.parse_mode(0o600, "e") == 0o600
    with pytest.raises(nf.EntryError):
        nf.parse_mode(True, "e")


def test_a_directory_is_made_with_its_missing_parents_each_with_its_mode(tmp_path):
    deep = tmp_path / "a/b/c"
    files = nf.normalize([{"path": str(deep), "state": "directory", "mode": "0750"},
                          {"path": str(deep / "f"), "content": "x"}])
    assert nf.apply(files, run=never)["changed_paths"] == [str(deep), str(deep / "f")]
    assert [mode_of(tmp_path / p) for p in ("a", "a/b", "a/b/c")] == [0o750] * 3
    assert (deep / "f").read_text() == "x"


def test_validate_sees_the_entries_listed_before_it_in_place(tmp_path):
    # a unit whose verification needs the script it runs (systemd-analyze verify checks ExecStart)
    script = tmp_path / "lib" / "hook"

    def run(command):
        return (0, "", "") if script.exists() else (1, "", "hook is not executable")

    files = nf.normalize([
        {"path": str(tmp_path / "lib"), "state": "directory"},
        {"path": str(script), "content": "#!/bin/sh\n", "mode": "0755"},
        {"path": str(tmp_path / "hook.service"), "content": "[Service]\n", "validate": "v %s"}])
    assert len(nf.apply(files, run=run)["changed_paths"]) == 3


def test_a_failed_validation_puts_back_everything_the_call_changed(tmp_path):
    kept = tmp_path / "kept.conf"
    kept.write_text("old\n")
    kept.chmod(0o600)
    gone = tmp_path / "gone.conf"
    gone.write_text("still here\n")
    moded = tmp_path / "moded.conf"
    moded.write_text("same\n")
    moded.chmod(0o600)
    files = nf.normalize([
        {"path": str(tmp_path / "new/deeper"), "state": "directory"},
        {"path": str(tmp_path / "new/deeper/file"), "content": "x\n"},
        {"path": str(kept), "content": "new\n", "mode": "0644"},
        {"path": str(gone), "state": "absent"},
        {"path": str(moded), "content": "same\n", "mode": "0640"},
        {"path": str(tmp_path / "z.service"), "content": "bad\n", "validate": "v %s"}])
    with pytest.raises(nf.EntryError, match=r"z.service: validate .* rc 1: no; nothing was changed"):
        nf.apply(files, run=lambda command: (1, "", "no"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gone.conf", "kept.conf", "moded.conf"]
    assert kept.read_text() == "old\n" and mode_of(kept) == 0o600
    assert gone.read_text() == "still here\n"
    assert mode_of(moded) == 0o600


def test_a_change_that_fails_midway_is_put_back_and_named(tmp_path, monkeypatch):
    first = tmp_path / "first.conf"
    second = tmp_path / "second.conf"
    files = nf.normalize([{"path": str(first), "content": "a\n"},
                          {"path": str(second), "content": "b\n"}])
    real_rename = os.rename

    def rename(src, dst):
        if dst == str(second):  # the disk fills up on the second file, say
            raise OSError(28, "No space left on device", dst)
        real_rename(src, dst)

    monkeypatch.setattr(nf.os, "rename", rename)
    with pytest.raises(nf.EntryError, match=r"second.conf: No space left on device; nothing was"):
        nf.apply(files, run=never)
    assert list(tmp_path.iterdir()) == []  # first.conf taken back, no temporary file left
