"""Chat, vision and images pages: shells for the browser-side views (assets/web/chat.js, images.js)."""

from __future__ import annotations

import reflex as rx

from app.layout import browser_view, page


def chat_page() -> rx.Component:
    return page(browser_view("chat"))


def images_page() -> rx.Component:
    return page(rx.heading("Images", size="6"), rx.text("One prompt, a grid of candidates: every candidate is its own request, all sent at once; as many run together as "
                        "there are free worker slots for the model, and each tile shows its own time. Kept in this browser only.", color_scheme="gray"),
                rx.box(browser_view("images"), padding_top="1em"))  # fmt: skip
