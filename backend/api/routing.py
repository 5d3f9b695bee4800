"""How routes are declared: the router every route module uses, and the `anypath` convertor it registers.

`ReplyRouter` serializes every reply with `response_model_exclude_unset`: the reply models
(backend/api/schemas/responses.py) document and check replies, and a reply keeps exactly the keys its handler
set. Every route answers errors in the OpenAI shape (`ERRORS`), which also keeps FastAPI's 422 out of the
document: the API answers a bad request with a 400.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.convertors import Convertor, register_url_convertor

from backend.api.schemas.responses import ERRORS


class AnyPathConvertor(Convertor[str]):
    """Like Starlette's `path`, but also across control characters: `.*` stops at a newline
    (`/v1/models/%0A0`), which would let such a path fall through to the UI's plain-text 404."""

    regex = "(?s:.*)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("anypath", AnyPathConvertor())


class ReplyRouter(APIRouter):
    """An APIRouter whose routes document OpenAI-shaped errors and send only the reply keys their handler set."""

    def __init__(self, *, prefix: str, tags: list[str]):
        super().__init__(prefix=prefix, tags=tags, responses=ERRORS)

    def add_api_route(self, path: str, endpoint: Any, **kwargs: Any) -> None:
        kwargs["response_model_exclude_unset"] = True
        super().add_api_route(path, endpoint, **kwargs)
