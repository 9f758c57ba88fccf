"""The benchmark's arithmetic and parsing (plugins/module_utils/benchmark.py)."""
from __future__ import annotations

import pytest

from ansible_collections.dgxspark.cluster.plugins.module_utils import benchmark
from ansible_collections.dgxspark.cluster.plugins.module_utils.plan.model import parse_model

from conftest import GLM, MIMO

SCRAPE = '''# HELP vllm:spec_decode_num_drafts_total Number of spec decoding drafts.
# TYPE vllm:spec_decode_num_drafts_total counter
vllm:spec_decode_num_drafts_total{engine="0",model_name="m"} %(drafts)s
vllm:spec_decode_num_drafts_total{engine="0",model_name="other"} 1000.0
vllm:spec_decode_num_draft_tokens_total{engine="0",model_name="m"} %(draft_tokens)s
vllm:spec_decode_num_accepted_tokens_total{engine="0",model_name="m"} %(accepted)s
vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="0",model_name="m",position="0"} %(p0)s
vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="0",model_name="m",position="1"} %(p1)s
vllm:request_success_total{finished_reason="stop",model_name="m"} 3
weird_label{a="x \\"quoted\\" y"} 1e3
'''


def scrape(**values):
    return benchmark.parse_prometheus(SCRAPE % values)


def test_parse_prometheus_labels_escapes_and_comments():
    samples = scrape(drafts=1, draft_tokens=2, accepted=1, p0=1, p1=0)
    assert samples[("weird_label", (("a", 'x "quoted" y'),))] == 1000.0
    assert benchmark.total(samples, "vllm:spec_decode_num_drafts_total", "m") == 1.0
    assert benchmark.total(samples, "vllm:spec_decode_num_drafts_total") == 1001.0
    assert not any(name.startswith("#") for name, dummy in samples)


def test_spec_decode_acceptance_between_two_scrapes():
    before = scrape(drafts=10, draft_tokens=20, accepted=10, p0=7, p1=3)
    after = scrape(drafts=50, draft_tokens=100, accepted=58, p0=39, p1=19)
    # 40 drafts of 2 tokens: 48 accepted -> 60 %, mean length 1 + 48/40 = 2.2;
    # position 0: 32/40 = 0.8, position 1: 16/40 = 0.4.
    assert benchmark.spec_decode(before, after, "m") == {
        "drafts": 40, "draft_tokens": 80, "accepted": 48, "acceptance_rate": 0.6,
        "mean_acceptance_length": 2.2, "per_position": [0.8, 0.4]}
    assert benchmark.spec_decode(after, after, "m") is None


def test_decode_ceiling():
    # 273 GB/s over 5.46 GB per token: 50 tokens/s.
    assert benchmark.decode_ceiling(5.46e9) == pytest.approx(50.0)


@pytest.mark.parametrize("model, tp, words", [
    # issue 11: decode_bytes_per_token(0) failed with "float division by zero"
    (GLM, 0, "tensor_parallel_size=0: must be between 1 and 512"),
    (GLM, "four", "tensor_parallel_size='four': must be an integer"),
    (GLM, None, "tensor_parallel_size=None: must be an integer"),
    ("/nonexistent/model", 4, "model config /nonexistent/model: does not exist"),
])
def test_decode_bytes_per_token_filter_errors_name_the_option(model, tp, words):
    from ansible.errors import AnsibleFilterError
    from ansible_collections.dgxspark.cluster.plugins.filter.benchmark import (
        decode_bytes_per_token)
    with pytest.raises(AnsibleFilterError) as err:
        decode_bytes_per_token(model, tp)
    assert words in str(err.value) and "Fix:" in str(err.value)
    assert str(err.value).startswith("dgxspark.cluster.decode_bytes_per_token: ")


def test_decode_bytes_per_token_needs_hidden_size(write_config):
    with pytest.raises(ValueError, match="hidden_size"):
        benchmark.weight_bytes_per_token(parse_model(write_config("mla", hidden_size=None)))


def test_weight_bytes_per_token_of_the_bundled_models():
    glm = parse_model(GLM)
    # GLM-5.2: 78 layers, hidden 6144, MLA (q_lora 2048, 64 heads x (192+64), kv_lora 512,
    # v 256) -> 141.7M attention parameters per layer; 75 MoE layers x 9 active experts
    # (8 routed + 1 shared) x 3 x 6144 x 2048 and 3 dense layers x 3 x 6144 x 12288:
    # 21.10 G parameters at 4.5 bits = 11.87 GB, plus the bf16 LM head; over TP4.
    per_layer = (6144 * 2048 + 2048 * 64 * 256 + 6144 * (512 + 64) + 512 * 64 * (192 + 256)
                 + 64 * 256 * 6144)
    params = 78 * per_layer + 75 * 9 * 3 * 6144 * 2048 + 3 * 3 * 6144 * 12288
    expected = (params * 4.5 / 8 + glm.vocab_size * 6144 * 2) / 4
    assert benchmark.weight_bytes_per_token(glm, 4) == pytest.approx(expected)
    assert 5e9 < expected < 7e9
    mimo = parse_model(MIMO)
    tp1 = benchmark.weight_bytes_per_token(mimo, 1)
    assert benchmark.weight_bytes_per_token(mimo, 3) == pytest.approx(tp1 / 3)
    # 310B total / 15B active: about 15 G active parameters at 4.5 bits plus the LM head.
    assert 7e9 < tp1 < 11e9
