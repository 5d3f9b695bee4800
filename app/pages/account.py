"""Balance and packages pages: shells for assets/web/account.js (keys stay in the browser)."""

from __future__ import annotations

import reflex as rx

from app.layout import browser_view, page


def balance_page() -> rx.Component:
    return page(browser_view("balance"))


def packages_page() -> rx.Component:
    return page(browser_view("packages"))


def worker_page() -> rx.Component:
    """Keep a tab open to earn: assets/web/worker-page.js runs the browser worker (Pyodide + WebGPU)."""
    return page(browser_view("worker"))


def agents_page() -> rx.Component:
    """Your agents, their runs and receipt trails: assets/web/agents.js with this browser's key."""
    return page(browser_view("agents"))
