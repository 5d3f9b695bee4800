"""Sign-In with Ethereum and the signed-in account: nonce, session key, who a key is, balance and usage."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import Query, Request
from web3 import Web3

from backend.access import auth
from backend.access.limits import Rates, client_address
from backend.api.deps import PrincipalDep, RuntimeDep
from backend.api.errors import ApiError
from backend.api.routing import ReplyRouter
from backend.api.schemas.requests import SiweBody
from backend.api.schemas.responses import AccountSummary, Me, SessionKey, SigninNonce

router = ReplyRouter(prefix="/one", tags=["account"])
NONCE_RATE = Rates()  # sign-in nonces per client address per minute (settings.nonce_rate_per_minute)


@router.get("/auth/nonce", response_model=SigninNonce)
async def auth_nonce(
    request: Request, rt: RuntimeDep,
    address: str | None = Query(None, pattern=r"^0x[0-9a-fA-F]{40}$", description="give it to get the message to sign"),
) -> dict[str, Any]:  # fmt: skip
    """A fresh single-use nonce, with the domain and chain id the SIWE message must carry; with `address`,
    also the EIP-4361 message itself, so browsers sign exactly the text the server will check. Domain and URI
    come from configuration (ONE_PUBLIC_URL), never from the request: a phishing site sets its own Host."""
    settings = rt.settings
    peer = request.client.host if request.client else "unknown"
    client = client_address(peer, request.headers.get("x-forwarded-for", ""), settings.trusted_proxies)
    if not (await NONCE_RATE.hit([(f"nonce:{client}", settings.nonce_rate_per_minute)], settings.broker_url)).allowed:  # each nonce is a row: not for the asking
        raise ApiError(429, "Too many sign-in nonces from this address; try again in a minute.", "rate_limit_exceeded", type_="requests")
    nonce = await asyncio.to_thread(auth.issue_nonce)
    out: dict[str, Any] = {"nonce": nonce, "domain": settings.signin_domain, "chain_id": settings.chain_id, "expires_in": auth.NONCE_TTL_S}
    if address:
        out["message"] = auth.siwe_message(
            domain=settings.signin_domain, address=Web3.to_checksum_address(address), uri=settings.url,
            chain_id=settings.chain_id, nonce=nonce, issued_at=auth.rfc3339(time.time()),
        )  # fmt: skip
    return out


@router.post("/auth/siwe", response_model=SessionKey)
async def auth_siwe(body: SiweBody, rt: RuntimeDep) -> dict[str, Any]:
    """Check a signed EIP-4361 message; on success issue a session key for the Included lane (shown once)."""
    settings = rt.settings
    try:
        address = await asyncio.to_thread(auth.verify_siwe, body.message, body.signature, domain=settings.signin_domain, chain_id=settings.chain_id)
    except auth.AuthError as exc:
        raise ApiError(401, exc.reason, exc.code, param="message") from None
    key = await asyncio.to_thread(auth.create_key, address, "included")
    return {"account": address, "lane": "included", "api_key": key, "expires_in": auth.SESSION_TTL_S}


@router.get("/auth/me", response_model=Me)
async def auth_me(principal: PrincipalDep) -> dict[str, Any]:
    """Who a bearer key stands for (401 when it is unknown or expired)."""
    return {"account": principal.account, "lane": principal.lane, "package": principal.package}


@router.get("/account", response_model=AccountSummary)
async def account(principal: PrincipalDep, rt: RuntimeDep) -> dict[str, Any]:
    """The signed-in caller's balance, allotment, refresh countdown and usage by model (from its receipts)."""
    summary = await asyncio.to_thread(rt.inference.lanes.summary, principal.account, principal.lane)
    usage = await asyncio.to_thread(rt.receipts.usage, principal.account)
    return {"account": principal.account, "package": principal.package, "expires_at": principal.expires_at, **summary,
            "usage": usage["by_model"], "usage_by_day": usage["by_day"], "operator": auth.is_operator(principal.account, rt.settings.operators)}  # fmt: skip
