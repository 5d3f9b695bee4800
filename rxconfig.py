"""Reflex config: one port in prod, memory state manager (no state pickles on disk), no telemetry.

Port, listening address and public URL come from the ONE settings (environment, data_dir/network.env, .env),
so `reflex run` binds loopback unless ONE_HOST says otherwise, and production mode (ONE_ENV=production)
stops here, before anything is served, when the settings are unsafe.

Scale mode: ONE_REDIS_URL moves Reflex's per-tab UI state to Redis so several coordinator replicas can
serve the UI. That state never holds prompts, answers or keys (those stay in the browser)."""

import os

import reflex as rx

from backend.config import UnsafeSettings, get_settings

settings = get_settings()
try:
    settings.refuse_if_unsafe()
except UnsafeSettings as exc:
    raise SystemExit(str(exc)) from None

config = rx.Config(
    app_name="app",
    frontend_port=settings.port,
    backend_port=settings.port,
    backend_host=settings.host,
    api_url=settings.url,
    deploy_url=settings.url,
    state_manager_mode=rx.constants.StateManagerMode.REDIS if os.environ.get("ONE_REDIS_URL") else rx.constants.StateManagerMode.MEMORY,
    redis_url=os.environ.get("ONE_REDIS_URL") or None,
    telemetry_enabled=False,
    show_built_with_reflex=False,
    disable_plugins=[rx.plugins.SitemapPlugin],
    plugins=[rx.plugins.RadixThemesPlugin(theme=rx.theme(appearance="light", accent_color="violet"))],
)
