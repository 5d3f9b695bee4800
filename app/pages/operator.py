"""Operator dashboard: live workers (reliability, bond), queue depth per lane, throughput and latency, the
receipt log's tail, settlement epochs and payouts, and each package's SLA figures and breaches per period.

Operators sign in with Ethereum like everyone else (assets/web/core.js); the session key is handed to
`authorize` once, checked against ONE_OPERATORS, and not kept: the state holds only the address."""

from __future__ import annotations

import asyncio
import time

import reflex as rx

from app.layout import browser_view, page
from backend.operators import NotAnOperator, Overview, authorize_operator, clock, overview
from backend.runtime import get_runtime


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
    sla: list[dict[str, str]] = []
    polling: bool = False

    @rx.event
    def check_session(self):
        return rx.call_script("window.ONE && window.ONE.session() ? window.ONE.session().api_key : null", callback=OperatorState.authorize)

    @rx.event
    def authorize(self, key: str | None):
        if not key:
            self.address, self.denied = "", ""
            return
        try:
            self.address, self.denied = authorize_operator(key, get_runtime().settings.operators), ""
        except NotAnOperator as exc:
            self.denied = str(exc)
            return
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
        rt = get_runtime()
        self._show(overview(rt.scheduler, rt.inference.completed, rt.receipts, time.time(), packages=rt.packages, settings=rt.settings))

    def _show(self, o: Overview) -> None:
        """Overview rows as the table cells show them (cells cut long hex with CSS, not here)."""
        self.workers = [
            {"id": w.id, "kind": f"{w.kind} · Cluster {w.cluster[:10]}…" if w.cluster else w.kind, "models": ", ".join(w.models), "load": f"{w.busy}/{w.slots}", "served": str(w.served),
             "reliability": f"{w.reliability:.0%}" + (" quarantined" if w.quarantined else ""), "latency": f"{w.latency_ms:.0f} ms",
             "bond": str(w.bond)}
            for w in o.workers
        ]  # fmt: skip
        self.queue_included, self.queue_dedicated = o.queue_depth["included"], o.queue_depth["dedicated"]
        self.series = [{"t": clock(p.at), "requests_per_min": p.requests_per_min, "p50_ms": p.p50_ms} for p in o.load]
        self.total_receipts = o.total_receipts
        self.receipts = [
            {"seq": str(r["seq"]), "ts": r["ts"], "kind": r["kind"], "lane": r["lane"], "model": r["model"],
             "charge": f"{r['charge']['amount']} {r['charge']['unit']}", "worker": r["worker"]["id"], "hash": r["hash"]}
            for r in o.receipts
        ]  # fmt: skip
        self.epochs = [
            {"epoch": str(e["epoch"]), "receipts": f"{e['first_seq']}..{e['last_seq']}", "root": e["root"], "closed": e["closed_at"],
             "anchor": e["anchor_tx"] or "pending"}
            for e in o.epochs
        ]  # fmt: skip
        self.payouts = [
            {"epoch": str(p["epoch"]), "worker": p["worker"], "to": p["payout_address"], "gross": str(p["gross"]), "tau": str(p["fee"]),
             "withheld": str(p["withheld"]), "net": str(p["net"]), "status": p["status"], "tx": p["tx_hash"] or ""}
            for p in o.payouts
        ]  # fmt: skip
        self.failed_payments = [
            {"kind": f["kind"], "epoch": "" if f["epoch"] is None else str(f["epoch"]), "worker": f["worker"], "to": f["payout_address"],
             "net": str(f["net"]), "status": f["status"], "reason": f["failure"]}
            for f in o.failed_payments
        ]  # fmt: skip
        self.sla = [
            {"package": r.package, "period": clock(r.start) + ("" if r.closed else " (open)"), "jobs": str(r.jobs),
             "failed": str(r.failed),
             "ttft p50": _against(_ms(r.ttft_p50_ms), _ms(_target(r.targets, "ttft_p50_ms"))),
             "ttft p99": _against(_ms(r.ttft_p99_ms), _ms(_target(r.targets, "ttft_p99_ms"))),
             "availability": _against(_pct(r.availability_bps), _pct(_target(r.targets, "availability_bps"))),
             "breached": ", ".join(r.breached) or "none", "credits": f"{r.credits} ({r.credited} micro-USDC)" if r.credits else "0"}
            for r in o.sla
        ]  # fmt: skip


def _target(targets: dict | None, name: str) -> int | None:
    return targets.get(name) if targets else None


def _ms(value: int | None) -> str | None:
    return None if value is None else f"{value} ms"


def _pct(bps: int | None) -> str | None:
    return None if bps is None else f"{bps / 100:.2f}%"


def _against(measured: str | None, target: str | None) -> str:
    """A measured figure beside its target: "412 ms / 500 ms"."""
    return f"{measured or '–'} / {target}" if target else measured or "–"


def _table(rows, columns: list[str], id_: str) -> rx.Component:
    return rx.table.root(
        rx.table.header(rx.table.row(*[rx.table.column_header_cell(c) for c in columns])),
        rx.table.body(rx.foreach(rows, lambda row: rx.table.row(*[rx.table.cell(rx.text(row[c], truncate=True), max_width="12em") for c in columns]))),
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
        rx.heading("SLA per package and period (measured / target)", size="4"),
        rx.cond(
            OperatorState.sla.length() > 0,
            _table(OperatorState.sla, ["package", "period", "jobs", "failed", "ttft p50", "ttft p99", "availability", "breached", "credits"],
                   "sla-table"),  # fmt: skip
            rx.text("No Dedicated jobs in the last periods.", color_scheme="gray", id="sla-table"),
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
    )
