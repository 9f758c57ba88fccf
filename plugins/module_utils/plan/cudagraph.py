# -*- coding: utf-8 -*-
# Copyright: dgxspark.cluster contributors
# Apache License 2.0 (see LICENSE)
"""CUDA-graph capture sizes as vLLM resolves them, in two stages.

Stage 1, config time (``VllmConfig._set_cudagraph_sizes``, vllm/config/vllm.py): the
capture cap and list are derived from ``max_cudagraph_capture_size``,
``cudagraph_capture_sizes``, ``max_num_seqs``, ``max_num_batched_tokens`` and the
speculative token count; an explicit cap that is not on the resulting list is truncated
to the list's largest size ("Truncating max_cudagraph_capture_size to N").

Stage 2, model-runner start-up (``CompilationConfig.resolve_cudagraph_mode_and_sizes``,
vllm/config/compilation.py): Model Runner V1 with FULL decode graphs and speculative
decoding rounds every size up to a multiple of ``num_speculative_tokens + 1`` and keeps
those within the cap; none left is the start-up error
``No valid cudagraph sizes after rounding to multiple of N+1``. Model Runner V2 keeps
the list (vLLM PR #45953).
"""
from __future__ import annotations

from .request import MAX_CAPTURE


def round_up(value, multiple):
    return ((value + multiple - 1) // multiple) * multiple


def _gcd(a, b):
    while b:
        a, b = b, a % b
    return a


def lcm(a, b):
    return a * b // _gcd(a, b)


def ladder(cap):
    """vLLM's default size grid: 1, 2, 4, then multiples of 8 below 256, then of 16."""
    sizes = [i for i in (1, 2, 4) if i <= cap]
    if cap >= 8:
        sizes += list(range(8, min(cap + 1, 256), 8))
    if cap >= 256:
        sizes += list(range(256, cap + 1, 16))
    return sizes


def _request_counts(max_reqs, ceiling):
    # vllm/config/vllm.py _set_cudagraph_sizes.request_counts (0.33)
    max_reqs = min(max_reqs, ceiling)
    counts = [n for n in (1, 2, 4) if n <= max_reqs]
    counts += list(range(8, min(max_reqs + 1, 256), 8))
    counts += list(range(256, max_reqs + 1, 16))
    return sorted(set(counts + [max_reqs]))


class CaptureSizes(object):
    """What vLLM would capture, and what went wrong on the way."""

    def __init__(self):
        self.enabled = True
        self.config_sizes = []       # after stage 1 (what create_engine_config reports)
        self.config_max = 0
        self.sizes = []              # effective, after stage 2
        self.max_size = 0
        self.decode_full_sizes = []  # token sizes of FULL uniform-decode graphs (target)
        self.draft_decode_sizes = []  # FULL decode graphs of the MTP draft (MRV2)
        self.truncated = None        # (requested cap, truncated cap)
        self.inconsistent = None     # (explicit cap, max of the explicit list)
        self.dropped = []            # explicit sizes above max_num_batched_tokens
        self.rounded_to = None       # multiple the V1 runner rounded to
        self.no_valid_sizes = None   # vLLM's message when stage 2 fails
        self.sp_conflict = None      # vLLM's message for SP x spec-decode shapes

    def as_dict(self):
        return dict(self.__dict__)


def resolve(build, max_cudagraph_capture_size=None, cudagraph_capture_sizes=None,
            max_num_seqs=256, max_num_batched_tokens=2048, num_speculative_tokens=0,
            tensor_parallel_size=1, sequence_parallelism=False, enforce_eager=False):
    """Resolve capture sizes for ``build`` (a ``builds.BuildProfile``)."""
    out = CaptureSizes()
    if enforce_eager:
        out.enabled = False
        return out
    query_len = 1 + (num_speculative_tokens or 0)
    ceiling = build.cudagraph_ceiling
    user_max = max_cudagraph_capture_size
    user_sizes = list(cudagraph_capture_sizes) if cudagraph_capture_sizes else None

    cap = user_max
    decode_sizes = []
    if cap is None:
        cap = min(max_num_seqs * query_len * 2, ceiling)
        if build.cudagraph_sizes == "v0.33":
            if query_len > 1:
                decode_sizes = sorted(set(
                    n * query_len for n in _request_counts(max_num_seqs, ceiling)
                    if n * query_len <= cap))
            elif max_num_seqs <= cap:
                decode_sizes = [max_num_seqs]
    cap = min(max_num_batched_tokens, cap)
    if cap < 1:
        cap = 1

    if user_sizes is not None:
        sizes = sorted(set(s for s in user_sizes if s <= max_num_batched_tokens))
        out.dropped = sorted(set(s for s in user_sizes if s > max_num_batched_tokens))
    else:
        sizes = ladder(cap)
        if build.cudagraph_sizes == "v0.33":
            if max_num_batched_tokens <= cap and max_num_batched_tokens not in sizes:
                sizes.append(max_num_batched_tokens)
            sizes += [s for s in decode_sizes if s <= max_num_batched_tokens]
            sizes = sorted(set(sizes))

    sp_active = sequence_parallelism and build.sequence_parallelism and tensor_parallel_size > 1
    if sp_active:
        sizes = [s for s in sizes if s % tensor_parallel_size == 0]

    valid_max = sizes[-1] if sizes else 0
    if user_max is not None and user_max != valid_max:
        if user_sizes is not None:
            out.inconsistent = (user_max, valid_max)
        else:
            out.truncated = (user_max, valid_max)
    out.config_sizes = list(sizes)
    out.config_max = valid_max
    out.sizes = list(sizes)
    out.max_size = valid_max

    if build.model_runner == "v2":
        # vllm/v1/worker/gpu/cudagraph_utils.py CudaGraphManager._init_candidates (0.33):
        # FULL uniform-decode graphs at round_up(s, 1+N) within the cap and max_num_seqs;
        # the draft's decode graphs use query length 1. Never raises.
        limit = min(valid_max, max_num_seqs * query_len)
        out.decode_full_sizes = sorted(set(
            round_up(s, query_len) for s in sizes if round_up(s, query_len) <= limit))
        if query_len > 1:
            out.draft_decode_sizes = [s for s in sizes if s <= min(valid_max, max_num_seqs)]
        return out

    if query_len > 1 and sizes:
        multiple = query_len
        if sp_active:
            multiple = max(query_len, tensor_parallel_size)
            if lcm(query_len, tensor_parallel_size) != multiple:
                out.sp_conflict = (
                    "Can't determine cudagraph shapes that are both a multiple of %d "
                    "(num_speculative_tokens + 1) required by spec-decode and %d "
                    "(tensor_parallel_size) required by sequence parallelism please adjust "
                    "num_speculative_tokens or disable sequence parallelism"
                    % (query_len, tensor_parallel_size))
                return out
        rounded = sorted(set(round_up(s, multiple) for s in sizes
                             if round_up(s, multiple) <= valid_max))
        if not rounded and multiple <= valid_max:
            rounded = [multiple]
        out.rounded_to = multiple
        if not rounded:
            out.no_valid_sizes = (
                "No valid cudagraph sizes after rounding to multiple of %d "
                "(num_speculative_tokens + 1) please adjust num_speculative_tokens (%d) or "
                "max_cudagraph_capture_size (%d) or cudagraph_capture_sizes (%s)"
                % (multiple, multiple - 1, valid_max, sizes))
            out.sizes = []
            out.max_size = 0
        else:
            out.sizes = rounded
            out.max_size = rounded[-1]
    out.decode_full_sizes = [s for s in out.sizes
                             if s % query_len == 0 and s // query_len <= max_num_seqs]
    return out


def suggest_cap(build, num_speculative_tokens, max_num_seqs, max_num_batched_tokens):
    """The smallest explicit cap that survives both stages and covers max_num_seqs decodes.

    Returns a cap on vLLM's ladder (so it is not truncated) that is at least
    ``max_num_seqs * (N + 1)`` where the token budget and the planner's bound on capture sizes
    (request.MAX_CAPTURE) allow, else None (vLLM's default).
    """
    query_len = 1 + (num_speculative_tokens or 0)
    want = max(max_num_seqs * query_len, query_len)
    if want > MAX_CAPTURE:
        return None  # no cap the planner accepts covers it: leave it to vLLM's default
    for cap in ladder(min(max(want, 1) * 2 + 16, MAX_CAPTURE)):
        if cap >= want and cap <= max_num_batched_tokens:
            probe = resolve(build, max_cudagraph_capture_size=cap, max_num_seqs=max_num_seqs,
                            max_num_batched_tokens=max_num_batched_tokens,
                            num_speculative_tokens=num_speculative_tokens)
            if probe.no_valid_sizes is None and probe.truncated is None:
                return cap
    return None
