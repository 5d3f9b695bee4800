"""Where the npm-installed tools live (bun for Reflex, anvil for the dev chain): the repository's
node_modules first (what `make` installs, pinned in package-lock.json), then PATH."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def npm_tool(name: str, *candidates: Path) -> str:
    for path in (*candidates, REPO / "node_modules" / ".bin" / name):
        if path.exists():
            return str(path)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found: run `npm ci` in the repository (make does this)")
    return found

