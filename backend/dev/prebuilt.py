"""`python -m backend.dev.prebuilt`: `reflex run --env prod --single-port` without its frontend build.

A coordinator replica started this way serves the UI build already in `.web` (API, websocket and pages on one
port, as `reflex run` does). `reflex run --env prod` compiles and rebuilds `.web` on every start, deleting the
files other replicas of the same checkout are serving at that moment; `--backend-only` skips the build but
then serves no pages. Replicas share one ONE_PUBLIC_URL (the front door), which is all the build bakes in, so
one build serves them all (backend/dev/replicas.py builds it once, with the first replica).

These are the steps of reflex 0.10's `_run_prod` after its build, through the same Reflex functions.
"""

from __future__ import annotations

from reflex_base import constants
from reflex_base.config import get_config
from reflex_base.environment import environment


def serve_prebuilt() -> None:
    from reflex.utils import exec, prerequisites

    if not (prerequisites.get_web_dir() / constants.Dirs.STATIC).is_dir():
        raise SystemExit(f"no UI build in {prerequisites.get_web_dir()}: start one replica with `reflex run --env prod` first")
    environment.REFLEX_ENV_MODE.set(constants.Env.PROD)
    environment.REFLEX_COMPILE_CONTEXT.set(constants.CompileContext.RUN)
    environment.REFLEX_SKIP_COMPILE.set(True)  # the app's pages were compiled by the build; import, never rewrite
    config = get_config()
    exec.run_backend_prod(config.backend_host, config.backend_port, constants.LogLevel.INFO.subprocess_level(),
                          mount_frontend_compiled_app=True)  # fmt: skip


if __name__ == "__main__":
    serve_prebuilt()
