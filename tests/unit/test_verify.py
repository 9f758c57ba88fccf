"""The verify stage's decisions (plugins/module_utils/findings/verify.py), each both ways."""
from __future__ import annotations

import copy

import pytest

from ansible_collections.dgxspark.cluster.plugins.module_utils.findings import verify

REFERENCE = {
    "model": "dgxspark-tiny",
    "engine": "vLLM 0.32.0 CPU build, one process, tensor_parallel_size 1",
    "requests": [
        {"prompt": "The quick brown fox", "prompt_token_ids": [10, 11],
         "token_ids": [52, 125, 158], "logprobs": [-3.273748, -2.389868, -3.400461]},
        {"prompt": "Reply", "prompt_token_ids": [12],
         "token_ids": [571, 981], "logprobs": [-3.091414, -1.578311]},
    ],
}

NODE_ENV = {
    "spark1": {"VLLM_HOST_IP": "10.20.0.11", "NCCL_IB_HCA": "rocep1s0f0,roceP2p1s0f0",
               "GLOO_SOCKET_IFNAME": "enp1s0f0np0", "NCCL_SOCKET_IFNAME": "enp1s0f0np0"},
    "spark2": {"VLLM_HOST_IP": "10.20.2.12", "NCCL_IB_HCA": "rocep1s0f1,roceP2p1s0f1",
               "GLOO_SOCKET_IFNAME": "enp1s0f0np0", "NCCL_SOCKET_IFNAME": "enp1s0f0np0"},
}


def choice(index, tokens, logprobs):
    return {"index": index, "logprobs": {"tokens": ["token_id:%d" % t for t in tokens],
                                         "token_logprobs": logprobs}}


def good_choices():
    """What vLLM answers to the batched request: one choice per prompt, as many tokens as the
    longest reference answer (3), so the 2-token reference request gets one token more."""
    extra = {1: ([777], [-0.5])}
    return [choice(i, r["token_ids"] + extra.get(i, ([], []))[0],
                   [lp + 2e-6 for lp in r["logprobs"]] + extra.get(i, ([], []))[1])
            for i, r in enumerate(REFERENCE["requests"])]


def batched(choices):
    return {"object": "text_completion", "choices": choices}


def base_inputs(**changes):
    inputs = {
        "url": "http://10.99.0.11:8000", "served": "dgxspark-tiny", "executor": "mp",
        "health_status": 200, "model_ids": ["dgxspark-tiny"], "models_status": 200,
        "join_rc": 0,
        "join_stdout_lines": ["ranks: 3 of 3 nodes in the engine's process group (port 29501)",
                              '["10.20.0.11", "10.20.2.12", "10.20.4.13"]'],
        "kv_log": "(EngineCore pid=18) INFO [kv_cache_utils.py:2327] CPU KV cache size: 32,768 "
                  "tokens, Maximum concurrency for 256 tokens per request: 128.00x",
        "kv_expected": 32768, "kv_tolerance": 0.05,
        "reference": copy.deepcopy(REFERENCE), "reference_answer": batched(good_choices()),
        "logprob_tolerance": 1e-4,
        "rank_nodes": copy.deepcopy(NODE_ENV),
        "rank_views": {node: [{"pid": 40, "name": "VLLM::Worker_TP%d" % i, "env": dict(env)}]
                       for i, (node, env) in enumerate(NODE_ENV.items())},
    }
    inputs.update(changes)
    return inputs


def test_a_healthy_cluster_passes_every_check():
    out = verify.report(base_inputs())
    assert out["failures"] == []
    assert out["kv_logged_tokens"] == 32768
    assert out["joined"] == ["10.20.0.11", "10.20.2.12", "10.20.4.13"]
    assert all(item["ok"] for item in out["tokens"])
    assert "kv cache: logged 32,768 tokens, plan engine estimate 32,768 (+0.0%)" in out["lines"]


@pytest.mark.parametrize("changes, expect", [
    ({"health_status": 503}, "health: http://10.99.0.11:8000/health answered 503"),
    ({"model_ids": ["other"]}, "models: dgxspark-tiny not in /v1/models (other)"),
    ({"join_rc": 1, "join_stdout_lines": ["ranks: 2 of 3 nodes in the engine's process group "
                                          "(port 29501) after 40s", '["10.20.0.11", "10.20.2.12"]']},
     "ranks: 2 of 3 nodes"),
    ({"kv_log": "GPU KV cache size: 40,000 tokens"}, "more than 5% apart"),
    ({"kv_log": "nothing logged"}, 'no "KV cache size" line'),
])
def test_each_failure_is_reported_for_its_reason(changes, expect):
    out = verify.report(base_inputs(**changes))
    assert any(expect in failure for failure in out["failures"]), out["failures"]
    assert len(out["failures"]) == 1, out["failures"]


def test_gpu_and_cpu_kv_lines_are_both_read():
    assert verify.logged_kv_tokens("GPU KV cache size: 132,096 tokens") == 132096
    assert verify.logged_kv_tokens("CPU KV cache size: 524,288 tokens") == 524288
    assert verify.logged_kv_tokens("a\nCPU KV cache size: 1 tokens\nCPU KV cache size: 2 tokens") == 2


def test_the_reference_is_asked_in_one_batched_request():
    body = verify.reference_request(REFERENCE)
    assert body == {"prompt": [[10, 11], [12]], "max_tokens": 3, "temperature": 0, "logprobs": 1,
                    "ignore_eos": True, "return_tokens_as_token_ids": True}


def test_choices_are_matched_by_their_index_not_their_order():
    out = verify.report(base_inputs(reference_answer=batched(list(reversed(good_choices())))))
    assert out["failures"] == []
    assert [item["detail"] for item in out["tokens"]] == [
        "same 3 tokens, logprobs within 2e-06", "same 2 tokens, logprobs within 2e-06"]


def test_other_tokens_than_the_reference_fail_naming_the_position():
    choices = good_choices()
    choices[1] = choice(1, [571, 982, 777], [-3.091414, -1.578311, -0.5])
    out = verify.report(base_inputs(reference_answer=batched(choices)))
    assert len(out["failures"]) == 1
    assert '"Reply" -> token 1 differs: served [982], the one-process reference [981]' in \
        out["failures"][0]


def test_logprobs_beyond_the_tolerance_fail_with_the_same_tokens():
    choices = good_choices()
    choices[0] = choice(0, [52, 125, 158], [-3.273748, -2.389868, -3.4])
    out = verify.report(base_inputs(reference_answer=batched(choices)))
    assert len(out["failures"]) == 1
    assert "same 3 tokens, but logprobs differ by up to 0.00046" in out["failures"][0]


def test_a_missing_or_broken_answer_fails_without_a_traceback():
    out = verify.report(base_inputs(reference_answer=None))
    assert len(out["failures"]) == 2
    assert all("no tokens with logprobs in the answer (no answer)" in f for f in out["failures"])
    out = verify.report(base_inputs(reference_answer={"error": {"message": "EngineDead"}}))
    assert len(out["failures"]) == 2
    assert all("EngineDead" in f for f in out["failures"])
    out = verify.report(base_inputs(reference_answer=batched(good_choices()[:1])))
    assert len(out["failures"]) == 1
    assert '"Reply" -> no tokens with logprobs in the answer' in out["failures"][0]


def test_without_a_reference_the_smoke_token_decides():
    passing = verify.report(base_inputs(reference={}, smoke_prompt="Reply with exactly: SPARKOK",
                                        smoke_expect="SPARKOK", smoke_reply=" SPARKOK\n"))
    assert passing["failures"] == []
    failing = verify.report(base_inputs(reference={}, smoke_prompt="p", smoke_expect="SPARKOK",
                                        smoke_reply="noise", smoke_status=200))
    assert failing["failures"] == ['smoke: expected "SPARKOK" in the reply, got "noise" (HTTP 200)']


def test_a_stand_in_engine_is_never_reported_as_checked():
    out = verify.report(base_inputs(standin=True, reference_answer=None,
                                    kv_log="GPU KV cache size: 9 tokens"))
    assert out["failures"] == []
    assert any(line.startswith("kv cache: not checked -- the lab's stand-in") for line in
               out["lines"])
    assert any(line.startswith("tokens: not checked") for line in out["lines"])


def test_a_worker_without_its_nodes_fabric_value_is_named():
    views = base_inputs()["rank_views"]
    views["spark2"][0]["env"]["NCCL_IB_HCA"] = None
    out = verify.report(base_inputs(rank_views=views))
    assert len(out["failures"]) == 1
    assert out["failures"][0].startswith(
        "ranks: VLLM::Worker_TP1 (pid 40) on spark2 sees NCCL_IB_HCA=None (node has "
        "rocep1s0f1,roceP2p1s0f1)")


def test_a_node_without_worker_processes_is_named():
    views = base_inputs()["rank_views"]
    views["spark2"] = verify.worker_list("Error: No such container: dgxspark-vllm")
    out = verify.report(base_inputs(rank_views=views))
    assert out["failures"] == ["ranks: spark2 has no vLLM worker process to read (Error: No such "
                               "container: dgxspark-vllm)"]


def test_ray_views_are_keyed_by_the_nodes_address():
    views = {env["VLLM_HOST_IP"]: dict(env) for env in NODE_ENV.values()}
    assert verify.report(base_inputs(executor="ray", rank_views=views))["failures"] == []
    del views["10.20.2.12"]
    out = verify.report(base_inputs(executor="ray", rank_views=views))
    assert out["failures"] == ["ranks: spark2 (10.20.2.12) runs no Ray node with its fabric address"]


def test_worker_list_reads_the_last_json_line():
    assert verify.worker_list('noise\n{"workers": [{"pid": 1, "name": "VLLM::Worker_TP0", '
                              '"env": {}}]}') == [{"pid": 1, "name": "VLLM::Worker_TP0", "env": {}}]
    assert verify.worker_list("") == {"error": "no output from the vllm container"}
