"""The changelog is antsibull-changelog's: fragments with known sections, a changes file, and a
CHANGELOG.md that is either written by a release or, before the first one, free of entries
(they belong in fragments). With antsibull-changelog installed (requirements.txt) its own lint
runs over the fragments and the changes file."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

CHANGELOGS = ROOT / "changelogs"
CONFIG = yaml.safe_load((CHANGELOGS / "config.yaml").read_text())
TOOL = shutil.which("antsibull-changelog", path=str(Path(sys.executable).parent)) \
    or shutil.which("antsibull-changelog")
needs_tool = pytest.mark.skipif(TOOL is None, reason="antsibull-changelog is not installed")


def _fragments():
    return sorted((CHANGELOGS / CONFIG["notesdir"]).glob("*.yml"))


def test_config_writes_changelog_md_from_changelog_yaml():
    assert CONFIG["changes_file"] == "changelog.yaml"
    assert CONFIG["output"] == [{"file": "CHANGELOG.md", "format": "md"}]
    assert (CHANGELOGS / "changelog.yaml").is_file()


def test_fragments_have_known_sections_and_text():
    sections = {section[0] for section in CONFIG["sections"]} | {
        CONFIG["prelude_section_name"], CONFIG["trivial_section_name"]}
    assert _fragments(), "no fragments: the unreleased changes are gone"
    for path in _fragments():
        data = yaml.safe_load(path.read_text())
        assert isinstance(data, dict) and data, path.name
        unknown = set(data) - sections
        assert not unknown, "%s: unknown sections %s (use %s)" % (path.name, unknown, sorted(sections))
        for section, entries in data.items():
            entries = [entries] if section == CONFIG["prelude_section_name"] else entries
            assert entries and all(isinstance(e, str) and e.strip() for e in entries), path.name
            for entry in entries:
                # RST, not Markdown: a single backtick pair is RST's interpreted text
                assert not re.search(r"(?<!`)`[^`]+`(?![`_])", entry), \
                    "%s: write ``code`` (RST), not `code`: %s" % (path.name, entry[:80])


def test_changelog_md_has_no_hand_written_entries_before_the_first_release():
    changes = yaml.safe_load((CHANGELOGS / "changelog.yaml").read_text())
    if changes.get("releases"):
        pytest.skip("released: CHANGELOG.md is antsibull-changelog's (checked by generate below)")
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "changelogs/fragments" in text
    assert not re.search(r"^## \d", text, re.M), "CHANGELOG.md has a release section: write a " \
        "fragment in changelogs/fragments/ instead"


@needs_tool
def test_antsibull_changelog_lint():
    for argv in ([TOOL, "lint"], [TOOL, "lint-changelog-yaml", "changelogs/changelog.yaml"]):
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120,
                              check=False)
        assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


@needs_tool
def test_a_release_would_render_every_fragment(tmp_path):
    """What `antsibull-changelog release` would write, in a copy: every fragment's entries end
    up in CHANGELOG.md (nothing is lost by the conversion from RST)."""
    shutil.copytree(CHANGELOGS, tmp_path / "changelogs")
    shutil.copy(ROOT / "galaxy.yml", tmp_path / "galaxy.yml")
    proc = subprocess.run([TOOL, "release", "--version", "99.0.0", "--date", "2026-12-31"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = (tmp_path / "CHANGELOG.md").read_text()
    count = sum(len(v) if isinstance(v, list) else 1
                for path in _fragments() for v in yaml.safe_load(path.read_text()).values())
    assert text.count("\n* ") == count
