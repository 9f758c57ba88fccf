#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: eugr_recipe
short_description: Import a recipe of eugr/spark-vllm-docker as a recipe of this collection
version_added: "0.2.0"
description:
  - Reads a recipe in the format of eugr/spark-vllm-docker (C(recipe_version) C("1") with C(name),
    C(container), C(command) with C({param}) substitution from C(defaults), C(env), C(mods),
    C(model), C(cluster_only) / C(solo_only), ...) and writes the equivalent recipe vars file of
    this collection (C(recipe_plan), C(recipe_serve_args), C(recipe_env), C(recipe_image),
    C(recipe_model_dir), ...), which C(site.yml) runs with C(-e dgxspark_recipe=<file>).
  - The C(vllm serve) command is split as the collection wants it; the plan options (TP, PP,
    DCP, MTP, capture sizes, KV cache, context) go to the plan, which preflight proves; vLLM
    0.33.0's other arguments to the serve arguments; C(--host), C(--port) and the model to the
    roles that set them.
  - Nothing is dropped silently. What has no equivalent here (a mod other than those the
    collection covers, the container name, build arguments, a flag vLLM 0.33.0 does not have, a
    per-node fabric variable such as C(NCCL_IB_GID_INDEX)) is returned in RV(unmapped) with the
    reason and the fix, written as comments at the top of the file, and warned about; what went
    elsewhere is in RV(notes). The mod C(mimo-v2-tp3-virtual-heads) becomes the plan's
    C(virtual_heads) and the shipped patches C(virtual-heads), C(moe-zero-fill) and
    C(sink-padding).
  - Then proves the imported recipe as C(site.yml)'s preflight does (the plan with its image's
    build profile and patches, the recipe's model profile) and fails with every violation, each
    naming the rule and the fix.
  - A recipe that cannot be imported (not YAML, an unknown or missing field, a C({param})
    without a value, a command that is not C(vllm serve), broken quoting or JSON) fails naming
    the field, the value and the fix.
  - Runs on the controller (an action plugin); relative paths are relative to the playbook's
    directory.
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
  src:
    description: The eugr recipe (YAML) on the controller.
    type: path
    required: true
  dest:
    description:
      - Where to write the recipe vars file on the controller (a C(.yml) file; a directory of
        your recipes, given to the recipe lookup as C(dgxspark_recipe_dirs), lets C(site.yml)
        find it by name). Without it nothing is written and the recipe is only returned.
    type: path
  name:
    description: The recipe's C(recipe_name); default the eugr C(name) in lower case with underscores.
    type: str
  params:
    description:
      - Values for the C({param}) placeholders of the command that replace the recipe's
        C(defaults), as eugr's command-line overrides do (for example C(tensor_parallel), C(max_model_len)).
    type: dict
    default: {}
  model_dir:
    description: Where the model is on every node (C(recipe_model_dir)); default C(/var/lib/dgxspark/models/<model name>).
    type: str
  model_profile:
    description:
      - The model's C(config.json) (or its directory) on the controller, which preflight proves the
        plan with (C(recipe_model_profile)). Default the collection's bundled profile of the
        recipe's model (C(nvidia/GLM-5.2-NVFP4), C(Mapika/GLM-5.2-NVFP4),
        C(lukealonso/MiMo-V2.5-NVFP4)); another model needs it.
    type: path
  build_profile:
    description: The build profile of the image the recipe runs on (C(recipe_image.build_profile)).
    type: str
    default: vllm-0.33
  patches:
    description: Catalog patches of the image, besides those a covered mod brings (C(recipe_image.patches)).
    type: list
    elements: str
    default: []
  served_model_name:
    description: The name the API serves the model under; default the command's C(--served-model-name), else its model.
    type: str
  preflight:
    description: Prove the imported recipe's plan (the plan engine, as C(site.yml)'s preflight).
    type: bool
    default: true
  fail_on_violations:
    description: Fail when the plan is not satisfiable (the file is still written, for you to fix it).
    type: bool
    default: true
  strict:
    description: Fail, writing nothing, when anything of the eugr recipe could not be imported (RV(unmapped) not empty).
    type: bool
    default: false
seealso:
  - name: eugr/spark-vllm-docker recipe format
    description: The format this module reads (recipes/README.md of the launcher).
    link: https://github.com/eugr/spark-vllm-docker/blob/main/recipes/README.md
  - module: dgxspark.cluster.vllm_plan
"""

EXAMPLES = r"""
- name: Import an eugr recipe and prove it
  dgxspark.cluster.eugr_recipe:
    src: eugr/mimo-v2.5-tp3.yaml
    dest: "{{ playbook_dir }}/my-recipes/mimo_eugr.yml"
    name: mimo_eugr

- name: Import GLM-5.2 for 4 Sparks instead of 8, with the draft-DCP patch
  dgxspark.cluster.eugr_recipe:
    src: eugr/glm-5.2-nvfp4.yaml
    dest: "{{ playbook_dir }}/my-recipes/glm52_eugr.yml"
    params: {tensor_parallel: 4, max_model_len: 131072}
    patches: [draft-dcp-inherit]
"""

RETURN = r"""
recipe:
  description: The imported recipe's variables (C(recipe_name), C(recipe_plan), C(recipe_image), ...).
  returned: always
  type: dict
unmapped:
  description: What of the eugr recipe has no equivalent here, each with C(field), C(value), C(reason) and C(fix).
  returned: always
  type: list
  elements: dict
notes:
  description: Where the rest of the eugr recipe went, one sentence each.
  returned: always
  type: list
  elements: str
command:
  description: The eugr command with its parameters substituted.
  returned: always
  type: str
dest:
  description: The file written.
  returned: when O(dest) is given
  type: str
satisfiable:
  description: Whether the imported plan passes preflight.
  returned: when O(preflight=true)
  type: bool
violations:
  description: The preflight violations (C(rule), C(message), C(fix), ...).
  returned: when O(preflight=true)
  type: list
  elements: dict
engine_args:
  description: The vllm serve engine arguments the vllm_cluster role would run.
  returned: when O(preflight=true)
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dgxspark.cluster.plugins.module_utils.eugr import ARGUMENT_SPEC


def main():
    # The work is done on the controller by the action plugin of the same name
    # (plugins/action/eugr_recipe.py); this runs only if the module is called without it.
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.fail_json(msg="dgxspark.cluster.eugr_recipe runs on the controller through its action "
                         "plugin: call it as a task of a play (not with ansible -m from another "
                         "collection path)")


if __name__ == "__main__":
    main()
