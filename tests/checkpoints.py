"""Tiny safetensors checkpoints for tests (written with plugins/module_utils/checkpoint.py)."""
from __future__ import annotations

import json
import os

from ansible_collections.dgxspark.cluster.plugins.module_utils import checkpoint as ckpt


def data(dtype, shape, fill=0):
    """A tensor for ``ckpt.write_safetensors``: (dtype, shape, bytes of ``fill``)."""
    count = 1
    for d in shape:
        count *= d
    return (dtype, shape, bytes([fill]) * ((count * ckpt.DTYPE_BITS[dtype] + 7) // 8))


def write_checkpoint(directory, shards, config=None, index=True, extra=None):
    """``directory`` with config.json (unless ``config`` is None), the safetensors files of
    ``shards`` (name -> {tensor: data(...)}), their index (unless ``index`` is false) and
    the text files of ``extra`` (name -> text)."""
    directory = str(directory)
    os.makedirs(directory, exist_ok=True)
    if config is not None:
        with open(os.path.join(directory, "config.json"), "w") as handle:
            json.dump(config, handle)
    weight_map = {}
    for name, tensors in shards.items():
        ckpt.write_safetensors(os.path.join(directory, name), tensors)
        weight_map.update((t, name) for t in tensors)
    if index:
        ckpt.write_index(directory, weight_map)
    for name, text in (extra or {}).items():
        with open(os.path.join(directory, name), "w") as handle:
            handle.write(text)
    return directory
