"""The web app's dev wallet on the local dev chain (off unless ONE_DEV_WALLETS names wallets)."""

from __future__ import annotations

from typing import Any

import httpx

from backend.api.deps import RuntimeDep
from backend.api.errors import ApiError
from backend.api.routing import ReplyRouter
from backend.api.schemas.responses import JsonRpcReply

router = ReplyRouter(prefix="/one", tags=["dev"])

# JSON-RPC methods the dev wallet needs; anything else (anvil_*, evm_*, debug_*) stays off the public port.
DEV_RPC_METHODS = {"eth_chainId", "eth_accounts", "eth_blockNumber", "eth_call", "eth_estimateGas", "eth_gasPrice",
                   "eth_getBalance", "eth_getTransactionReceipt", "eth_getTransactionByHash", "eth_sendTransaction",
                   "personal_sign", "net_version"}  # fmt: skip


@router.post("/dev/rpc", response_model=JsonRpcReply)
async def dev_rpc(payload: dict[str, Any], rt: RuntimeDep) -> Any:
    """Forwards a JSON-RPC call to anvil, which holds the demo wallets' keys; only those wallets may sign."""
    allowed = {a.lower() for a in rt.settings.dev_wallets}
    method, params = payload.get("method"), payload.get("params") or []
    if not allowed or not rt.settings.chain_rpc_url:
        raise ApiError(404, "The dev wallet is off (no dev chain).", "dev_wallet_off")
    if method not in DEV_RPC_METHODS or not isinstance(params, list):
        raise ApiError(400, f"The dev wallet does not forward `{method}`.", "method_not_allowed", param="method")
    if method == "eth_accounts":
        return {"jsonrpc": "2.0", "id": payload.get("id"), "result": rt.settings.dev_wallets}
    signer = (params[0].get("from") if method == "eth_sendTransaction" and params and isinstance(params[0], dict)
              else params[1] if method == "personal_sign" and len(params) > 1 else None)  # fmt: skip
    if method in ("eth_sendTransaction", "personal_sign") and str(signer).lower() not in allowed:
        raise ApiError(403, "The dev wallet signs only for the demo wallets.", "not_a_dev_wallet", param="params")
    async with httpx.AsyncClient(timeout=30) as client:
        reply = await client.post(rt.settings.chain_rpc_url, json={"jsonrpc": "2.0", "id": payload.get("id", 1), "method": method, "params": params})
    return reply.json()
