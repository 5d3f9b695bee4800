"""The coordinator's HTTP and WebSocket surface, handed to Reflex as its api_transformer."""

from __future__ import annotations

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse
from starlette.routing import Match

from backend.api.door import Door
from backend.api.errors import error_body, install_handlers
from backend.api.routes import ROUTERS
from backend.protocol.frames import WORKER_PATH
from backend.runtime import get_runtime
from backend.scheduler.socket import serve_worker


def create_api() -> FastAPI:
    api = FastAPI(title="ONE network", version="0.1.0", docs_url="/docs", openapi_url="/openapi.json")
    install_handlers(api)
    api.add_middleware(Door)  # rates, body cap and JSON checks before any route reads the request
    for router in ROUTERS:
        api.include_router(router)

    @api.websocket(WORKER_PATH)
    async def worker_socket(ws: WebSocket) -> None:
        rt = get_runtime()
        await serve_worker(ws, rt.scheduler, rt.coordinator_pubkey, rt.packages)

    install_unknown_endpoint(api)
    return api


def install_unknown_endpoint(api: FastAPI) -> None:
    """Unknown /v1 and /one paths answer in the OpenAI error shape instead of falling through to the UI's HTML 404."""
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    ours = [route for route in api.router.routes if hasattr(route, "matches")]

    async def unknown(request: Request) -> JSONResponse:
        if any(route.matches(request.scope)[0] != Match.NONE for route in ours):
            msg = f"Method {request.method} is not allowed on {request.url.path}."
            return JSONResponse(error_body(msg, "invalid_request_error", None, "method_not_allowed"), 405)
        msg = f"Unknown endpoint: {request.method} {request.url.path}."
        return JSONResponse(error_body(msg, "invalid_request_error", None, "not_found"), 404)

    for prefix in ("/v1", "/one"):
        api.add_api_route(prefix, unknown, methods=methods, include_in_schema=False)
        api.add_api_route(prefix + "/{rest:anypath}", unknown, methods=methods, include_in_schema=False)
