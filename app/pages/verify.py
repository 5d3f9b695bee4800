"""OneVerify in the browser: paste or upload receipts (and optionally the output) -> a verdict per check.

The checks are backend/trust/verify.py, the same code as `one verify`. The optional output arrives with the
submit event and is hashed there, never kept in state. Opened from a receipt badge, assets/web/verify.js puts
the answer the badge carried (sessionStorage, this tab only) into the output field and submits the form."""

from __future__ import annotations

import json

import reflex as rx

from app.layout import page
from backend.runtime import get_runtime
from backend.trust.verify import parse_receipts, verify_with_output

CHECK_NAMES = ("hash", "coordinator_sig", "worker_sig", "coordinator_key", "chain_link", "output")
# the table's columns in words, each with the raw field of `one verify`'s report it shows (its tooltip)
COLUMNS = (
    ("#", "seq"), ("Receipt", "hash"), ("Hash", "checks.hash"), ("Coordinator signature", "checks.coordinator_sig"),
    ("Worker signature", "checks.worker_sig"), ("Coordinator key", "checks.coordinator_key"), ("Chain link", "checks.chain_link"),
    ("Output", "checks.output"), ("Verdict", "ok"), ("Problems", "problems"),
)  # fmt: skip


class VerifyState(rx.State):
    receipts_text: str = ""
    rows: list[dict[str, str]] = []
    summary: str = ""
    ok: bool = False

    @rx.event
    def set_receipts_text(self, value: str):
        self.receipts_text = value

    @rx.event
    def load_from_query(self):
        """/verify?hash=… (the receipt badges link here): fetch that receipt from the log and check it."""

        receipt_hash = self.router.url.query_parameters.get("hash", "")
        if not receipt_hash:
            return
        stored = get_runtime().receipts.get(receipt_hash.lower())
        if stored is None:
            self.rows, self.ok, self.summary = [], False, f"No receipt with hash {receipt_hash} in this coordinator's log."
            return
        self.receipts_text = json.dumps(stored, indent=2)
        self._check(self.receipts_text, "", "")

    @rx.event
    def submit(self, form: dict):
        self._check(self.receipts_text, carried_or_typed(form), str(form.get("coordinator") or "").strip())

    @rx.event
    async def upload(self, files: list[rx.UploadFile]):
        if files:
            self.receipts_text = (await files[0].read()).decode("utf-8", errors="replace")
            self._check(self.receipts_text, "", "")

    def _check(self, text: str, output: str, coordinator: str):
        try:
            receipts = parse_receipts(text)
        except (ValueError, TypeError) as exc:
            self.rows, self.ok, self.summary = [], False, f"Could not read receipts: {exc}"
            return
        if not receipts:
            self.rows, self.ok, self.summary = [], False, "Paste at least one receipt."
            return
        report = verify_with_output(receipts, coordinator or None, output or None)
        rows = [
            {"seq": str(v.seq), "receipt_hash": v.hash, "hash_short": v.hash[:12] + "…", "verdict": "valid" if v.ok else "INVALID",
             "problems": "\n".join(v.problems),
             **{name: ("✓" if v.checks[name] else "✗") if name in v.checks else "–" for name in CHECK_NAMES}}
            for v in report.verdicts
        ]  # fmt: skip
        self.rows, self.ok = rows, report.ok
        self.summary = f"{len(rows)} receipt{'s' if len(rows) != 1 else ''}: " + ("all checks pass" if report.ok else "verification FAILED")


def carried_or_typed(form: dict) -> str:
    """The output to check: the answer a receipt badge carried, exactly (JSON-encoded in a hidden field, since a
    textarea rewrites "\r" and drops NUL, which a model may emit), else what was typed into the output box."""
    carried = form.get("output_json")
    if carried:
        try:
            answer = json.loads(carried)
        except ValueError:
            answer = None
        if isinstance(answer, str):
            return answer
    return str(form.get("output") or "")


def _row(row: dict) -> rx.Component:
    return rx.table.row(
        rx.table.cell(row["seq"]),
        rx.table.cell(rx.text(row["hash_short"], font_family="monospace", white_space="nowrap", custom_attrs={"title": row["receipt_hash"]}),
                      custom_attrs={"data-hash": row["receipt_hash"]}),  # fmt: skip
        *[rx.table.cell(row[name], text_align="center") for name in CHECK_NAMES],
        rx.table.cell(rx.badge(row["verdict"], color_scheme=rx.cond(row["verdict"] == "valid", "green", "red"))),
        # one problem per line, never broken inside one ("hash check failed" stays whole)
        rx.table.cell(rx.text(row["problems"], white_space="pre", class_name="verify-problems"), min_width="11em"),
    )


def verify_page() -> rx.Component:
    return page(
        rx.heading("Verify receipts", size="6"),
        rx.text("Every answer on ONE comes with a receipt signed by the worker and the coordinator and linked to the one before it. "
                "Check them here, or offline with ", rx.code("one verify"), " — the same checks.", color_scheme="gray", id="verify-intro"),  # fmt: skip
        rx.form(
            rx.vstack(
                # read-only until the page is live: text pasted earlier would be wiped when the state arrives
                rx.text_area(value=VerifyState.receipts_text, on_change=VerifyState.set_receipts_text, name="receipts", id="receipts-input",
                             read_only=~VerifyState.is_hydrated,
                             placeholder="Paste a receipt, a list, JSON lines, or a /v1 reply that carries one", rows="10", width="100%"),  # fmt: skip
                rx.text_area(name="output", id="output-input", placeholder="Optional: the answer text (or embedding vectors as JSON) to check against output_digest", rows="3", width="100%"),
                rx.el.input(type="hidden", name="output_json", id="output-json"),  # a badge's answer, exactly (assets/web/verify.js)
                rx.input(name="coordinator", id="coordinator-input", placeholder="Optional: pin the coordinator public key (hex)", width="100%"),
                rx.hstack(
                    rx.button("Verify", type="submit", id="verify-button"),
                    rx.upload(rx.button("Upload receipts file", variant="soft", type="button"), id="receipts-upload", multiple=False,
                              on_drop=VerifyState.upload(rx.upload_files(upload_id="receipts-upload")), border="none", padding="0"),  # fmt: skip
                ),
                width="100%",
            ),
            on_submit=VerifyState.submit,
            reset_on_submit=False,
        ),
        rx.cond(VerifyState.summary != "", rx.callout(VerifyState.summary, id="verify-summary", color_scheme=rx.cond(VerifyState.ok, "green", "red"), margin_y="1em")),
        rx.cond(
            VerifyState.rows.length() > 0,
            rx.box(  # a phone scrolls the table sideways instead of squeezing it
                rx.table.root(
                    rx.table.header(rx.table.row(*[rx.table.column_header_cell(label, custom_attrs={"title": field})
                                                   for label, field in COLUMNS])),  # fmt: skip
                    rx.table.body(rx.foreach(VerifyState.rows, _row)),
                    id="verify-table",
                    width="100%",
                ),
                overflow_x="auto",
                width="100%",
                id="verify-table-scroll",
            ),
        ),
        rx.callout(
            rx.vstack(
                rx.text("Checked here, with nothing but the receipts: signatures, hashes, chain links, and your answer against its digest."),
                rx.text("Needs the model's weights, so it runs on your machine: whether the answer really came from the claimed model. "
                        "The receipt commits to the sampling seed and the answer's token ids (the reply's token_ids); the model "
                        "re-scores those tokens in one pass and must pick (almost) every one itself:"),  # fmt: skip
                rx.code("one verify-audit reply.json --request request.json --model-dir path/to/the/model"),
                rx.text("The network runs the same check on randomly drawn answers; every outcome is public at /one/audits."),
                align="start",
            ),
            id="verify-needs-model",
            color_scheme="gray",
            margin_top="1em",
        ),
    )
