"""The signed-in account's package keys: list them and revoke one (a leaked key stops working at once).

Only a Sign-In with Ethereum session may do either: a package key must not be able to list or revoke its
siblings (whoever holds one leaked key could otherwise lock the owner out of all of them)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import Path

from backend.access import auth
from backend.api.deps import PrincipalDep, RuntimeDep
from backend.api.errors import ApiError
from backend.api.routing import ReplyRouter
from backend.api.schemas.responses import DedicatedKeys, ReplacedKey, RevokedKey
from backend.money import ledger

router = ReplyRouter(prefix="/one", tags=["account"])


def _session_owner(principal: auth.Principal) -> str:
    if principal.lane != "included" or principal.package is not None:
        raise ApiError(403, "Manage keys with your wallet's sign-in session, not with a package key.", "session_required")
    return principal.account


@router.get("/keys", response_model=DedicatedKeys)
async def list_keys(principal: PrincipalDep) -> dict[str, Any]:
    """The caller's package keys, newest first, and the USDC left on its packages."""
    account = _session_owner(principal)
    keys = await asyncio.to_thread(auth.dedicated_keys, account)
    balance = await asyncio.to_thread(ledger.balance, account, "usdc")
    now = time.time()
    data = [{"id": k.key_hash, "package": k.package, "created_at": k.created_at, "expires_at": k.expires_at,
             "expired": k.expires_at is not None and k.expires_at <= now} for k in keys]  # fmt: skip
    return {"account": account, "balance": balance, "unit": "usdc", "data": data}


KeyId = Path(pattern=r"^[0-9a-f]{64}$", description="the key's id from GET /one/keys")


async def _revoke(principal: auth.Principal, key_id: str, replace: bool) -> str | None:
    account = _session_owner(principal)
    done = await asyncio.to_thread(auth.revoke_own_key, account, key_id, replace)
    if done is None:
        raise ApiError(404, "You hold no package key with this id.", "key_not_found", param="key_id")
    return done[1]


@router.post("/keys/{key_id}/revoke", response_model=RevokedKey)
async def revoke(principal: PrincipalDep, rt: RuntimeDep, key_id: str = KeyId) -> dict[str, Any]:
    """Revoke one of the caller's package keys: /v1 answers it 401 from now on."""
    await _revoke(principal, key_id, replace=False)
    rt.refresh_reserved()  # a revoked package no longer holds reserved capacity
    return {"id": key_id, "revoked": True}


@router.post("/keys/{key_id}/replace", response_model=ReplacedKey)
async def replace(principal: PrincipalDep, key_id: str = KeyId) -> dict[str, Any]:
    """Revoke one of the caller's package keys and get a new one for the same package and expiry, shown once
    (for a key that leaked: the package, its balance and its reserved capacity carry on)."""
    secret = await _revoke(principal, key_id, replace=True)
    return {"id": key_id, "revoked": True, "api_key": secret, "new_id": auth.hash_key(secret)}
