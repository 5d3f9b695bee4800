"""The wheel Pyodide loads carries the one protocol source and imports without the coordinator's stack."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from backend.dev.browser_wheel import build_wheel
from tests.conftest import REPO


def test_wheel_holds_protocol_worker_and_rfc8785_and_imports_standalone(tmp_path):
    wheel = build_wheel(tmp_path / "out")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"backend/protocol/frames.py", "backend/protocol/receipt.py", "backend/protocol/jobs.py", "browser_worker/worker.py",
            "browser_worker/minilm.py", "browser_worker/wordpiece.py", "rfc8785/__init__.py"} <= set(names)  # fmt: skip
    assert zipfile.ZipFile(wheel).read("backend/protocol/receipt.py") == (REPO / "backend/protocol/receipt.py").read_bytes()
    assert not any(n.startswith(("backend/api", "backend/db", "gpu_worker")) for n in names)
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    # A bare interpreter (-I: no site-packages, no repo on the path) imports the worker from the wheel alone.
    code = "import browser_worker.worker as w, backend.protocol.receipt as r; print(w.MODEL_ID, r.jcs({'b': 1, 'a': [1.5]}).decode())"
    out = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r}); {code}"], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["all-minilm-l6-v2", '{"a":[1.5],"b":1}']
    assert build_wheel(tmp_path / "out").read_bytes() == wheel.read_bytes()  # deterministic: rebuilt only on change
