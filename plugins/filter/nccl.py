# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Filter: the NCCL probe's output to the image's NCCL labels (logic in module_utils/nccl.py)."""
from __future__ import annotations

from ansible_collections.dgxspark.cluster.plugins.module_utils import nccl
from ansible_collections.dgxspark.cluster.plugins.plugin_utils.filters import named


@named("nccl_probe_labels")
def nccl_probe_labels(probe):
    return nccl.probe_labels(probe)


@named("nccl_library_env")
def nccl_library_env(env):
    """The entries of an environment that decide which NCCL library a process loads."""
    if not isinstance(env, dict):
        raise ValueError("_input=%r: must be a dict. Fix: give the containers' environment"
                         % (env,))
    return dict((str(k), str(v)) for k, v in env.items() if k in nccl.LIBRARY_ENV)


class FilterModule(object):
    def filters(self):
        return {"nccl_probe_labels": nccl_probe_labels, "nccl_library_env": nccl_library_env}
