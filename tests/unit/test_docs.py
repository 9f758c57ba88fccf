"""Generated documentation is current."""
from __future__ import annotations

import runpy

from conftest import ROOT


def test_rules_doc_is_current():
    module = runpy.run_path(str(ROOT / "scripts/gen_rules_doc.py"), run_name="not_main")
    assert (ROOT / "docs/preflight-rules.md").read_text() == module["render"](), \
        "docs/preflight-rules.md is stale: run .venv/bin/python scripts/gen_rules_doc.py"
