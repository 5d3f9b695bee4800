"""Errors in the OpenAI shape: `{"error": {"message", "type", "param", "code"}}`, right status code.

`ApiError` is the one error type of the API: routes and the services under them raise it (or a subclass:
the serving layer's InferenceError, the money services' PurchaseError) and one handler answers it.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

RETRY_LATER = (429, 503)  # statuses a client may simply retry: they carry retry-after


class ApiError(Exception):
    """A refusal the caller sees in the OpenAI error shape. `extra`: top-level fields beside "error" (the 402
    Dedicated offer, an agent file's problems)."""

    def __init__(self, status: int, message: str, code: str, param: str | None = None, type_: str = "invalid_request_error",
                 extra: dict[str, Any] | None = None):  # fmt: skip
        super().__init__(message)
        self.status, self.message, self.code, self.type, self.param = status, message, code, type_, param
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        return {**error_body(self.message, self.type, self.param, self.code), **self.extra}

    def response(self) -> JSONResponse:
        headers = {"retry-after": "2"} if self.status in RETRY_LATER else None
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def param_path(loc: tuple | list) -> str | None:
    """('body', 'messages', 0, 'role') -> 'messages[0].role'."""
    out = ""
    for part in loc:
        if part in ("body", "query", "path") and not out:
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        elif not str(part).startswith(("function-", "literal[", "list[", "str", "int", "float", "bool")):
            out += ("." if out else "") + str(part)
    return out or None


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_req: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_req: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        if first.get("type") == "json_invalid":
            return JSONResponse(error_body("The request body is not valid JSON.", "invalid_request_error", None, "invalid_json"), 400)
        param = param_path(first.get("loc", ()))
        where = f" for '{param}'" if param else ""
        return JSONResponse(
            error_body(f"Invalid value{where}: {first.get('msg')}", "invalid_request_error", param, "invalid_value"), 400
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return JSONResponse(error_body(str(exc.detail), "invalid_request_error", None, code), exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(_req: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(error_body("Internal error; nothing was charged.", "server_error", None, "internal_error"), 500)
