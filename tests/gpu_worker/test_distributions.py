"""The two distributions this repository builds: the coordinator (pyproject.toml) and the node worker
(worker/pyproject.toml). Each pins every dependency, the worker needs none of the coordinator's stack, and a
package both name is pinned to the same version in both, so a dev venv with both installed is one consistent set."""

from __future__ import annotations

import re

import tomllib

from backend.cli import COMMAND_GROUP
from tests.conftest import REPO

COORDINATOR_ONLY = ("reflex", "web3", "sqlmodel", "fastapi", "sqlalchemy", "alembic", "granian")


def _pins(requirements: list[str]) -> dict[str, str]:
    pins = {}
    for requirement in requirements:
        name, version = re.fullmatch(r"([A-Za-z0-9_.\[\]-]+)==([^;\s]+)(\s*;.*)?", requirement).group(1, 2)
        pins[re.sub(r"\[.*\]", "", name).lower().replace("_", "-")] = version
    return pins


def _every_pin(project: dict) -> dict[str, str]:
    """Dependencies and every extra's, by name (`_pins` fails on a requirement that is not pinned with ==)."""
    return _pins(project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra])


def _project(path: str) -> dict:
    return tomllib.loads((REPO / path).read_text())["project"]


def test_every_dependency_is_pinned_and_shared_pins_agree():
    coordinator, worker = (_every_pin(_project(path)) for path in ("pyproject.toml", "worker/pyproject.toml"))
    assert {
        name: (coordinator[name], worker[name])
        for name in coordinator.keys() & worker.keys()
        if coordinator[name] != worker[name]
    } == {}


def test_the_worker_needs_none_of_the_coordinators_stack_and_brings_one_worker():
    worker = _project("worker/pyproject.toml")
    assert not set(_pins(worker["dependencies"])) & set(COORDINATOR_ONLY)
    assert not {"torch", "transformers"} & set(_pins(worker["dependencies"]))  # the ML stack is the `ml` extra
    assert worker["scripts"] == {"one-worker": "gpu_worker.cli:main"}
    assert worker["entry-points"][COMMAND_GROUP] == {"worker": "gpu_worker.cli:worker_app"}
