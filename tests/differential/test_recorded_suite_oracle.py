"""The recorded differential suite is what vLLM 0.33.0 says today (opt-in, the vllm-oracle).

tests/unit/plan/test_differential_suite.py checks the plan engine against
tests/fixtures/differential/expected.jsonl at every `make test`; this test asks vLLM again
(scripts/differential.py's recording path) and fails when the recording no longer matches,
e.g. after the oracle or a fixture changed. Regenerate with `scripts/differential.py record`.
"""
from __future__ import annotations

import sys

from oracle_env import MARKS, ORACLE, SCRIPT
from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import differential  # noqa: E402

pytestmark = MARKS


def test_recording_is_current():
    fresh = differential.dump(differential.ask_vllm(differential.load_plans(), ORACLE, SCRIPT))
    assert fresh == differential.EXPECTED.read_text(), \
        "expected.jsonl differs from vLLM's answers: run scripts/differential.py record"
