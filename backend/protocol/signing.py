"""Ed25519 keys on disk and hex signatures (PyNaCl), shared by the coordinator, node workers and OneVerify."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey


def load_or_create_key(path: Path) -> SigningKey:
    """The Ed25519 key whose 32-byte seed is kept in `path`, created on first use so identities persist."""
    return SigningKey(load_or_create_secret(path))


def load_or_create_secret(path: Path) -> bytes:
    """32 random bytes kept hex-encoded in `path` (mode 0600), created on first use."""
    path = Path(path)
    if path.exists():
        return bytes.fromhex(path.read_text().strip())
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = os.urandom(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret.hex())
    return secret


def write_private_file(path: Path, text: str) -> None:
    """Write `path` readable by its owner only (0600), whole or not at all: written beside it, then renamed over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a leftover temp file keeps its old mode through O_CREAT
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def public_hex(key: SigningKey) -> str:
    return key.verify_key.encode().hex()


def sign_hex(key: SigningKey, message: bytes) -> str:
    return key.sign(message).signature.hex()


@lru_cache(maxsize=4096)
def _verify_key(pubkey_hex: str) -> VerifyKey:
    """A log names a few keys many times (one coordinator, its workers): decode each once."""
    return VerifyKey(bytes.fromhex(pubkey_hex))


def verify_hex(pubkey_hex: str, message: bytes, sig_hex: str) -> bool:
    """True when `sig_hex` is a valid Ed25519 signature of `message` by `pubkey_hex`; never raises."""
    try:
        _verify_key(pubkey_hex).verify(message, bytes.fromhex(sig_hex))
        return True
    except (BadSignatureError, ValueError, TypeError):
        return False
