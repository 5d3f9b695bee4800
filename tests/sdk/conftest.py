"""The SDKs' tests: the Python SDK is imported from its source folder (it is a package of its own)."""

from __future__ import annotations

import sys
from pathlib import Path

SDK = Path(__file__).resolve().parents[2] / "sdk"
if str(SDK / "python" / "src") not in sys.path:
    sys.path.insert(0, str(SDK / "python" / "src"))
