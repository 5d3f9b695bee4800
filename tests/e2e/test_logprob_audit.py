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


def test_one_verify_audit_rescores_a_sampled_answer_under_its_committed_seed(devnet, tmp_path):
    """No logprobs asked: the reply's token_ids and the receipt's sampling seed are enough for the client to check
    the answer with the model's weights, exactly as the network's auditors do."""
    from gpu_worker.tiny_models import build_tiny_chat

    body = {"model": "tiny-chat", "messages": [{"role": "user", "content": "Sample, then prove it."}], "max_tokens": 48, "temperature": 1.0}
    reply = httpx.post(f"{devnet.url}/v1/chat/completions", json=body, timeout=120).json()
    receipt = reply["receipt"]
    assert receipt["tokens_digest"] == rc.tokens_digest(reply["token_ids"]) and len(receipt["sampling_seed"]) == 64
    assert sum(map(len, reply["token_ids"])) == reply["usage"]["completion_tokens"] and verify_chain([receipt]).ok
    (tmp_path / "reply.json").write_text(json.dumps(reply))
    (tmp_path / "request.json").write_text(json.dumps(body))

    def verify_audit(model_dir, reply_file="reply.json") -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "backend.cli", "verify-audit", str(tmp_path / reply_file), "--request",
                               str(tmp_path / "request.json"), "--model-dir", str(model_dir)], cwd=REPO, capture_output=True, text=True, timeout=120)  # fmt: skip

    honest = verify_audit(devnet.models_dir / "tiny-chat")
    assert honest.returncode == 0 and "re-scored 48 tokens: 0 not the model's pick" in honest.stdout, honest.stdout + honest.stderr
    other = verify_audit(build_tiny_chat(tmp_path / "other", seed=7))
    assert other.returncode == 1 and "does NOT match" in other.stdout, other.stdout + other.stderr
    forged = json.loads(json.dumps(reply))
    forged["token_ids"][0][0] ^= 1  # ids the receipt does not commit to
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    assert verify_audit(devnet.models_dir / "tiny-chat", "forged.json").returncode == 1
