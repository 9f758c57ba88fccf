#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: vllm_plan
short_description: Prove a vLLM parallelism plan is satisfiable before any boot
version_added: "0.1.0"
description:
  - Reads a model's Hugging Face C(config.json) and checks a vLLM engine plan against vLLM's
    launch-time rules, in milliseconds and without GPUs.
  - The rules cover attention and KV heads vs TP for every layer type, vocabulary padding, MoE
    and dense widths vs TP and the quantization block, decode context parallelism (DCP), MTP
    token counts, draft TP, pipeline parallelism with MTP, the CUDA-graph capture list
    (truncation of an explicit cap, the Model Runner V1 rounding to multiples of
    O(speculative_config)'s C(num_speculative_tokens)+1 and its C(No valid cudagraph sizes)
    failure), KV-cache dtype and block size, and KV-cache capacity.
  - Plans virtual-head padding when O(virtual_heads=true) and TP does not divide the heads, and
    names the image patches the plan therefore needs.
  - Rules that differ between vLLM builds take the build from O(vllm_build).
  - Applies what vLLM does per architecture (MTP drafts, model-set capture caps, EAGLE drafts).
    An architecture it does not model, or a config part it cannot model (linear-attention or
    Mamba layers, an unknown quantization method), is reported as a warning that the verdict
    covers only the generic rules.
  - Fails when the plan is not satisfiable and lists every violation with its fix. Never changes
    anything; check mode behaves the same.
  - Option names are vLLM's own engine-argument names. Every input error names the option (or
    the config.json field), the value and the fix, and every option has bounds.
author:
  - dgxspark.cluster contributors (@dgxspark)
extends_documentation_fragment:
  - dgxspark.cluster.attributes
attributes:
  check_mode:
    support: full
    details: The module only reads the model config; it behaves the same in check mode.
  diff_mode:
    support: none
  idempotent:
    support: full
  platform:
    support: full
    platforms: posix
options:
  model_config:
    description:
      - Path of the model's C(config.json), or of the model directory that holds it.
      - Read on the host the task runs on (the controller, or the head node with C(delegate_to)).
      - "Refused: a directory, FIFO, device or symbolic-link loop in its place, a file larger
        than 16 MiB, JSON nested too deeply, and fields of the wrong type or out of range
        (for example C(num_hidden_layers) above 10000), each with its own message."
      - Plan only, not passed to C(vllm serve) (the role mounts the model).
    type: path
    required: true
  tensor_parallel_size:
    description:
      - vLLM C(--tensor-parallel-size); one rank per GPU (one GPU per Spark).
      - An integer between 1 and 512.
    type: int
    default: 1
  pipeline_parallel_size:
    description:
      - vLLM C(--pipeline-parallel-size). An integer between 1 and 512.
    type: int
    default: 1
  decode_context_parallel_size:
    description:
      - vLLM C(--decode-context-parallel-size) (DCP); must divide O(tensor_parallel_size).
      - An integer between 1 and 512.
    type: int
    default: 1
  cp_kv_cache_interleave_size:
    description:
      - vLLM C(--cp-kv-cache-interleave-size); keep 1 with MTP. An integer between 1 and 4096.
    type: int
    default: 1
  speculative_config:
    description:
      - "vLLM C(--speculative-config) as a dict, for example C({method: mtp, num_speculative_tokens: 1})."
      - C(num_speculative_tokens) is required (vLLM 0.33 requires it), between 1 and 128.
      - C(draft_tensor_parallel_size) must be 1 or O(tensor_parallel_size).
      - A key the planner does not know fails, naming the closest known key.
    type: dict
  max_cudagraph_capture_size:
    description:
      - vLLM C(--max-cudagraph-capture-size). vLLM snaps an explicit cap down to its
        1, 2, 4, 8, 16, ... ladder; unset means vLLM's default.
      - An integer between 1 and 65536.
    type: int
  cudagraph_capture_sizes:
    description:
      - vLLM C(--cudagraph-capture-sizes), an explicit list of batch sizes to capture.
      - At most 4096 sizes, each between 1 and 65536.
    type: list
    elements: int
  max_num_seqs:
    description:
      - "vLLM C(--max-num-seqs). Default: vLLM's C(vllm serve) default on a GB10 (256)."
      - An integer between 1 and 65536.
    type: int
  max_num_batched_tokens:
    description:
      - vLLM C(--max-num-batched-tokens). Default is vLLM's C(vllm serve) default on a GB10
        (2048, at most O(max_num_seqs) x O(max_model_len)).
      - An integer between 1 and 67108864.
    type: int
  max_model_len:
    description:
      - vLLM C(--max-model-len). Default is the model's C(max_position_embeddings).
      - An integer between 1 and 67108864.
    type: int
  kv_cache_dtype:
    description:
      - vLLM C(--kv-cache-dtype). Sparse-MLA models (GLM-5, DeepSeek V3.2) store C(auto),
        C(fp8) and C(fp8_e4m3) as C(fp8_ds_mla) (656 bytes per token and layer).
    type: str
    default: auto
  kv_cache_memory_bytes:
    description:
      - vLLM C(--kv-cache-memory-bytes), the KV-cache budget per GPU. Needed for KV capacity and
        for the one-request-fits check; without it those are skipped with a warning.
      - An integer between 1 and 17592186044416 (16 TiB).
    type: int
  block_size:
    description:
      - vLLM C(--block-size). Unset means the backend's choice (64 for sparse MLA, else 16).
      - An integer between 1 and 4096.
    type: int
  virtual_heads:
    description:
      - Allow virtual-head padding when TP does not divide the heads, vocabulary or MoE width
        (for example 64 q / 4 kv heads at TP 3 become 96 / 6). The padded plan needs the image
        patches it names (C(virtual-heads), C(moe-zero-fill), C(sink-padding); the collection
        ships them for vLLM 0.33.0 and 0.32.0), and vLLM gets the padding as C(--hf-overrides)
        (RV(padding) C(hf_overrides), which the C(dgxspark.cluster.vllm_engine_args) filter
        merges in).
      - Plan only, not passed to C(vllm serve) as a flag (the image's patches do the padding).
    type: bool
    default: false
  vllm_patches:
    description:
      - Patch ids the vLLM image carries (its C(dgxspark.patches) label); at most 256.
      - Plan only, not passed to C(vllm serve).
    type: list
    elements: str
    default: []
  nodes:
    description:
      - Number of Sparks in the cluster. O(tensor_parallel_size) x O(pipeline_parallel_size)
        must fit O(nodes) x O(gpus_per_node). Unset means "as many as the plan needs".
      - An integer between 1 and 64.
      - Plan only, not passed to C(vllm serve).
    type: int
  gpus_per_node:
    description:
      - GPUs per node; a DGX Spark has 1. An integer between 1 and 8.
      - Plan only, not passed to C(vllm serve).
    type: int
    default: 1
  vllm_build:
    description:
      - The vLLM build the plan will run on. Either the name of a shipped build profile
        (C(vllm-0.33), the default; C(vllm-0.32-cpu), the lab's CPU engine;
        C(glm52-b12x-eldritch); C(mimo-v25-tp3)) or a dict of
        capabilities with at least C(model_runner) (C(v1) or C(v2)), C(draft_inherits_dcp) and
        C(pp_with_mtp); other capabilities default from C(base) (a profile name, default
        C(vllm-0.33)).
      - Plan only, not passed to C(vllm serve).
    type: raw
  enforce_eager:
    description: vLLM C(--enforce-eager) (no CUDA graphs).
    type: bool
    default: false
  enable_chunked_prefill:
    description: vLLM C(--enable-chunked-prefill) (on by default in vLLM).
    type: bool
    default: true
  sequence_parallelism:
    description:
      - The compile-pass sequence parallelism of older builds
        (C(compilation_config.pass_config.enable_sequence_parallelism)), which filters the
        CUDA-graph capture sizes by TP; vLLM 0.33 has none, so the plan fails there.
      - Plan only, not passed to C(vllm serve) (vLLM 0.33 has no such flag). On a build that
        has the pass, the serve arguments' C(compilation_config) turns it on, and the engine
        arguments (filter C(dgxspark.cluster.vllm_engine_args)) must agree with this option.
    type: bool
    default: false
  allow_long_max_model_len:
    description:
      - Allow O(max_model_len) above the model's C(max_position_embeddings), as vLLM does with
        the environment variable C(VLLM_ALLOW_LONG_MAX_MODEL_LEN=1).
      - Not a C(vllm serve) argument; the environment the plan implies (filter
        C(dgxspark.cluster.vllm_plan_env)) sets C(VLLM_ALLOW_LONG_MAX_MODEL_LEN=1).
    type: bool
    default: false
  async_scheduling:
    description:
      - vLLM C(--async-scheduling) / C(--no-async-scheduling). Unset means vLLM's default (on,
        except Model Runner V1 with pipeline parallelism). It bounds how many tokens a
        sliding-window layer keeps per request (two batches in flight instead of one).
    type: bool
  dtype:
    description:
      - vLLM C(--dtype) of the weights and activations. C(auto) takes the checkpoint's dtype
        (a float32 checkpoint is downcast to 16 bit); the C(auto) KV-cache dtype follows it.
    type: str
    choices: [auto, half, float16, bfloat16, float, float32]
    default: auto
  distributed_executor_backend:
    description:
      - vLLM C(--distributed-executor-backend). C(mp) (vLLM's own multi-node launch, one
        C(vllm serve) per node) must split TP x PP evenly over the nodes; C(ray) needs a
        platform that runs Ray (vLLM's CPU build does not). Unset means vLLM's choice.
    type: str
    choices: [mp, ray, uni, external_launcher]
  plan:
    description:
      - The plan as one dict with the option names above (what a recipe's C(recipe_plan) holds);
        its keys take precedence over the same options given one by one. A key that is not a
        plan option fails, naming the key and the closest plan option.
    type: dict
  suggest:
    description:
      - Also return RV(suggestions), every satisfiable (TP, PP, DCP, MTP tokens, capture cap)
        plan on O(nodes) with its KV capacity.
    type: bool
    default: false
  fail_on_violations:
    description:
      - Fail the task when the plan is not satisfiable. Set to C(false) to only report.
    type: bool
    default: true
notes:
  - Where the task runs on the controller (a local connection, as with C(delegate_to) localhost)
    its action plugin computes the result in Ansible's own process, with no interpreter to
    start; anywhere else it runs as a module. The result is the same.
  - The rules and their sources are listed in the collection's C(docs/preflight-rules.md).
  - Pure Python; no GPU, vLLM or network access is needed.
seealso:
  - name: vLLM engine arguments
    description: The option names follow vLLM's engine arguments.
    link: https://docs.vllm.ai/en/latest/configuration/engine_args.html
"""

EXAMPLES = r"""
- name: Check the GLM-5.2 4-node plan before booting it
  dgxspark.cluster.vllm_plan:
    model_config: /var/tmp/models/GLM-5.2-NVFP4
    nodes: 4
    tensor_parallel_size: 4
    decode_context_parallel_size: 4
    speculative_config:
      method: mtp
      num_speculative_tokens: 1
    max_cudagraph_capture_size: 4
    max_num_seqs: 1
    max_num_batched_tokens: 1024
    max_model_len: 131072
    kv_cache_dtype: fp8
    kv_cache_memory_bytes: 1810000000
    vllm_build: glm52-b12x-eldritch
    vllm_patches: [draft-dcp-inherit]
  delegate_to: localhost
  run_once: true

- name: MiMo V2.5 at TP3 with virtual heads on a custom build
  dgxspark.cluster.vllm_plan:
    model_config: /var/tmp/models/MiMo-V2.5-NVFP4/config.json
    nodes: 3
    tensor_parallel_size: 3
    virtual_heads: true
    speculative_config: {method: mtp, num_speculative_tokens: 2}
    vllm_build:
      model_runner: v1
      draft_inherits_dcp: false
      pp_with_mtp: false
    vllm_patches: [virtual-heads, moe-zero-fill, sink-padding]
  register: mimo_plan

- name: List every satisfiable plan on 4 nodes without failing
  dgxspark.cluster.vllm_plan:
    model_config: /var/tmp/models/GLM-5.2-NVFP4
    nodes: 4
    kv_cache_memory_bytes: 1810000000
    max_model_len: 131072
    kv_cache_dtype: fp8
    suggest: true
    fail_on_violations: false
  register: glm_plans
"""

RETURN = r"""
satisfiable:
  description: Whether the plan passes every rule.
  returned: success or failure after the plan was read
  type: bool
  sample: true
violations:
  description:
    - Every broken rule (not only the first), each with its message, fix and source.
    - C(stage) says where vLLM applies the rule (C(config) in create_engine_config, C(runner) at
      model-runner start-up, C(worker) on the GPU worker) or C(plan) for the planner's own checks.
  returned: success or failure after the plan was read
  type: list
  elements: dict
  sample:
    - rule: cudagraph_no_valid_sizes
      severity: error
      message: "No valid cudagraph sizes after rounding to multiple of 5 ..."
      fix: "set max_cudagraph_capture_size to a ladder size >= 5 (e.g. 8) ..."
      source: "vllm/config/compilation.py adjust_cudagraph_sizes_for_spec_decode"
      stage: runner
warnings:
  description:
    - "Findings that do not make the plan unsatisfiable, as C([rule] message (hint: fix)) strings;
      Ansible also prints them as task warnings."
  returned: when there are such findings
  type: list
  elements: str
warning_details:
  description: The same findings as RV(warnings), structured like RV(violations).
  returned: success or failure after the plan was read
  type: list
  elements: dict
padding:
  description:
    - Virtual-head padding; C(applied) tells whether any dimension was padded, then the padded
      q/kv heads per layer type with per-rank counts, sink-vector length per rank, padded vocab,
      MoE and dense widths, the KV bytes the pad heads cost and the patches needed.
    - C(served_by) names the image patch that serves each padded part (heads, vocab, moe,
      dense, sinks); C(hf_overrides) is the padding as vLLM takes it (C(--hf-overrides), read by
      the C(virtual-heads) patch), per config field the checkpoint's value and the padded one.
  returned: success or failure after the plan was read
  type: dict
  sample:
    applied: true
    padded: [heads, vocab, moe, dense]
    attention:
      - {layer_type: full, q_heads: [64, 96], kv_heads: [4, 6], q_per_rank: 32, kv_per_rank: 2}
    patches: [virtual-heads, moe-zero-fill, sink-padding]
    served_by: {heads: virtual-heads, vocab: virtual-heads, moe: moe-zero-fill,
                dense: virtual-heads, sinks: sink-padding}
    hf_overrides:
      virtual_heads:
        tensor_parallel_size: 3
        padding: {num_attention_heads: [64, 96], num_key_value_heads: [4, 6]}
per_rank:
  description: Per-rank heads for every layer type, vocab, MoE and dense widths, layers per PP stage.
  returned: success or failure after the plan was read
  type: dict
cudagraph_capture_sizes:
  description: The effective CUDA-graph capture list (after the runner's rounding on Model Runner V1).
  returned: success or failure after the plan was read
  type: list
  elements: int
  sample: [2, 4]
cudagraph:
  description: Both stages of capture-size resolution (config list, truncation, rounding, decode graphs).
  returned: success or failure after the plan was read
  type: dict
kv_cache:
  description:
    - KV-cache estimate for one GPU; C(bytes_per_token) (full-attention layers),
      C(tokens) (capacity as vLLM logs it, DCP included), C(max_concurrency) at
      O(max_model_len), C(num_blocks), C(fits_one_request), the KV-cache groups.
    - C(tokens), C(max_concurrency) and C(fits_one_request) are null without O(kv_cache_memory_bytes).
  returned: success or failure after the plan was read
  type: dict
  sample: {bytes_per_token: 54728, tokens: 132096, max_concurrency: 1.0078, num_blocks: 516}
memory:
  description:
    - Does the model fit a Spark (rule C(memory_fit)); null off a Spark (a CPU build, several
      GPUs a node). C(weights_bytes) per rank (the heaviest pipeline stage, estimated from
      C(config.json), C(weights_source) config) with C(weights_parts), C(overhead_bytes),
      C(node_memory_bytes) (121.69 GiB), C(usable_bytes) (minus the host's reserve),
      C(fits_weights), C(kv_budget_max), and for O(kv_cache_memory_bytes) C(fits_kv) and
      C(gmu_for_kv), the C(gpu_memory_utilization) that budget needs.
  returned: success or failure after the plan was read
  type: dict
  sample: {weights_bytes: 114789441536, weights_source: config, fits_weights: true,
           fits_kv: true, gmu_for_kv: 0.9069}
patches:
  description: Patch ids the plan requires, those the image declares, and the missing ones.
  returned: success or failure after the plan was read
  type: dict
  sample: {required: [draft-dcp-inherit], declared: [draft-dcp-inherit], missing: []}
model:
  description: What the plan engine read from C(config.json) (layers, heads per layer type, MLA,
    DSA indexer, MTP layers, MoE widths, quantization).
  returned: success or failure after the plan was read
  type: dict
build:
  description: The vLLM build profile the plan was judged against (runner, DCP/MTP capabilities).
  returned: success or failure after the plan was read
  type: dict
  sample: {name: vllm-0.33, model_runner: v2, draft_inherits_dcp: true, pp_with_mtp: true}
plan:
  description: The plan as evaluated, with vLLM's defaults filled in.
  returned: success or failure after the plan was read
  type: dict
report:
  description: The plan in plain words, one line per item (what the preflight report prints).
  returned: success or failure after the plan was read
  type: list
  elements: str
suggestions:
  description: Satisfiable plans on O(nodes), best KV capacity first (with O(suggest=true)).
  returned: when O(suggest=true)
  type: list
  elements: dict
suggestions_report:
  description: RV(suggestions) as a text table.
  returned: when O(suggest=true)
  type: list
  elements: str
changed:
  description: Always false; the module changes nothing.
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dgxspark.cluster.plugins.module_utils.controller import finish
from ansible_collections.dgxspark.cluster.plugins.module_utils.plan.task import (
    ARGUMENT_SPEC, compute)


def main():
    # on the controller the action plugin of the same name runs compute in Ansible's process
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    finish(module, compute(module.params))


if __name__ == "__main__":
    main()
