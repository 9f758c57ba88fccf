"""Shared test setup: import the collection the way Ansible does.

`.collections/ansible_collections/dgxspark/cluster` is a symlink to the repository root,
so `ansible_collections.dgxspark.cluster.plugins...` imports this checkout.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / ".collections"))
# ansible-runner and subprocess calls find ansible-playbook next to this Python (.venv/bin).
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
os.environ.setdefault("ANSIBLE_CONFIG", str(ROOT / "ansible.cfg"))

GLM = str(ROOT / "recipes/models/glm-5.2-nvfp4")
MIMO = str(ROOT / "recipes/models/mimo-v2.5-nvfp4")


@pytest.fixture
def root():
    return ROOT


def recipe_engine_args(recipe):
    """A recipe's vllm serve engine arguments as site.yml renders them (the recipe lookup's
    module_utils/recipe.py: the plan proven with the bundled profile, whose virtual-head
    padding joins --hf-overrides)."""
    import yaml

    from ansible_collections.dgxspark.cluster.plugins.module_utils import recipe as recipes

    data = yaml.safe_load((ROOT / "recipes/vars" / ("%s.yml" % recipe)).read_text())
    return recipes.inputs(data, None, {"collection_root": str(ROOT)})["vllm_cluster_engine_args"]


@pytest.fixture
def write_config(tmp_path):
    """Write a config.json built from a base and overrides; returns its directory."""
    counter = {"n": 0}

    def _write(base, **overrides):
        data = dict(BASES[base])
        for key, value in overrides.items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        counter["n"] += 1
        path = tmp_path / ("model%d" % counter["n"])
        path.mkdir()
        (path / "config.json").write_text(json.dumps(data))
        return str(path)

    return _write


GQA = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
    "num_hidden_layers": 4, "num_attention_heads": 64, "num_key_value_heads": 4,
    "head_dim": 64, "vocab_size": 128256, "max_position_embeddings": 8192,
    "intermediate_size": 14336, "torch_dtype": "bfloat16",
}
MLA = {
    "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3", "hidden_size": 7168,
    "num_hidden_layers": 4, "num_attention_heads": 64, "num_key_value_heads": 64,
    "kv_lora_rank": 512, "qk_rope_head_dim": 64, "qk_nope_head_dim": 128, "v_head_dim": 128,
    "q_lora_rank": 1536, "n_routed_experts": 256, "num_experts_per_tok": 8,
    "n_shared_experts": 1, "moe_intermediate_size": 2048, "intermediate_size": 18432,
    "first_k_dense_replace": 1, "num_nextn_predict_layers": 1, "vocab_size": 129280,
    "max_position_embeddings": 163840,
}
HYBRID = {
    "architectures": ["MiMoV2ForCausalLM"], "model_type": "mimo_v2", "hidden_size": 4096,
    "num_hidden_layers": 6, "num_attention_heads": 64, "num_key_value_heads": 4,
    "head_dim": 192, "v_head_dim": 128, "swa_num_attention_heads": 64,
    "swa_num_key_value_heads": 8, "swa_head_dim": 192, "swa_v_head_dim": 128,
    "hybrid_layer_pattern": [0, 1, 1, 1, 1, 1], "sliding_window_size": 128,
    "add_swa_attention_sink_bias": True, "n_routed_experts": 256, "num_experts_per_tok": 8,
    "moe_intermediate_size": 2048, "intermediate_size": 16384, "moe_layer_freq": [0, 1, 1, 1, 1, 1],
    "vocab_size": 152576, "max_position_embeddings": 1048576,
}
BASES = {"gqa": GQA, "mla": MLA, "hybrid": HYBRID,
         "glm": json.loads(Path(GLM, "config.json").read_text()),
         "mimo": json.loads(Path(MIMO, "config.json").read_text())}
