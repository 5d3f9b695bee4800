"""The page shell every page shares: the nav bar and a body. Views that hold a person's data (chat,
images, balance, packages) are mounted into `browser_view` placeholders by assets/web/app.js and run
only in the browser, so no prompt, answer or key ever sits in Reflex state (memory or Redis)."""

from __future__ import annotations

import reflex as rx

NAV = [("Chat", "/"), ("Images", "/images"), ("Balance", "/balance"), ("Packages", "/packages"), ("Verify", "/verify"), ("Agents", "/agents"), ("Earn", "/worker"), ("Operator", "/operator")]


def navbar() -> rx.Component:
    """The same header on every page and at every width: one line that scrolls sideways on a phone instead of
    wrapping, after a skip link (the first thing Tab reaches) to the page's main control."""
    return rx.el.header(
        rx.el.a("Skip to content", href="#main", class_name="one-skip", id="skip-link"),
        rx.hstack(
            rx.link(rx.heading("ONE", size="6", weight="bold"), href="/", underline="none"),
            rx.text("verifiable community inference", color_scheme="gray", size="2", display=["none", "none", "block"], white_space="nowrap"),
            rx.spacer(),
            *[rx.link(label, href=href, size="3", weight="medium", id=f"nav-{label.lower()}", white_space="nowrap") for label, href in NAV],
            rx.badge(rx.el.span("not signed in", id="session-chip"), variant="soft", radius="full", white_space="nowrap"),
            align="center",
            spacing="4",
            height="var(--one-header)",
            wrap="nowrap",
            overflow_x="auto",
            width="100%",
        ),
        border_bottom="1px solid var(--gray-4)",
        width="100%",
    )


def page(*children: rx.Component) -> rx.Component:
    """Every page: the header, then its body at one width (`#main`, where the skip link lands)."""
    return rx.container(navbar(), rx.box(*children, id="main", tab_index=-1, padding_top="1em", width="100%", outline="none"), size="4")


def browser_view(name: str) -> rx.Component:
    """A placeholder the browser-side module `name` mounts into."""
    return rx.el.div(id=f"view-{name}", custom_attrs={"data-one-view": name})
