#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: node_files
short_description: A role's directories and files on a node in one call, changed only where they differ
version_added: "0.3.0"
description:
  - Brings a list of paths to their wanted state in order, as a row of
    M(ansible.builtin.file), M(ansible.builtin.copy) and M(ansible.builtin.template) tasks
    would, in one module call - directories with their mode, files with their content and mode
    (written to a temporary file in the same directory, then renamed over the old one), and
    paths that must be gone.
  - All or nothing - every path is compared before anything changes; then the paths that differ
    change in list order. A new content with O(files[].validate) is checked in a scratch
    directory once every entry listed before it is in place (a unit can name a script listed
    before it). When a check or a change fails, what the call had changed is put back.
  - Each path is compared with what the node has; only what differs changes. A re-run with
    nothing to change costs one round trip instead of one per file.
  - Entries carry an optional O(files[].tag); RV(changed_tags) lists the tags of the entries
    that changed, so a role reloads or restarts what depends on a group of files with a
    C(when) instead of one handler per file.
  - Bad input fails before anything is touched, naming the entry, the value and the fix. A path
    of another type (a directory where a file is wanted) fails naming it.
  - Content is passed from the controller (render templates with
    C(lookup('ansible.builtin.template', ...))); a file that holds secrets belongs in its own
    task with C(no_log).
author:
  - dgxspark.cluster contributors (@dgxspark)
extends_documentation_fragment:
  - dgxspark.cluster.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: full
  platform:
    support: full
    platforms: posix
options:
  files:
    description: The paths, in the order they are applied (a directory before the files in it).
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: Absolute path on the node.
        type: str
        required: true
      state:
        description:
          - V(file) (content and mode; its directory must exist or be listed before it),
            V(directory) (mode; created with its missing parents, each with that mode, as
            M(ansible.builtin.file) does) or V(absent) (a file or link removed; a directory is
            refused).
        type: str
        choices: [file, directory, absent]
        default: file
      content:
        description: The file's content (UTF-8 text). Required for V(file).
        type: str
      mode:
        description: Octal mode as a string. Default V(0644) for a file, V(0755) for a directory.
        type: str
      validate:
        description:
          - A command run on the new content before it replaces the file, once the entries
            listed before it are in place; C(%s) is the path of a copy under the file's own
            name in a scratch directory. A non-zero exit fails the module and puts back what
            the call had changed.
        type: str
      tag:
        description: A group name reported in RV(changed_tags) when this entry changed.
        type: str
"""

EXAMPLES = r"""
- name: Memory guard | The scripts, the drop-in and the units
  dgxspark.cluster.node_files:
    files:
      - path: /usr/local/lib/dgxspark
        state: directory
      - path: /usr/local/lib/dgxspark/dgxspark-memory-guard
        content: "{{ lookup('ansible.builtin.file', 'dgxspark-memory-guard') }}\n"
        mode: "0755"
      - path: /etc/systemd/system/dgxspark-memory-guard.service
        content: "{{ lookup('ansible.builtin.template', 'dgxspark-memory-guard.service.j2') }}"
        validate: systemd-analyze verify %s:dgxspark-memory-guard.service
        tag: units
  register: guard_files

- name: Memory guard | Reload systemd when a unit changed
  ansible.builtin.systemd_service:
    daemon_reload: true
  when: "'units' in guard_files.changed_tags"
"""

RETURN = r"""
files:
  description: Every entry with what was done to it (V(create), V(content), V(mode), V(remove); empty when it was right).
  returned: always
  type: list
  elements: dict
  sample: [{"path": "/etc/x.conf", "state": "file", "tag": "units", "actions": ["content"]}]
changed_paths:
  description: The paths that changed (or would change in check mode).
  returned: always
  type: list
  elements: str
changed_tags:
  description: The tags of the entries that changed, each once, in order.
  returned: always
  type: list
  elements: str
"""

import shlex

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dgxspark.cluster.plugins.module_utils.node_files import (
    EntryError, apply, normalize)


def main():
    module = AnsibleModule(
        argument_spec=dict(files=dict(type="list", elements="dict", required=True, options=dict(
            path=dict(type="str", required=True),
            state=dict(type="str", choices=["file", "directory", "absent"], default="file"),
            content=dict(type="str"),
            mode=dict(type="str"),
            validate=dict(type="str"),
            tag=dict(type="str")))),
        supports_check_mode=True,
    )
    # AnsibleModule fills every suboption in; normalize wants only what the entry says.
    given = [dict((key, value) for key, value in entry.items() if value is not None)
             for entry in module.params["files"]]

    def run(command):
        return module.run_command(shlex.split(command))

    try:
        entries = normalize(given)
        result = apply(entries, module.check_mode, run)
    except (EntryError, OSError) as exc:
        module.fail_json(msg="node_files: %s" % exc)
    diff = result.pop("diff")
    if module._diff:
        result["diff"] = diff
    module.exit_json(changed=bool(result["changed_paths"]), **result)


if __name__ == "__main__":
    main()
