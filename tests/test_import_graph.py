"""Imports run only downward through the runtime roles (DESIGN.md: one top-level folder per role):

    app  ->  backend  ->  backend.protocol  <-  gpu_worker, browser_worker

The coordinator never imports a worker, a worker imports nothing of the coordinator but the protocol, and the
protocol imports nothing above it. Read from the source with `ast` (every import, TYPE_CHECKING and
function-local ones included), so a new leak fails here before it ships in the wrong distribution."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ROLES = ("app", "backend", "gpu_worker", "browser_worker")


def imports_of(path: Path) -> set[str]:
    """Absolute module names a file imports (relative imports resolved against its package)."""
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from backend import protocol`
    return found


def first_party(role: str) -> dict[str, set[str]]:
    """file -> the first-party modules it imports, for every source file of a role (migrations are data)."""
    graph = {}
    for path in sorted((REPO / role).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        graph[str(path.relative_to(REPO))] = {m for m in imports_of(path) if m.split(".")[0] in ROLES}
    return graph


def within(module: str, *allowed: str) -> bool:
    return any(module == a or module.startswith(a + ".") for a in allowed)


def leaks(role: str, *allowed: str) -> list[str]:
    return [f"{file} imports {m}" for file, mods in first_party(role).items() for m in sorted(mods) if not within(m, *allowed)]


def test_the_scan_sees_real_imports():
    """The scanner itself: it finds imports of every form, so an empty leak list means something."""
    graph = first_party("app")
    assert any(within(m, "backend") for mods in graph.values() for m in mods)
    assert "backend.protocol.frames" in first_party("backend")["backend/scheduler/__init__.py"]


def test_the_coordinator_imports_no_worker_and_no_page():
    assert leaks("backend", "backend") == []


def test_workers_import_only_the_protocol():
    assert leaks("gpu_worker", "gpu_worker", "backend.protocol") == []
    assert leaks("browser_worker", "browser_worker", "backend.protocol") == []


def test_the_protocol_imports_nothing_above_it():
    graph = {f: m for f, m in first_party("backend").items() if f.startswith("backend/protocol/")}
    assert graph, "backend/protocol/ has no modules"
    assert [f"{f} imports {m}" for f, mods in graph.items() for m in sorted(mods) if not within(m, "backend.protocol")] == []


def test_backend_init_stays_import_light():
    """Pyodide imports backend.protocol, which runs backend/__init__.py first: it may import nothing."""
    assert first_party("backend")["backend/__init__.py"] == set()
    assert imports_of(REPO / "backend" / "__init__.py") <= {"__future__"}


def test_pages_import_the_coordinator_not_the_workers():
    assert leaks("app", "app", "backend") == []
