# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Benchmark of a running vLLM OpenAI endpoint (plain Python; HTTP through Ansible's open_url).

* ``parse_prometheus``: vLLM's ``/metrics`` text into ``{(name, labels): value}``.
* ``spec_decode``: MTP acceptance (overall, mean acceptance length, per draft position) from
  two scrapes, with vLLM's counter names.
* ``stream_chat``: one streamed chat completion: TTFT, decode tokens/s, end-to-end time.
* ``run``: single-stream requests bracketed by scrapes, and an optional concurrency sweep.
* ``weight_bytes_per_token`` / ``decode_ceiling``: the memory-bandwidth ceiling of decode.
"""
from __future__ import annotations

import json
import re
import threading
import time

from ansible.module_utils.urls import open_url

from .plan.errors import ModelConfigError
from .plan.request import OPTIONS, coerce_int

SPARK_BANDWIDTH = 273e9  # bytes/s, LPDDR5x of one DGX Spark

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text):
    """Samples of a Prometheus text exposition: {(name, ((label, value), ...)): float}."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if not match:
            continue
        labels = tuple(sorted((k, v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\"))
                              for k, v in _LABEL.findall(match.group(3) or "")))
        try:
            out[(match.group(1), labels)] = float(match.group(4))
        except ValueError:
            continue
    return out


def total(samples, name, model=None, **match):
    """Sum of a metric over its label sets (only the served model's, when it is labelled)."""
    value = 0.0
    for (sample, labels), number in samples.items():
        labels = dict(labels)
        if sample != name:
            continue
        if model is not None and "model_name" in labels and labels["model_name"] != model:
            continue
        if any(labels.get(k) != v for k, v in match.items()):
            continue
        value += number
    return value


def spec_decode(before, after, model=None):
    """MTP acceptance between two scrapes; None when no drafts were made."""
    def delta(name, **match):
        return total(after, name, model, **match) - total(before, name, model, **match)

    drafts = delta("vllm:spec_decode_num_drafts_total")
    if drafts <= 0:
        return None
    draft_tokens = delta("vllm:spec_decode_num_draft_tokens_total")
    accepted = delta("vllm:spec_decode_num_accepted_tokens_total")
    positions = sorted({int(dict(labels)["position"]) for (name, labels) in after
                        if name == "vllm:spec_decode_num_accepted_tokens_per_pos_total"
                        and "position" in dict(labels)})
    per_position = [round(delta("vllm:spec_decode_num_accepted_tokens_per_pos_total",
                                position=str(pos)) / drafts, 4) for pos in positions]
    return {"drafts": int(drafts), "draft_tokens": int(draft_tokens), "accepted": int(accepted),
            "acceptance_rate": round(accepted / draft_tokens, 4) if draft_tokens else None,
            "mean_acceptance_length": round(1 + accepted / drafts, 4),
            "per_position": per_position}


def _request(url, api_key=None, body=None, timeout=60):
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = "Bearer " + api_key
    data = json.dumps(body).encode() if body is not None else None
    return open_url(url, data=data, headers=headers, timeout=timeout,
                    method="POST" if data is not None else "GET")


def scrape(api_url, api_key=None, timeout=60):
    with _request(api_url + "/metrics", api_key, timeout=timeout) as response:
        return parse_prometheus(response.read().decode())


def stream_chat(api_url, model, prompt, max_tokens, api_key=None, timeout=600, extra=None):
    """One streamed chat completion. TTFT is the time to the first content; decode tok/s is
    (completion tokens - 1) over the time from the first to the last content chunk."""
    body = {"model": model, "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens, "stream": True, "stream_options": {"include_usage": True},
            "temperature": 0}
    body.update(extra or {})
    start = time.time()
    first = last = None
    chunks, usage = 0, {}
    with _request(api_url + "/v1/chat/completions", api_key, body, timeout) as response:
        for raw in response:
            line = raw.decode().strip()
            if not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            if payload == "[DONE]":
                break
            event = json.loads(payload)
            usage = event.get("usage") or usage
            for choice in event.get("choices") or ():
                if (choice.get("delta") or {}).get("content"):
                    now = time.time()
                    first = first or now
                    last = now
                    chunks += 1
    end = time.time()
    tokens = int(usage.get("completion_tokens") or chunks)
    decode = (tokens - 1) / (last - first) if first and last and last > first and tokens > 1 \
        else None
    return {"ttft_s": round(first - start, 4) if first else None,
            "decode_tok_s": round(decode, 2) if decode else None,
            "e2e_s": round(end - start, 4), "completion_tokens": tokens,
            "prompt_tokens": int(usage.get("prompt_tokens") or 0)}


def _mean(values):
    values = [v for v in values if v is not None]
    return round(sum(values) / len(values), 4) if values else None


def sweep(api_url, model, prompt, max_tokens, levels, api_key=None, timeout=600, extra=None):
    rows = []
    for level in levels:
        results = [None] * level

        def one(i):
            results[i] = stream_chat(api_url, model, prompt, max_tokens, api_key, timeout, extra)

        start = time.time()
        threads = [threading.Thread(target=one, args=(i,)) for i in range(level)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.time() - start
        done = [r for r in results if r]
        rows.append({"concurrency": level,
                     "output_tok_s": round(sum(r["completion_tokens"] for r in done) / elapsed, 2),
                     "mean_ttft_s": _mean(r["ttft_s"] for r in done)})
    return rows


def run(api_url, model, prompts, max_tokens, requests, api_key=None, concurrency=(),
        timeout=600, extra=None, bytes_per_token_per_node=None, bandwidth=SPARK_BANDWIDTH):
    api_url = api_url.rstrip("/")
    before = scrape(api_url, api_key, timeout)
    single = [stream_chat(api_url, model, prompts[i % len(prompts)], max_tokens, api_key,
                          timeout, extra) for i in range(requests)]
    after = scrape(api_url, api_key, timeout)
    results = {
        "requests": single,
        "ttft_s": _mean(r["ttft_s"] for r in single),
        "decode_tok_s": _mean(r["decode_tok_s"] for r in single),
        "e2e_s": _mean(r["e2e_s"] for r in single),
        "completion_tokens": sum(r["completion_tokens"] for r in single),
        "prompt_tokens": sum(r["prompt_tokens"] for r in single),
        "spec_decode": spec_decode(before, after, model),
        "sweep": sweep(api_url, model, prompts[0], max_tokens, list(concurrency), api_key,
                       timeout, extra) if concurrency else [],
        "ceiling_tok_s": None, "ceiling_fraction": None,
    }
    if bytes_per_token_per_node:
        ceiling = decode_ceiling(bytes_per_token_per_node, bandwidth)
        results["ceiling_tok_s"] = round(ceiling, 2)
        if results["decode_tok_s"]:
            results["ceiling_fraction"] = round(results["decode_tok_s"] / ceiling, 4)
    return results


# --- The memory-bandwidth ceiling of decode -------------------------------------------------

BYTES_PER_PARAM = {"nvfp4": 4.5 / 8, "mxfp4": 4.25 / 8, "fp8": 1.0, "int8": 1.0}


def weight_bytes_per_token(model, tensor_parallel_size=1):
    """Estimated weight bytes per decoded token (batch 1) on the critical path of one node, for
    a parsed model
    (plan.model.parse_model): attention and dense MLPs of every layer, the routed experts a
    token picks plus the shared experts, and the bf16 LM head; quantized weights at their
    bits per parameter including block scales (NVFP4: 4 bits + an fp8 scale per 16 = 4.5).
    Tensor-parallel ranks read their 1/TP shares at the same time; pipeline stages run one
    after another for a single stream, so PP does not divide it. KV-cache reads and
    activations are not counted, so the ceiling is an upper bound.

    Raises PlanInputError for a tensor_parallel_size outside the plan's bounds (0 was a
    division by zero) and ModelConfigError for a config without hidden_size."""
    tensor_parallel_size = coerce_int("tensor_parallel_size", tensor_parallel_size,
                                      OPTIONS["tensor_parallel_size"])
    h = model.hidden_size
    if h is None:
        raise ModelConfigError(model.path, "hidden_size", "is missing (needed for the weight "
                               "bytes of the decode bandwidth estimate)")
    if model.mla:
        m = model.mla
        heads, nope, rope = m["q_heads"], m["qk_nope_head_dim"], m["qk_rope_head_dim"]
        q = (h * m["q_lora_rank"] + m["q_lora_rank"] * heads * (nope + rope)) if m.get(
            "q_lora_rank") else h * heads * (nope + rope)
        attention = model.num_layers * (q + h * (m["kv_lora_rank"] + rope)
                                        + m["kv_lora_rank"] * heads * (nope + m["v_head_dim"])
                                        + heads * m["v_head_dim"] * h)
    else:
        attention = sum(a.num_layers * (h * (a.q_heads * a.head_dim + a.kv_heads * a.head_dim
                                             + a.kv_heads * a.v_head_dim)
                                        + a.q_heads * a.v_head_dim * h)
                        for a in model.attention)
    mlp = 0
    moe_layers = model.num_layers - model.dense_layers if model.moe else 0
    if model.moe:
        active = model.moe["experts_per_token"] + model.moe["shared_experts"]
        mlp += moe_layers * active * 3 * h * model.moe["intermediate_size"]
    mlp += (model.num_layers - moe_layers) * 3 * h * (model.dense_intermediate_size or 0)
    per_param = BYTES_PER_PARAM.get((model.quant or {}).get("method"), 2.0)
    total_bytes = (attention + mlp) * per_param + model.vocab_size * h * 2
    return total_bytes / tensor_parallel_size


def decode_ceiling(bytes_per_token_per_node, bandwidth=SPARK_BANDWIDTH):
    """Tokens/s one stream can decode at most when the weights on the critical path are read
    once per token at full memory bandwidth."""
    return bandwidth / float(bytes_per_token_per_node)
