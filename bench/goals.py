"""The speed goals in one table, from the newest result of each benchmark (the last step of `make bench`).

    .venv/bin/python bench/goals.py

Each row is a figure, the baseline that benchmark measured in the same run, their ratio, and the goal. Nothing is
measured here: each benchmark measures its own baseline beside its figure (see bench/README.md); this only reads
bench/results/ and says which results it read.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).resolve().parent / "results"


def newest(prefix: str) -> tuple[dict[str, Any] | None, str]:
    """The newest `<prefix><utc time>.json` (not a `-before-` run kept for a README's before/after)."""
    found = sorted(p for p in RESULTS.glob(f"{prefix}2*.json"))
    return (json.loads(found[-1].read_text()), found[-1].name) if found else (None, "-")


def _met(ok: bool) -> str:
    return "[green]met[/green]" if ok else "[red]not met[/red]"


def rows() -> list[tuple[str, str, str, str, str, str]]:
    """(goal, figure, baseline, ratio, target, verdict) per measured goal."""
    out = []
    gateway, name = newest("gateway-")
    if gateway:
        r = gateway["results"]
        for mode in ("json", "stream"):
            one, direct, lite = r[f"one/{mode}/c1"], r[f"direct/{mode}/c1"], r[f"litellm/{mode}/c1"]
            added50, added99 = one["p50_ms"] - direct["p50_ms"], one["p99_ms"] - direct["p99_ms"]
            out.append((f"gateway {mode}: added p50, c=1 ({name})", f"{added50:.2f} ms", f"direct p50 {direct['p50_ms']:.2f} ms",
                        f"LiteLLM adds {lite['p50_ms'] - direct['p50_ms']:.2f} ms", "≤ 1 ms", _met(added50 <= 1)))  # fmt: skip
            out.append((f"gateway {mode}: added p99, c=1", f"{added99:.2f} ms", f"direct p99 {direct['p99_ms']:.2f} ms", "", "≤ 3 ms", _met(added99 <= 3)))
            one, direct, lite = r[f"one/{mode}/c32"], r[f"direct/{mode}/c32"], r[f"litellm/{mode}/c32"]
            out.append((f"gateway {mode}: req/s at c=32 vs direct", f"{one['rps']:.0f}", f"direct {direct['rps']:.0f}",
                        f"{one['rps'] / direct['rps']:.2f}x", "≥ 0.5x", _met(one["rps"] >= 0.5 * direct["rps"])))  # fmt: skip
            out.append((f"gateway {mode}: req/s at c=32 vs LiteLLM", f"{one['rps']:.0f}", f"LiteLLM {lite['rps']:.0f}",
                        f"{one['rps'] / lite['rps']:.2f}x", "≥ 5x", _met(one["rps"] >= 5 * lite["rps"])))  # fmt: skip
    relay, name = newest("relay-")
    if relay:
        one, direct = relay["results"]["one"], relay["results"]["direct"]
        per_cpu = one["tokens_per_coordinator_cpu_s"]
        out.append((f"relay: tokens per coordinator CPU-second ({name})", f"{per_cpu:,.0f}", f"direct read {direct['tokens_per_s']:,.0f} tok/s",
                    f"delivered {one['tokens_per_s'] / direct['tokens_per_s']:.2f}x of direct", "≥ 100,000", _met(per_cpu >= 100_000)))  # fmt: skip
    receipts, name = newest("receipts-")
    if receipts:
        for row in receipts["appends"]:
            if row["settle"]:
                continue
            per_s = row["appends_per_s"]
            out.append((f"receipts: sign + append/s, {row['backend']} ({name})", f"{per_s:,.0f}", f"raw sign {receipts['raw_sign_per_s']:,}/s",
                        f"{row['vs_raw_sign']:.2f} of raw sign", f"≥ {receipts['append_target_per_s']:,}", _met(per_s >= receipts["append_target_per_s"])))  # fmt: skip
        v = receipts["verify"]
        out.append(("receipts: one verify/s, one core", f"{v['one_verify_per_s']:,.0f}", f"raw Ed25519 verify {v['raw_verify_per_s']:,.0f}/s",
                    f"{v['vs_raw_verify']:.2f} of raw (2 signatures each: ≤ 0.5)", f"≥ {receipts['verify_target_per_s']:,}",
                    _met(v["one_verify_per_s"] >= receipts["verify_target_per_s"])))  # fmt: skip
    scheduler, name = newest("scheduler-match-")
    if scheduler:
        now, before = scheduler["now"]["steady"], scheduler["before_scan"]["steady"]
        mean, scan = now["match_and_dispatch_us"]["mean"], before["match_and_dispatch_us"]["mean"]
        out.append((f"scheduler: match + dispatch, {now['workers']:,} workers ({name})", f"{mean:.1f} µs", f"scan {scan:,.0f} µs",
                    f"{scan / mean:,.0f}x faster", f"≤ {scheduler['target_us']:.0f} µs", _met(mean <= scheduler["target_us"])))  # fmt: skip
    browser, name = newest("browser-worker-")
    if browser and "goal" in browser:
        g = browser["goal"]
        out.append((f"browser worker: MiniLM sentences/s vs onnxruntime-web ({name})", f"{g['ours_per_s']:.1f}", f"{g['baseline']} {g['baseline_per_s']:.1f}",
                    f"{g['ratio']:.2f}x, cosine ≥ {g['min_cosine']:.4f}", "≥ 1.0x, cosine ≥ 0.999",
                    _met(g["ratio"] >= 1.0 and g["min_cosine"] >= 0.999)))  # fmt: skip
    return out


def main() -> None:
    table = Table(title="Issue 19's speed goals: each figure beside the baseline its benchmark measured in the same run")
    for col in ("goal", "figure", "baseline (same run)", "ratio", "target", ""):
        table.add_column(col)
    got = rows()
    for row in got:
        table.add_row(*row)
    Console(width=200).print(table)
    if not got:
        sys.exit("no results in bench/results/: run the benchmarks first (make bench)")


if __name__ == "__main__":
    main()
