"""OneVerify's audit mode: the worker commits to its per-token logprobs in the attestation; re-scoring the
answer with the claimed model (one teacher-forced pass) matches, and a substituted model does not."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from backend.protocol import receipt as rc
from backend.trust.verify import audit_logprobs, verify_chain
from tests.conftest import REPO

pytestmark = pytest.mark.e2e
BODY = {"model": "tiny-chat", "messages": [{"role": "user", "content": "Audit this answer, please."}], "max_tokens": 24, "logprobs": True}


def test_rescoring_matches_the_claimed_model_and_catches_another(devnet, tmp_path):
    from gpu_worker.tiny_models import build_tiny_chat

    reply = httpx.post(f"{devnet.url}/v1/chat/completions", json=BODY, timeout=120).json()
    receipt, choice = reply["receipt"], reply["choices"][0]
    assert receipt["logprobs_digest"] == rc.logprobs_digest([choice])  # committed in the signed attestation
    assert verify_chain([receipt]).ok

    honest = audit_logprobs(devnet.models_dir / "tiny-chat", BODY, choice, receipt)
    assert honest["ok"], honest
    fake = build_tiny_chat(tmp_path / "fake", seed=7)
    substituted = audit_logprobs(fake, BODY, choice, receipt)
    assert not substituted["ok"] and substituted["checks"]["rescored"] is False and substituted["max_gap"] > 0.01

    tampered = json.loads(json.dumps(choice))
    tampered["logprobs"]["content"][0]["logprob"] += 0.5  # a worker cannot change what it committed to
    assert audit_logprobs(devnet.models_dir / "tiny-chat", BODY, tampered, receipt)["checks"]["committed"] is False

    (tmp_path / "reply.json").write_text(json.dumps(reply))
    (tmp_path / "request.json").write_text(json.dumps(BODY))
    cli = subprocess.run([sys.executable, "-m", "backend.cli", "verify-audit", str(tmp_path / "reply.json"), "--request", str(tmp_path / "request.json"),
                          "--model-dir", str(fake)], cwd=REPO, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert cli.returncode == 1 and "does NOT match" in cli.stdout, cli.stdout + cli.stderr
