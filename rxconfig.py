"""Reflex config: one port in prod, memory state manager (no state pickles on disk), no telemetry.

Scale mode: ONE_REDIS_URL moves Reflex's per-tab UI state to Redis so several coordinator replicas can
serve the UI. That state never holds prompts, answers or keys (those stay in the browser)."""

import os

import reflex as rx

PORT = int(os.environ.get("ONE_PORT", "3000"))

config = rx.Config(
    app_name="app",
    frontend_port=PORT,
    backend_port=PORT,
    api_url=os.environ.get("ONE_PUBLIC_URL", f"http://127.0.0.1:{PORT}"),
    deploy_url=os.environ.get("ONE_PUBLIC_URL", f"http://127.0.0.1:{PORT}"),
    state_manager_mode=rx.constants.StateManagerMode.REDIS if os.environ.get("ONE_REDIS_URL") else rx.constants.StateManagerMode.MEMORY,
    redis_url=os.environ.get("ONE_REDIS_URL") or None,
    telemetry_enabled=False,
    show_built_with_reflex=False,
    disable_plugins=[rx.plugins.SitemapPlugin],
    plugins=[rx.plugins.RadixThemesPlugin(theme=rx.theme(appearance="light", accent_color="violet"))],
)
