# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""The decode memory-bandwidth estimate (logic in module_utils/benchmark.py)."""
from __future__ import annotations

from ansible_collections.dgxspark.cluster.plugins.module_utils import benchmark
from ansible_collections.dgxspark.cluster.plugins.module_utils.plan.model import parse_model
from ansible_collections.dgxspark.cluster.plugins.plugin_utils.filters import named


@named("decode_bytes_per_token")
def decode_bytes_per_token(model_config, tensor_parallel_size=1):
    # the plan engine's input errors (ValueErrors) name the option or the config field
    return benchmark.weight_bytes_per_token(parse_model(model_config), tensor_parallel_size)


class FilterModule(object):
    def filters(self):
        return {"decode_bytes_per_token": decode_bytes_per_token}
