"""The page shell every page shares: the nav bar and a body. Views that hold a person's data (chat,
images, balance, packages) are mounted into `browser_view` placeholders by assets/web/app.js and run
only in the browser, so no prompt, answer or key ever sits in Reflex state (memory or Redis)."""

from __future__ import annotations

import reflex as rx

NAV = [("Chat", "/"), ("Images", "/images"), ("Balance", "/balance"), ("Packages", "/packages"), ("Verify", "/verify"), ("Agents", "/agents"), ("Earn", "/worker"), ("Operator", "/operator")]


def navbar() -> rx.Component:
    return rx.hstack(
        rx.link(rx.heading("ONE", size="6", weight="bold"), href="/", underline="none"),
        rx.text("verifiable community inference", color_scheme="gray", size="2", display=["none", "none", "block"]),
        rx.spacer(),
        *[rx.link(label, href=href, size="3", weight="medium", id=f"nav-{label.lower()}") for label, href in NAV],
        rx.badge(rx.el.span("not signed in", id="session-chip"), variant="soft", radius="full"),
        align="center",
        spacing="4",
        padding_y="0.8em",
        border_bottom="1px solid var(--gray-4)",
        width="100%",
        wrap="wrap",
    )


def page(*children: rx.Component, wide: bool = False) -> rx.Component:
    return rx.container(navbar(), rx.box(*children, padding_top="1em", width="100%"), size="4" if wide else "3")


def browser_view(name: str) -> rx.Component:
    """A placeholder the browser-side module `name` mounts into."""
    return rx.el.div(id=f"view-{name}", custom_attrs={"data-one-view": name})
