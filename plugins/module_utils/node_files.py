# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""A role's files on a node in one call (the node_files module): directories, files with their
content and mode, and paths that must be gone, each compared with what the node has and
changed only where it differs. Plain Python, standard library only: it runs on the Spark (or a
lab node).

One call replaces a role's row of ``file`` / ``copy`` / ``template`` tasks, which on a re-run
with nothing to change cost a module round trip each. The decisions (what an entry means, what
differs, what a change would be) are plain functions with unit tests; ``apply`` is the only
part that touches the file system.

An entry: ``{"path": "/abs/path", "state": "file" | "directory" | "absent",
"content": "...", "mode": "0644", "validate": "cmd %s", "tag": "units"}``.
``tag`` names a group of entries so a role can act when any of that group changed (a daemon
reload, a restart) without one handler per file.
"""
from __future__ import annotations

import os
import stat
import tempfile

STATES = ("file", "directory", "absent")
DEFAULT_MODES = {"file": "0644", "directory": "0755"}


class EntryError(ValueError):
    """An entry that cannot be applied; the message names the entry, the value and the fix."""


def normalize(entries):
    """The module's ``files`` option -> checked entries (defaults filled in), in order.

    Raises EntryError naming the entry (its index and path), the value and the fix."""
    out = []
    seen = {}
    for index, raw in enumerate(entries or []):
        where = "files[%d]" % index
        if not isinstance(raw, dict):
            raise EntryError("%s is %r, not a dict: give path, state and (for a file) content"
                             % (where, raw))
        unknown = sorted(set(raw) - {"path", "state", "content", "mode", "validate", "tag"})
        if unknown:
            raise EntryError("%s has unknown key(s) %s: use path, state, content, mode, "
                             "validate, tag" % (where, ", ".join(unknown)))
        path = raw.get("path")
        if not isinstance(path, str) or not path.startswith("/") or path.rstrip("/") == "":
            raise EntryError("%s: path %r is not an absolute path below /: give the full path "
                             "on the node" % (where, path))
        path = os.path.normpath(path)
        where = "files[%d] (%s)" % (index, path)
        state = raw.get("state") or "file"
        if state not in STATES:
            raise EntryError("%s: state %r is not one of %s" % (where, state, ", ".join(STATES)))
        content = raw.get("content")
        if state == "file" and not isinstance(content, str):
            raise EntryError("%s: a file needs its content as a string (got %s): render it on "
                             "the controller, e.g. content: \"{{ lookup('ansible.builtin."
                             "template', 'x.j2') }}\"" % (where, type(content).__name__))
        if state != "file" and content is not None:
            raise EntryError("%s: content is only for state file, not %s" % (where, state))
        mode = raw.get("mode")
        if state == "absent":
            if mode is not None or raw.get("validate"):
                raise EntryError("%s: mode and validate are not for state absent" % where)
        else:
            mode = parse_mode(mode if mode is not None else DEFAULT_MODES[state], where)
        validate = raw.get("validate")
        if validate is not None:
            if state != "file" or not isinstance(validate, str) or "%s" not in validate:
                raise EntryError("%s: validate %r must be a command with %%s (the new file), "
                                 "for a file only" % (where, validate))
        if path in seen:
            raise EntryError("%s: the path is also files[%d]: list each path once"
                             % (where, seen[path]))
        seen[path] = index
        out.append({"path": path, "state": state, "content": content, "mode": mode,
                    "validate": validate, "tag": raw.get("tag")})
    return out


def parse_mode(mode, where):
    """'0644' / '644' / 0o644 -> 0o644; anything else raises EntryError."""
    if isinstance(mode, int) and not isinstance(mode, bool) and 0 <= mode <= 0o7777:
        return mode
    if isinstance(mode, str) and mode.isdigit() and set(mode) <= set("01234567") \
            and int(mode, 8) <= 0o7777:
        return int(mode, 8)
    raise EntryError("%s: mode %r is not an octal mode: quote it, e.g. \"0644\"" % (where, mode))


def current(path):
    """What the node has at ``path``: {"state": "file"|"directory"|"absent"|"other",
    "mode": int, "content": bytes (files only)}."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return {"state": "absent"}
    mode = stat.S_IMODE(info.st_mode)
    if stat.S_ISDIR(info.st_mode):
        return {"state": "directory", "mode": mode}
    if stat.S_ISREG(info.st_mode):
        with open(path, "rb") as handle:
            return {"state": "file", "mode": mode, "content": handle.read()}
    return {"state": "other", "mode": mode}


def decide(entry, have):
    """The change one entry needs against what the node has (``current``): a list of actions
    ("create", "content", "mode", "remove"), empty when the node is right.

    Raises EntryError when the path is something the entry must not replace (a directory where
    a file is wanted, a file or a device where a directory is wanted)."""
    want = entry["state"]
    if want == "absent":
        if have["state"] == "absent":
            return []
        if have["state"] == "directory":
            raise EntryError("%s is a directory: node_files removes files only; remove the "
                             "directory with ansible.builtin.file" % entry["path"])
        return ["remove"]
    if have["state"] == "absent":
        return ["create"]
    if have["state"] != want:
        raise EntryError("%s is a %s on the node, not a %s: move it away or fix the entry"
                         % (entry["path"], have["state"], want))
    actions = []
    if want == "file" and have["content"] != entry["content"].encode("utf-8"):
        actions.append("content")
    if have["mode"] != entry["mode"]:
        actions.append("mode")
    return actions


def diff_of(entry, have):
    """Ansible's diff dict for one changed entry: the text before and after (a directory or a
    missing path as "(directory)" / "(absent)"), the modes in the headers."""
    def side(state, content, mode):
        text = content if state == "file" else "(%s)\n" % state
        header = entry["path"] + (" mode %04o" % mode if mode is not None else "")
        return text, header

    before, before_header = side(
        have["state"], have.get("content", b"").decode("utf-8", "replace"), have.get("mode"))
    after, after_header = side(entry["state"], entry["content"], entry["mode"])
    return {"before": before, "after": after,
            "before_header": before_header, "after_header": after_header}


def apply(entries, check_mode=False, run=None):
    """Bring the node to ``entries`` (from ``normalize``), in order, all or nothing: every entry
    is compared first (a path of the wrong type raises EntryError before anything changes);
    then the entries that differ are changed in list order. A ``validate`` command checks a new
    content in a scratch directory under the file's own name, once every entry listed before it
    is in place (a unit can name the script written before it); ``run(command)`` returns
    (rc, stdout, stderr). When a validation or a change fails, what this call already changed
    is put back as it was and EntryError says why.

    Returns {"files": [{path, state, tag, actions}], "changed_paths": [...],
    "changed_tags": [...], "diff": [...]} (the diff lists changed entries only)."""
    plans = []
    for entry in entries:
        have = current(entry["path"])
        plans.append((entry, have, decide(entry, have)))
    changed = [(entry, have, actions) for entry, have, actions in plans if actions]
    planned_dirs = set(plan[0]["path"] for plan in changed if plan[0]["state"] == "directory")
    for entry, dummy, actions in changed:
        parent = os.path.dirname(entry["path"])
        if (entry["state"] == "file" and "create" in actions and not os.path.isdir(parent)
                and parent not in planned_dirs):
            raise EntryError("%s: its directory %s does not exist: list the directory before "
                             "it (state: directory)" % (entry["path"], parent))
    if not check_mode:
        undo = []
        try:
            for entry, have, actions in changed:
                if entry["validate"] and ("create" in actions or "content" in actions):
                    _validate(entry, run)
                undo.append(_change(entry, have, actions))
        except (EntryError, OSError) as error:
            problems = _undo(undo)
            message = str(error) if isinstance(error, EntryError) else "%s: %s" % (
                getattr(error, "filename", None) or "node_files", error.strerror or error)
            raise EntryError("%s; %s" % (message, "nothing was changed" if not problems else
                                         "could not put back: " + "; ".join(problems)))
    results = [{"path": entry["path"], "state": entry["state"], "tag": entry["tag"],
                "actions": actions} for entry, dummy, actions in plans]
    tags = []
    for entry, dummy, dummy_actions in changed:
        if entry["tag"] and entry["tag"] not in tags:
            tags.append(entry["tag"])
    return {"files": results, "changed_paths": [plan[0]["path"] for plan in changed],
            "changed_tags": tags, "diff": [diff_of(entry, have) for entry, have, dummy in changed]}


def _validate(entry, run):
    """The entry's new content checked by its validate command, in a scratch directory under
    the file's own name (a systemd unit is verified as what it will be)."""
    scratch = tempfile.mkdtemp(prefix="dgxspark-node-files.")
    try:
        temp = os.path.join(scratch, os.path.basename(entry["path"]))
        with open(temp, "wb") as out:
            out.write(entry["content"].encode("utf-8"))
        os.chmod(temp, entry["mode"])
        rc, stdout, stderr = run(entry["validate"].replace("%s", temp))
        if rc != 0:
            raise EntryError("%s: validate (%s) failed with rc %d: %s"
                             % (entry["path"], entry["validate"], rc,
                                (stderr or stdout or "").strip()))
    finally:
        for name in os.listdir(scratch):
            os.unlink(os.path.join(scratch, name))
        os.rmdir(scratch)


def _change(entry, have, actions):
    """Make one entry's change; returns how to put it back: (kind, path, old) for ``_undo``."""
    path = entry["path"]
    if "remove" in actions:
        os.unlink(path)
        return ("restore", path, have)
    if entry["state"] == "directory":
        if "create" in actions:
            return ("rmdirs", path, _makedirs(path, entry["mode"]))
        os.chmod(path, entry["mode"])
        return ("chmod", path, have["mode"])
    if "create" in actions or "content" in actions:
        _write(path, entry["content"].encode("utf-8"), entry["mode"])
        return ("unlink", path, None) if "create" in actions else ("restore", path, have)
    os.chmod(path, entry["mode"])
    return ("chmod", path, have["mode"])


def _write(path, data, mode):
    """``data`` to ``path`` with ``mode``, atomically (a temporary file beside it, renamed)."""
    handle, temp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path),
                                    dir=os.path.dirname(path))
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temp, mode)
        os.rename(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


def _undo(undo):
    """Put back what ``_change`` did, last change first; returns what could not be put back."""
    problems = []
    for kind, path, old in reversed(undo):
        try:
            if kind == "restore":
                _write(path, old["content"], old["mode"])
            elif kind == "unlink":
                os.unlink(path)
            elif kind == "chmod":
                os.chmod(path, old)
            else:
                for directory in reversed(old):
                    os.rmdir(directory)
        except OSError as error:
            problems.append("%s: %s" % (path, error.strerror or error))
    return problems


def _makedirs(path, mode):
    """``path`` and its missing parents, each with ``mode`` (as ansible.builtin.file does);
    returns the directories made, outermost first."""
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    for directory in reversed(missing):
        os.mkdir(directory)
        os.chmod(directory, mode)
    return list(reversed(missing))
