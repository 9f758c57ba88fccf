# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
name: recipe
author: dgxspark.cluster contributors (@dgxspark)
version_added: "0.2.0"
short_description: A recipe's inputs for every role (site.yml's one mapping)
description:
  - Loads a recipe (C(recipes/vars/<name>.yml) of the collection, a directory of your own, or
    a recipe file), checks it, applies the C(dgxspark_*) overrides and returns the input
    variables of the roles (C(preflight_*), C(model_*), C(vllm_image_*), C(vllm_cluster_*),
    C(verify_*), C(benchmark_*), C(eval_*)) as one dict. The playbooks set each of them only where neither
    the inventory nor C(-e) sets it (C(playbooks/tasks/recipe.yml)).
  - A recipe that does not exist, an unknown key, a plan key that belongs to the image or a
    serve argument that is a plan option fails, naming the variable, the value and the fix.
options:
  _terms:
    description: The recipe's name, or the path of a recipe file.
    required: true
  overrides:
    description:
      - The C(dgxspark_*) overrides (C(dgxspark_plan), C(dgxspark_serve_args), C(dgxspark_env)
        merge key by key; C(dgxspark_model_dir), C(dgxspark_served_model_name),
        C(dgxspark_image_patches), C(dgxspark_image_build_profile), C(dgxspark_eval_min_scores),
        C(dgxspark_model_source)
        replace). Keys with a null value count as not given.
    type: dict
    default: {}
  recipe_dirs:
    description: Directories of your own recipes, searched before the collection's.
    type: list
    elements: str
    default: []
  results_dir:
    description:
      - Where the benchmark and eval JSON go. A relative path is taken from the directory
        ansible-playbook runs in (the user's project), never from the installed collection.
    type: str
    default: results
  lab:
    description: The cluster is the simulated lab (no minimum eval scores; said in the results).
    type: bool
    default: false
  fabric_topology:
    description: The fabric's topology, kept with the results.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: The inputs of recipe glm52 with a shorter context
  ansible.builtin.debug:
    msg: "{{ lookup('dgxspark.cluster.recipe', 'glm52', overrides={'dgxspark_plan': {'max_model_len': 65536}}) }}"
"""

RETURN = r"""
_raw:
  description: One dict, role variable to value.
  type: list
  elements: dict
"""

import os

import yaml

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.dgxspark.cluster.plugins.module_utils import recipe

COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        if len(terms) != 1:
            raise AnsibleLookupError("dgxspark.cluster.recipe takes one recipe name, got %r"
                                     % (terms,))
        dirs = list(self.get_option("recipe_dirs")) + [os.path.join(COLLECTION_ROOT, "recipes",
                                                                    "vars")]
        try:
            path = recipe.recipe_path(terms[0], dirs)
            with open(path) as handle:
                data = yaml.safe_load(handle)
            recipe.validate(data, path)
            out = recipe.inputs(data, self.get_option("overrides"), {
                "collection_root": COLLECTION_ROOT,
                "results_dir": os.path.abspath(self.get_option("results_dir")),
                "lab": self.get_option("lab"),
                "fabric_topology": self.get_option("fabric_topology"),
            })
        except (recipe.RecipeError, ValueError) as exc:  # ValueError: the plan's InputError
            raise AnsibleLookupError("recipe %s: %s" % (terms[0], exc))
        except (OSError, yaml.YAMLError) as exc:
            raise AnsibleLookupError("recipe %s: cannot read it: %s" % (terms[0], exc))
        out["dgxspark_recipe_file"] = path
        return [out]
