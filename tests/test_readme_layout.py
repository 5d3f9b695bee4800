"""The README's Layout table is the newcomer's map: every folder it names exists, and every role folder and
every package of the coordinator is on it (a package added or moved without a row fails here)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def layout_rows() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    return [m.group(1).rstrip("/") for m in re.finditer(r"^\| `([^`]+)` \|", section, re.M)]


def test_every_row_names_a_folder_that_exists():
    rows = layout_rows()
    assert len(rows) >= 10
    assert [r for r in rows if not (REPO / r).is_dir()] == []


def test_every_role_folder_and_coordinator_package_has_a_row():
    rows = set(layout_rows())
    packages = {str(p.parent.relative_to(REPO)) for p in (REPO / "backend").glob("*/__init__.py")}
    roles = {"app", "assets/web", "backend", "gpu_worker", "browser_worker", "tests"}
    assert sorted((packages | roles) - rows) == []
