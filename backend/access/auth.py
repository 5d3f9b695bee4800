"""Who is calling: Sign-In with Ethereum (EIP-4361, checked with eth-account) and hashed API keys.

A wallet signs a SIWE message carrying a nonce we issued; we check the signature, domain, chain id,
nonce (single use) and times, then issue a session key for the Included lane. Keys are random
secrets shown once; only their SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import to_checksum_address
from sqlalchemy import delete, update
from sqlmodel import Session, select

from backend.db import session
from backend.db.models import ApiKey, SiweNonce

NONCE_TTL_S = 600
SESSION_TTL_S = 7 * 24 * 3600
KEY_PREFIX = "one_sk_"

_SIWE = re.compile(
    r"^(?P<domain>[^\s]+) wants you to sign in with your Ethereum account:\n"
    r"(?P<address>0x[a-fA-F0-9]{40})\n\n"
    r"(?:(?P<statement>[^\n]*)\n\n)?"
    r"URI: (?P<uri>[^\n]+)\n"
    r"Version: (?P<version>1)\n"
    r"Chain ID: (?P<chain_id>[0-9]+)\n"
    r"Nonce: (?P<nonce>[a-zA-Z0-9]{8,})\n"
    r"Issued At: (?P<issued_at>[^\n]+)"
    r"(?:\nExpiration Time: (?P<expiration_time>[^\n]+))?"
    r"(?:\nNot Before: (?P<not_before>[^\n]+))?"
    r"(?:\nRequest ID: (?P<request_id>[^\n]*))?"
    r"(?:\nResources:(?P<resources>(?:\n- [^\n]+)+))?$"
)


class AuthError(Exception):
    """Sign-in or key refused; `reason` is safe to show the caller."""

    def __init__(self, reason: str, code: str = "invalid_siwe"):
        super().__init__(reason)
        self.reason, self.code = reason, code


@dataclass
class Principal:
    """An authenticated caller."""

    account: str  # checksummed wallet address
    lane: str
    package: str | None = None
    expires_at: float | None = None  # the key's end (a session's, a package's); None never ends


def siwe_message(*, domain: str, address: str, uri: str, chain_id: int, nonce: str, issued_at: str,
                 expiration_time: str | None = None, statement: str = "Sign in to the ONE network.") -> str:  # fmt: skip
    """The EIP-4361 text a wallet signs (used by the web app and by tests)."""
    lines = [
        f"{domain} wants you to sign in with your Ethereum account:", address, "", statement, "",
        f"URI: {uri}", "Version: 1", f"Chain ID: {chain_id}", f"Nonce: {nonce}", f"Issued At: {issued_at}",
    ]  # fmt: skip
    if expiration_time:
        lines.append(f"Expiration Time: {expiration_time}")
    return "\n".join(lines)


def parse_siwe(message: str) -> dict[str, str]:
    match = _SIWE.match(message)
    if match is None:
        raise AuthError("not an EIP-4361 sign-in message")
    return {k: v for k, v in match.groupdict().items() if v is not None}


def issue_nonce(now: float | None = None) -> str:
    """A fresh nonce; nonces past their TTL (used or not) are deleted on the way, since none can sign in any more."""
    now = time.time() if now is None else now
    nonce = secrets.token_hex(16)
    with session() as db:
        db.exec(delete(SiweNonce).where(SiweNonce.issued_at <= now - NONCE_TTL_S))
        db.add(SiweNonce(nonce=nonce, issued_at=now))
        db.commit()
    return nonce


def verify_siwe(message: str, signature: str, *, domain: str, chain_id: int, now: float | None = None) -> str:
    """Check a signed SIWE message and burn its nonce; returns the checksummed address that signed."""

    now = time.time() if now is None else now
    fields = parse_siwe(message)
    if fields["domain"] != domain:
        raise AuthError(f"message is for {fields['domain']}, not {domain}")
    if int(fields["chain_id"]) != chain_id:
        raise AuthError(f"message is for chain {fields['chain_id']}, not {chain_id}")
    issued = _timestamp(fields["issued_at"], "Issued At")
    if issued > now + 60:
        raise AuthError("message is issued in the future")
    if "expiration_time" in fields and _timestamp(fields["expiration_time"], "Expiration Time") <= now:
        raise AuthError("message has expired", "expired_siwe")
    if "not_before" in fields and _timestamp(fields["not_before"], "Not Before") > now:
        raise AuthError("message is not valid yet")
    try:
        signer = Account.recover_message(encode_defunct(text=message), signature=signature)
    except Exception:
        raise AuthError("signature is not a valid Ethereum signature") from None
    if signer.lower() != fields["address"].lower():
        raise AuthError("signature was not made by the address in the message")
    _burn_nonce(fields["nonce"], now)
    return to_checksum_address(fields["address"])


def _burn_nonce(nonce: str, now: float) -> None:
    """Single use, atomically: the UPDATE only matches an unused, unexpired nonce we issued."""
    with session() as db:
        result = db.exec(
            update(SiweNonce)
            .where(SiweNonce.nonce == nonce, SiweNonce.used_at.is_(None), SiweNonce.issued_at > now - NONCE_TTL_S)
            .values(used_at=now)
        )
        db.commit()
    if result.rowcount != 1:
        raise AuthError("nonce is unknown, used or expired", "invalid_nonce")


def _timestamp(value: str, what: str) -> float:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise AuthError(f"{what} is not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise AuthError(f"{what} needs a time zone")
    return parsed.timestamp()


def bearer_secret(authorization: str) -> str:
    """The secret of an `Authorization: Bearer <secret>` header ("" when there is none)."""
    scheme, _, secret = authorization.partition(" ")
    return secret.strip() if scheme.lower() == "bearer" else ""


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def add_key(db: Session, secret: str, account: str, lane: str, package: str | None, expires_at: float | None) -> None:
    """Store `secret` (its hash only) inside the caller's transaction, e.g. with the purchase it pays for."""
    db.add(ApiKey(key_hash=hash_key(secret), account=account, lane=lane, package=package, created_at=time.time(),
                  expires_at=expires_at))  # fmt: skip


def revoke_key(db: Session, key_hash: str) -> ApiKey | None:
    """Delete a key inside the caller's transaction (it stops authenticating); returns what it granted."""
    key = db.get(ApiKey, key_hash)
    if key is not None:
        db.delete(key)
        db.flush()
    return key


def dedicated_keys(account: str) -> list[ApiKey]:
    """`account`'s package keys (their hashes, packages and times), newest first: what the keys page lists."""
    with session() as db:
        keys = db.exec(select(ApiKey).where(ApiKey.account == account, ApiKey.lane == "dedicated")).all()
    return sorted(keys, key=lambda k: k.created_at, reverse=True)


def revoke_own_key(account: str, key_hash: str, replace: bool = False) -> tuple[ApiKey, str | None] | None:
    """Revoke one of `account`'s package keys and, with `replace`, issue in the same transaction a new key for the
    same package and expiry (a leaked key swapped without losing the package); returns (what the old key granted,
    the new secret or None). None when no such key is `account`'s: another account's key is answered exactly
    as a missing one, so the reply tells nothing about keys the caller does not hold."""
    with session() as db:
        key = db.get(ApiKey, key_hash)
        if key is None or key.account.lower() != account.lower() or key.lane != "dedicated":
            return None
        revoked = revoke_key(db, key_hash)
        secret = new_secret() if replace else None
        if secret is not None:
            add_key(db, secret, revoked.account, revoked.lane, revoked.package, revoked.expires_at)
        db.commit()
    return revoked, secret


def create_key(account: str, lane: str, package: str | None = None, ttl_s: float | None = SESSION_TTL_S) -> str:
    """A new secret for `account`; only its hash is stored. Returned once."""
    secret = new_secret()
    with session() as db:
        add_key(db, secret, account, lane, package, time.time() + ttl_s if ttl_s else None)
        db.commit()
    return secret


def principal_for(secret: str, now: float | None = None) -> Principal | None:
    """The caller a bearer secret stands for, or None (unknown or expired)."""
    now = time.time() if now is None else now
    with session() as db:
        key = db.exec(select(ApiKey).where(ApiKey.key_hash == hash_key(secret))).first()
    if key is None or (key.expires_at is not None and key.expires_at <= now):
        return None
    return Principal(account=key.account, lane=key.lane, package=key.package, expires_at=key.expires_at)


def is_operator(address: str, operators: list[str]) -> bool:
    return address.lower() in {a.lower() for a in operators}


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def package_live(account: str, package: str | None, now: float | None = None) -> bool:
    """Whether `account` still holds an unexpired Dedicated key for `package`: what lets an agent spend it."""
    now = time.time() if now is None else now
    with session() as db:
        keys = db.exec(select(ApiKey.expires_at).where(ApiKey.account == account, ApiKey.lane == "dedicated", ApiKey.package == package)).all()
    return any(expires_at is None or expires_at > now for expires_at in keys)


def live_packages(now: float | None = None) -> list[tuple[str, float | None]]:
    """(package id, expiry) of every unexpired Dedicated key (for reserved concurrency)."""
    now = time.time() if now is None else now
    with session() as db:
        rows = db.exec(select(ApiKey.package, ApiKey.expires_at).where(ApiKey.lane == "dedicated", ApiKey.expires_at > now)).all()
    return [(p, expires) for p, expires in rows if p]
