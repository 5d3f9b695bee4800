"""The `anypath` route convertor, registered on import by every router that uses it."""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor


class AnyPathConvertor(Convertor[str]):
    """Like Starlette's `path`, but also across control characters: `.*` stops at a newline
    (`/v1/models/%0A0`), which would let such a path fall through to the UI's plain-text 404."""

    regex = "(?s:.*)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("anypath", AnyPathConvertor())
