# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""dgxspark.cluster.eugr_recipe: import an eugr recipe on the controller (the logic is
module_utils/eugr.py; this reads and writes the files and turns the result into a task's)."""
from __future__ import annotations

import json
import os

import yaml

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.dgxspark.cluster.plugins.module_utils import eugr
from ansible_collections.dgxspark.cluster.plugins.module_utils.recipe import RecipeError

COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_diff = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        args = self.validate_argument_spec(argument_spec=eugr.ARGUMENT_SPEC)[1]
        # plain str, dict and list (Ansible's tagged values are not YAML-representable)
        args = json.loads(json.dumps(args))
        src = self._loader.path_dwim(args["src"])
        dest = self._loader.path_dwim(args["dest"]) if args["dest"] else None
        profile = args["model_profile"]
        if profile:
            profile = self._loader.path_dwim(profile)
        try:
            with open(src) as handle:
                data = yaml.safe_load(handle)
        except (OSError, yaml.YAMLError) as exc:
            raise AnsibleActionFail("src=%s: cannot read it as YAML: %s. Fix: give the path of "
                                    "an eugr recipe file on the controller" % (src, exc))
        try:
            converted = eugr.convert(
                data, params=args["params"], name=args["name"], model_dir=args["model_dir"],
                model_profile=profile, build_profile=args["build_profile"],
                patches=args["patches"], served_model_name=args["served_model_name"])
            verdict = eugr.preflight(converted["recipe"], COLLECTION_ROOT) \
                if args["preflight"] else None
        except (RecipeError, ValueError) as exc:  # EugrError and the plan's InputError
            raise AnsibleActionFail("eugr recipe %s: %s" % (src, exc))
        result.update(recipe=converted["recipe"], unmapped=converted["unmapped"],
                      notes=converted["notes"], command=converted["command"], changed=False)
        for item in converted["unmapped"]:
            self._display.warning("eugr recipe %s: %s=%s not imported: %s. Fix: %s" % (
                os.path.basename(src), item["field"], item["value"], item["reason"], item["fix"]))
        if args["strict"] and converted["unmapped"]:
            result.update(failed=True, msg="eugr recipe %s: %d part(s) could not be imported "
                          "(strict): %s" % (src, len(converted["unmapped"]), "; ".join(
                              "%s=%s" % (i["field"], i["value"]) for i in converted["unmapped"])))
            return result
        if dest:
            text = eugr.dump(converted, args["src"], dest)
            before = None
            if os.path.exists(dest):
                with open(dest) as handle:
                    before = handle.read()
            result["dest"] = dest
            if before != text:
                result["changed"] = True
                if self._task.diff:
                    result["diff"] = {"before": before or "", "after": text,
                                      "before_header": dest, "after_header": dest}
                if not self._task.check_mode:
                    directory = os.path.dirname(dest)
                    if directory and not os.path.isdir(directory):
                        os.makedirs(directory)
                    with open(dest, "w") as handle:
                        handle.write(text)
        if verdict is not None:
            result.update(satisfiable=verdict["satisfiable"], violations=verdict["violations"],
                          engine_args=verdict["engine_args"])
            for item in verdict["warnings"]:
                self._display.warning("[%s] %s (hint: %s)" % (item["rule"], item["message"],
                                                              item["fix"]))
            if not verdict["satisfiable"] and args["fail_on_violations"]:
                result.update(failed=True, msg="the imported plan is not satisfiable (%d "
                              "violation(s)):\n- %s" % (len(verdict["violations"]), "\n- ".join(
                                  "[%s] %s -- fix: %s" % (v["rule"], v["message"], v["fix"])
                                  for v in verdict["violations"])))
        return result
