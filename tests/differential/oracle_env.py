"""What the opt-in differential tests need: the vllm-oracle venv's Python and its script.

Both come from the environment (the oracle is a development tool, never a dependency of the
collection); without them the differential tests skip and say what to set.
"""
from __future__ import annotations

import os

import pytest

ORACLE = os.environ.get("DGXSPARK_VLLM_ORACLE")
SCRIPT = os.environ.get("DGXSPARK_VLLM_ORACLE_SCRIPT")

MARKS = [
    pytest.mark.oracle,
    pytest.mark.skipif(not (ORACLE and SCRIPT), reason="set DGXSPARK_VLLM_ORACLE and "
                       "DGXSPARK_VLLM_ORACLE_SCRIPT to run the vLLM differential tests"),
]
