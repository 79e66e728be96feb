"""Every relative link of README.md and docs/*.md reaches a file of the repository and, with
``#anchor``, a heading of that file (GitHub's anchors: lower case, punctuation dropped, spaces as
hyphens): the README sends users to docs/ for the depth, and a moved section must not leave a
dead link behind."""

import re

import pytest

from tests.conftest import ROOT

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
DOCS = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))


def anchor(heading):
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path):
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {anchor(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, re.M)}


def links(path):
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return [m.group(1) for m in LINK.finditer(text) if not re.match(r"[a-z]+:", m.group(1))]


def dead_links(doc):
    dead = []
    for target in links(doc):
        path, _, fragment = target.partition("#")
        found = (doc.parent / path).resolve() if path else doc
        if not found.exists():
            dead.append(f"{target}: no such file")
        elif fragment and found.suffix == ".md" and fragment not in anchors(found):
            dead.append(f"{target}: no heading #{fragment} in {found.name}")
    return dead


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_reaches_a_file_and_its_heading(doc):
    assert dead_links(doc) == []


def test_a_dead_link_is_found(tmp_path):
    (tmp_path / "other.md").write_text("# Other\n\n## A part\n")
    doc = tmp_path / "doc.md"
    doc.write_text("[ok](other.md#a-part) [gone](missing.md) [moved](other.md#b-part) [web](https://x.org/y)\n")
    assert dead_links(doc) == ["missing.md: no such file", "other.md#b-part: no heading #b-part in other.md"]


def test_the_anchor_rule_is_githubs():
    assert anchor("Operate it: summary, backup, restore, export") == "operate-it-summary-backup-restore-export"
    assert anchor("Where is my power? (`hostname_to_influx`)") == "where-is-my-power-hostname_to_influx"
