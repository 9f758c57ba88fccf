"""Generated documentation is current."""
from __future__ import annotations

import re
import runpy

from ansible_collections.dgxspark.cluster.plugins.module_utils.plan.rules import RULES

from conftest import ROOT


def test_rules_doc_is_current():
    module = runpy.run_path(str(ROOT / "scripts/gen_rules_doc.py"), run_name="not_main")
    assert (ROOT / "docs/preflight-rules.md").read_text() == module["render"](), \
        "docs/preflight-rules.md is stale: run .venv/bin/python scripts/gen_rules_doc.py"


def test_readme_states_the_rule_count():
    counts = re.findall(r"\*\*Rules\*\* \((\d+)", (ROOT / "README.md").read_text())
    assert counts == [str(len(RULES))]
