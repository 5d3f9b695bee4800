"""The coordinator's HTTP and WebSocket surface (`create_api`, backend/api/app.py), handed to Reflex as its
api_transformer.

Import-light on purpose: the services raise `backend.api.errors.ApiError`, and the app imports the services,
so `create_api` is loaded on first use rather than when a service imports the errors module.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "create_api":
        from backend.api.app import create_api  # on first use: see the module docstring (an import cycle otherwise)

        return create_api
    raise AttributeError(f"module 'backend.api' has no attribute {name!r}")


__all__ = ["create_api"]
