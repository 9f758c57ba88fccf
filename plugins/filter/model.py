# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Filters of the model role (every decision is in module_utils/model.py)."""
from __future__ import annotations

from ansible_collections.dgxspark.cluster.plugins.module_utils import model
from ansible_collections.dgxspark.cluster.plugins.plugin_utils.filters import named


@named("model_parts")
def model_parts(source, store_dir):
    try:
        return model.head_parts(source, store_dir)
    except model.SourceError as exc:
        raise ValueError(str(exc))


class FilterModule(object):
    def filters(self):
        return {"model_parts": model_parts}
