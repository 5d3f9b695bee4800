"""Puts the worker's sources, which live beside this folder, into its wheel: gpu_worker/ and the protocol package
it shares with the coordinator. Only for a regular wheel: an editable install runs the checkout's own files."""

from __future__ import annotations

from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

# source (relative to this folder) -> path in the wheel
SOURCES = {
    "../gpu_worker": "gpu_worker",
    "../backend/__init__.py": "backend/__init__.py",
    "../backend/protocol": "backend/protocol",
}


class WorkerSources(BuildHookInterface):
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version == "standard":
            build_data["force_include"].update(SOURCES)
