"""Files the web app serves that are built or installed, not committed: pinned npm browser libraries
and Pyodide (from node_modules, package-lock.json), and the browser worker's wheel. They are written
into assets/ before Reflex builds, so the coordinator serves them from its own origin."""

from __future__ import annotations

import shutil

from backend.dev.browser_wheel import build_wheel
from backend.dev.npm_tools import REPO

ASSETS = REPO / "assets"
NODE_MODULES = REPO / "node_modules"
# target under assets/ -> source under node_modules/
FILES = {
    "vendor/marked.esm.js": "marked/lib/marked.esm.js",
    "vendor/purify.es.mjs": "dompurify/dist/purify.es.mjs",
    "vendor/htm-preact.mjs": "htm/preact/standalone.mjs",  # Preact + hooks + htm in one module, no build step
    **{f"pyodide/{name}": f"pyodide/{name}" for name in
       ("pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json")},  # fmt: skip
}


def prepare_assets() -> None:
    """Copy what changed from node_modules and rebuild the browser worker wheel."""
    for target, source in FILES.items():
        src, dst = NODE_MODULES / source, ASSETS / target
        if not src.exists():
            raise RuntimeError(f"{src} is missing: run `npm ci` in the repository (make does this)")
        if not dst.exists() or dst.stat().st_size != src.stat().st_size or dst.read_bytes() != src.read_bytes():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
    build_wheel(ASSETS / "pyodide")
