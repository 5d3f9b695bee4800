"""What routes need from a request, as FastAPI dependencies: the runtime, the signed-in principal, the caller.

Who a bearer key stands for is looked up once per request, by the door (backend/api/door.py); these read it.
Tests that bring their own runtime swap `get_runtime` here: every route asks this module for it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from web3 import Web3

from backend.access import auth
from backend.access.clusters import cluster_of
from backend.api.door import principal_of
from backend.api.errors import ApiError
from backend.money.lanes import priority_of
from backend.runtime import Runtime, get_runtime
from backend.serving.inference import Caller


async def current_runtime() -> Runtime:
    """The coordinator's services (async: resolved on the event loop, not in a thread)."""
    return get_runtime()


RuntimeDep = Annotated[Runtime, Depends(current_runtime)]


async def signed_in(request: Request) -> auth.Principal:
    """The signed-in principal (a SIWE session or a package key), else 401."""
    principal = principal_of(request)
    if principal is None:
        raise ApiError(401, "Sign in with Ethereum first (POST /one/auth/siwe) and send its key.", "missing_api_key")
    return principal


PrincipalDep = Annotated[auth.Principal, Depends(signed_in)]


async def caller(request: Request, rt: RuntimeDep) -> Caller:
    """Who runs and pays for an inference request. In open dev mode a request without a ONE key (`one_sk_…`; the
    OpenAI clients insist on sending some key) runs as one anonymous Included-lane account."""
    secret = auth.bearer_secret(request.headers.get("authorization", ""))
    parent = request.headers.get("x-one-parent")
    if secret.startswith(auth.KEY_PREFIX):
        principal = principal_of(request)
        if principal is None:
            raise ApiError(401, "Invalid or expired API key.", "invalid_api_key")
        priority = priority_of(rt.packages, principal.package)
        return Caller(account_id=principal.account, lane=principal.lane, parent=parent, metered=True, priority=priority,
                      package=principal.package, cluster=cluster_of(rt.packages, principal.account, principal.package))
    if rt.settings.open_access:
        return Caller(account_id="anonymous", lane="included", parent=parent)
    raise ApiError(401, "An API key is required: sign in with Ethereum or buy a package.", "missing_api_key")


CallerDep = Annotated[Caller, Depends(caller)]


def chain_of(rt: Runtime) -> Web3:
    """The configured chain, or 503 (asked inside a handler, after its own 4xx checks)."""
    w3 = rt.web3()
    if w3 is None:
        raise ApiError(503, "No chain is configured.", "chain_unavailable", type_="server_error")
    return w3
