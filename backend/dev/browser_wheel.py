"""Build the wheel Pyodide loads in the browser worker: browser_worker/, backend/protocol/ (the one source of
frames, receipts and the worker session) and rfc8785 (pure Python, from this venv). The coordinator reads those
folders as files and serves the wheel; it imports none of them from here. Written with zipfile: a wheel is a zip
with a dist-info folder, and Pyodide only unpacks it."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

import rfc8785

from backend.dev.npm_tools import REPO

NAME, VERSION = "one_browser_worker", "0.1.0"
WHEEL_NAME = f"{NAME}-{VERSION}-py3-none-any.whl"


def _sources() -> dict[str, bytes]:
    files: dict[str, bytes] = {"backend/__init__.py": (REPO / "backend" / "__init__.py").read_bytes()}
    for package, root in (("browser_worker", REPO / "browser_worker"), ("backend/protocol", REPO / "backend" / "protocol"),
                          ("rfc8785", Path(rfc8785.__file__).parent)):  # fmt: skip
        for path in sorted(root.glob("*.py")):
            files[f"{package}/{path.name}"] = path.read_bytes()
    return files


def build_wheel(target_dir: Path) -> Path:
    """Write the wheel into target_dir (rewritten only when its contents changed)."""
    files = _sources()
    dist = f"{NAME}-{VERSION}.dist-info"
    files[f"{dist}/METADATA"] = f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {VERSION}\n".encode()
    files[f"{dist}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: one\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = [f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}" for name, data in files.items()]
    files[f"{dist}/RECORD"] = ("\n".join(record) + f"\n{dist}/RECORD,,\n").encode()
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / WHEEL_NAME
    if target.exists():
        with zipfile.ZipFile(target) as old:
            if {i.filename: old.read(i) for i in old.infolist()} == files:
                return target
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in files.items():
            wheel.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return target
