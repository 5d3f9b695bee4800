"""Operator dashboard: live workers (reliability, bond), queue depth per lane, throughput and latency, the
receipt log's tail, settlement epochs and payouts.

Operators sign in with Ethereum like everyone else (assets/web/core.js); the session key is handed to
`authorize` once, checked against ONE_OPERATORS, and not kept: the state holds only the address."""

from __future__ import annotations

import asyncio
import statistics
import time

import reflex as rx
from sqlmodel import select

from app.layout import browser_view, page

BUCKET_S = 10
WINDOW_S = 300


class OperatorState(rx.State):
    address: str = ""
    denied: str = ""
    workers: list[dict[str, str]] = []
    queue_included: int = 0
    queue_dedicated: int = 0
    series: list[dict[str, float | str]] = []
    receipts: list[dict[str, str]] = []
    total_receipts: int = 0
    epochs: list[dict[str, str]] = []
    payouts: list[dict[str, str]] = []
    failed_payments: list[dict[str, str]] = []
    polling: bool = False

    @rx.event
    def check_session(self):
        return rx.call_script("window.ONE && window.ONE.session() ? window.ONE.session().api_key : null", callback=OperatorState.authorize)

    @rx.event
    def authorize(self, key: str | None):
        from backend.access import auth
        from backend.runtime import get_runtime

        if not key:
            self.address, self.denied = "", ""
            return
        principal = auth.principal_for(key)
        if principal is None:
            self.denied = "That session has expired; sign in again."
        elif not auth.is_operator(principal.account, get_runtime().settings.operators):
            self.denied = f"{principal.account} is not an operator of this coordinator (ONE_OPERATORS)."
        else:
            self.address, self.denied = principal.account, ""
            self._refresh()
            if not self.polling:
                self.polling = True
                return OperatorState.poll

    @rx.event
    def stop(self):
        self.polling = False

    @rx.event(background=True)
    async def poll(self):
        """Refresh every 2 s while the page is open (on_unmount stops it)."""
        while True:
            await asyncio.sleep(2)
            async with self:
                if not self.polling or not self.address:
                    self.polling = False
                    return
                self._refresh()

    def _refresh(self):
        from backend.runtime import get_runtime
        from backend.money.settlement import epochs, failed_payments, payouts

        rt = get_runtime()
        from backend.db import session
        from backend.db.models import WorkerRecord

        with session() as db:
            records = {r.id: r for r in db.exec(select(WorkerRecord)).all()}
        self.workers = [
            {"id": w["id"][:16], "kind": w["kind"], "models": ", ".join(w["models"]), "load": f"{w['busy']}/{w['slots']}",
             "served": str(w["served"]), "reliability": f"{w['reliability']:.0%}" + (" quarantined" if w["id"] in rt.scheduler.quarantined else ""),
             "latency": f"{w['latency_ewma_ms']:.0f} ms", "bond": str(records[w["id"]].bond) if w["id"] in records else "0"}
            for w in (c.public() for c in rt.scheduler.workers.values())
        ]  # fmt: skip
        depth = rt.scheduler.queue_depth_by_lane()
        self.queue_included, self.queue_dedicated = depth["included"], depth["dedicated"]
        now = time.time()
        buckets: dict[int, list[float]] = {b: [] for b in range(int(now - WINDOW_S) // BUCKET_S, int(now) // BUCKET_S + 1)}
        for done in list(rt.inference.completed):
            b = int(done.at) // BUCKET_S
            if b in buckets:
                buckets[b].append(done.latency_ms)
        self.series = [
            {"t": time.strftime("%H:%M:%S", time.localtime(b * BUCKET_S)), "requests_per_min": len(v) * 60 // BUCKET_S,
             "p50_ms": round(statistics.median(v)) if v else 0}
            for b, v in sorted(buckets.items())
        ]  # fmt: skip
        tail = rt.receipts.tail(15)
        self.total_receipts = tail[0]["seq"] + 1 if tail else 0
        self.receipts = [
            {"seq": str(r["seq"]), "ts": r["ts"][11:19], "kind": r["kind"], "lane": r["lane"], "model": r["model"],
             "charge": f"{r['charge']['amount']} {r['charge']['unit']}", "worker": r["worker"]["id"][:12], "hash": r["hash"][:16]}
            for r in tail
        ]  # fmt: skip
        self.epochs = [
            {"epoch": str(e["epoch"]), "receipts": f"{e['first_seq']}..{e['last_seq']}", "root": e["root"][:16], "closed": e["closed_at"][:19],
             "anchor": (e["anchor_tx"] or "pending")[:18]}
            for e in epochs(10)
        ]  # fmt: skip
        self.payouts = [
            {"epoch": str(p["epoch"]), "worker": p["worker"][:12], "to": p["payout_address"][:12], "gross": str(p["gross"]), "tau": str(p["fee"]),
             "withheld": str(p["withheld"]), "net": str(p["net"]), "status": p["status"], "tx": (p["tx_hash"] or "")[:18]}
            for p in payouts(limit=20)
        ]  # fmt: skip
        self.failed_payments = [
            {"kind": f["kind"], "epoch": "" if f["epoch"] is None else str(f["epoch"]), "worker": f["worker"][:12], "to": f["payout_address"],
             "net": str(f["net"]), "status": f["status"], "reason": f["failure"]}
            for f in failed_payments(limit=20)
        ]  # fmt: skip


def _table(rows, columns: list[str], id_: str) -> rx.Component:
    return rx.table.root(
        rx.table.header(rx.table.row(*[rx.table.column_header_cell(c) for c in columns])),
        rx.table.body(rx.foreach(rows, lambda row: rx.table.row(*[rx.table.cell(row[c]) for c in columns]))),
        id=id_,
        width="100%",
        size="1",
    )


def _stat(label: str, value) -> rx.Component:
    return rx.card(rx.text(label, color_scheme="gray", size="2"), rx.heading(value, size="7"))


def _chart(key: str, name: str, color: str) -> rx.Component:
    return rx.recharts.line_chart(
        rx.recharts.line(data_key=key, name=name, stroke=color, dot=False, is_animation_active=False),
        rx.recharts.x_axis(data_key="t"),
        rx.recharts.y_axis(),
        rx.recharts.cartesian_grid(stroke_dasharray="3 3"),
        rx.recharts.graphing_tooltip(),
        data=OperatorState.series,
        height=220,
        width="100%",
    )


def dashboard() -> rx.Component:
    return rx.vstack(
        rx.hstack(rx.heading("Operator dashboard", size="6"), rx.spacer(), rx.badge(OperatorState.address, id="operator-address"), width="100%"),
        rx.grid(
            _stat("Workers online", OperatorState.workers.length()),
            _stat("Queue · Included", OperatorState.queue_included),
            _stat("Queue · Dedicated", OperatorState.queue_dedicated),
            _stat("Receipts in the log", OperatorState.total_receipts),
            columns="4",
            spacing="3",
            width="100%",
        ),
        rx.heading("Workers", size="4"),
        _table(OperatorState.workers, ["id", "kind", "models", "load", "served", "reliability", "latency", "bond"], "workers-table"),
        rx.grid(
            rx.box(rx.heading("Throughput (requests/min)", size="3"), _chart("requests_per_min", "requests/min", "var(--accent-9)")),
            rx.box(rx.heading("Latency p50 (ms)", size="3"), _chart("p50_ms", "p50 ms", "var(--amber-9)")),
            columns="2",
            spacing="4",
            width="100%",
            id="operator-charts",
        ),
        rx.heading("Receipt log (newest first)", size="4"),
        _table(OperatorState.receipts, ["seq", "ts", "kind", "lane", "model", "charge", "worker", "hash"], "receipts-table"),
        rx.heading("Settlement epochs (Merkle root anchored on chain)", size="4"),
        _table(OperatorState.epochs, ["epoch", "receipts", "root", "closed", "anchor"], "epochs-table"),
        rx.heading("Payouts (micro-USDC, net of tau)", size="4"),
        _table(OperatorState.payouts, ["epoch", "worker", "to", "gross", "tau", "withheld", "net", "status", "tx"], "payouts-table"),
        rx.cond(
            OperatorState.failed_payments.length() > 0,
            rx.vstack(
                rx.heading("Not paid yet (retried every settlement run)", size="4", color_scheme="red"),
                _table(OperatorState.failed_payments, ["kind", "epoch", "worker", "to", "net", "status", "reason"], "failed-payments-table"),
                width="100%",
            ),
        ),
        rx.text("`one settle` closes the open epoch and pays now; the coordinator also settles every ONE_SETTLEMENT_EPOCH_S.",
                color_scheme="gray", id="settlement-note"),  # fmt: skip
        spacing="4",
        width="100%",
        on_unmount=OperatorState.stop,
    )


def operator_page() -> rx.Component:
    return page(
        rx.cond(
            OperatorState.address != "",
            dashboard(),
            rx.vstack(
                rx.heading("Operator sign-in", size="6"),
                rx.text("Sign in with an operator wallet (ONE_OPERATORS), then open the dashboard.", color_scheme="gray"),
                rx.cond(OperatorState.denied != "", rx.callout(OperatorState.denied, color_scheme="red", id="operator-denied")),
                browser_view("signin"),
                rx.button("Open dashboard", id="operator-open", on_click=OperatorState.check_session),
                spacing="3",
            ),
        ),
        wide=True,
    )
