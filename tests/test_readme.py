"""The README's Layout block names every top-level module and package of cj2/ (and nothing that is gone),
the files its plug-in paragraph points to exist, and it speaks to users, not to the issue tracker."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.index("\n## ", start + 1)
    return README[start:end]


def test_layout_names_every_top_level_module_and_package():
    block = _section("Layout").split("```")[1]
    inside = block.split("cj2/\n", 1)[1]
    named = set(re.findall(r"^  ([a-z_]+(?:\.py|/))\s", inside, flags=re.M))
    tree = {p.name for p in (ROOT / "cj2").glob("*.py") if p.name != "__init__.py"}
    tree |= {p.name + "/" for p in (ROOT / "cj2").iterdir() if p.is_dir() and not p.name.startswith("__")}
    assert named == tree, (sorted(tree - named), sorted(named - tree))
    top = set(re.findall(r"^([a-z_]+/)\s", block, flags=re.M)) - {"cj2/"}
    assert top and all((ROOT / name).is_dir() for name in top), top


def test_plug_in_paths_exist():
    text = _section("Layout").split("```")[2]
    paths = set(re.findall(r"`(cj2/[\w/.]+\.(?:py|yaml))`", text))
    assert len(paths) >= 8, paths
    assert [path for path in sorted(paths) if not (ROOT / path).exists()] == []


def test_no_issue_tracker_references():
    assert not re.search(r"\bissues? #?\d+", README, flags=re.I)
