"""The SDKs' tests: the Python SDK is imported from its source folder (it is a package of its own)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

SDK = Path(__file__).resolve().parents[2] / "sdk"
if str(SDK / "python" / "src") not in sys.path:
    sys.path.insert(0, str(SDK / "python" / "src"))


def assert_e2e_report(out: dict) -> None:
    """What an SDK's e2e program (sdk/<lang>/examples/e2e*) reports after a streamed chat and an embedding on the
    devnet: both verified in that language, a forged copy and another request or answer rejected, verify mode raising."""
    checks = {"hash": True, "coordinator_sig": True, "worker_sig": True, "request": True, "output": True}
    assert out["chat"]["deltas"] >= 2 and out["chat"]["ok"] and out["chat"]["checks"] == checks, out["chat"]  # streamed, then checked whole
    assert out["chat"]["kind"] == "chat" and re.fullmatch(r"[0-9a-f]{64}", out["chat"]["hash"])
    assert out["embedding"]["ok"] and out["embedding"]["checks"] == checks and out["embedding"]["count"] == 2, out["embedding"]
    assert out["embedding"]["kind"] == "embedding" and out["embedding"]["dims"] > 0
    assert out["chain_ok"] == [True, True]
    assert not out["forged"]["ok"] and out["forged"]["problems"] == ["hash check failed"]
    assert out["other_request"] == ["request_digest does not match the request sent"]
    assert out["other_output"] == ["output_digest does not match the output received"]
    assert out["same_again_ok"] and out["verify_mode_rejects"] and "the receipt does not check out: hash check failed" in out["verify_mode_error"]
