"""bench/scale_sim.py on a tiny network: the simulation accounts for every request, per-replica chains outrun one
chain once arrivals pass one chain's capacity, priority holds under overload, the epoch merge is RFC 9162, and a
seed fixes the outcome. Simulated time only: nothing here depends on how fast this machine is."""

from __future__ import annotations

import importlib.util
import random
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from backend.protocol import merkle

_spec = importlib.util.spec_from_file_location("scale_sim", Path(__file__).resolve().parents[2] / "bench/scale_sim.py")
scale_sim = sys.modules.setdefault("scale_sim", importlib.util.module_from_spec(_spec))  # dataclasses look their module up
_spec.loader.exec_module(scale_sim)

TINY = scale_sim.SimConfig(workers=200, rate=2_000.0, horizon_s=1.0, replicas=4, models=6, queue_timeout_s=0.5, seed=7)


def _accounted(run: dict) -> bool:
    return run["served"] + run["rejected_timeout"] + run["rejected_overload"] == run["arrivals"]


def test_every_request_is_served_or_rejected():
    run = scale_sim.simulate_scheduler(TINY)
    assert run["arrivals"] > 1_500 and _accounted(run)
    assert run["rejected_share"] < 0.01  # within the slots' capacity: nearly everything is served
    assert sum(len(r) for r in run["receipts"]) == run["served"]  # one receipt asked per served request


def test_overload_rejects_included_first_and_dedicated_waits_less():
    slots = scale_sim.simulate_scheduler(TINY)["total_slots"]
    run = scale_sim.simulate_scheduler(replace(TINY, rate=3 * slots / 0.6))  # about 3x what the slots serve
    assert _accounted(run) and run["rejected_timeout"] > 0
    assert run["ttft_dedicated_ms"]["p99"] < run["ttft_included_ms"]["p99"]


def test_a_scan_over_every_worker_saturates_the_matcher_where_the_index_does_not():
    slow = replace(TINY, matching="scan", scan_view="all", scan_s_per_worker=2e-5)  # 4 ms a match, 500 matches/s per replica
    scanned, indexed = scale_sim.simulate_scheduler(slow), scale_sim.simulate_scheduler(TINY)
    assert _accounted(scanned)
    assert scanned["rejected_overload"] > 0 and indexed["rejected_overload"] == 0
    assert max(scanned["per_replica"]["matcher_load"]) > 1 > max(indexed["per_replica"]["matcher_load"])


def test_per_replica_chains_sustain_what_one_chain_cannot():
    per_receipt_s = 1e-3  # one chain: at most 1,000 appends/s
    streams = scale_sim.poisson_streams(4_000, 8, 1.0, random.Random(3))
    one = scale_sim.simulate_log(streams, "one-chain", 1e-3, per_receipt_s, 1.0)
    many = scale_sim.simulate_log(streams, "per-replica", 1e-3, per_receipt_s, 1.0)
    assert one["receipts"] == many["receipts"] == sum(len(s) for s in streams)
    assert one["appends_per_s_sustained"] < 1_000 < 3_500 < many["appends_per_s_sustained"]
    assert one["backlog_at_horizon"] > 1_000 > many["backlog_at_horizon"]
    assert one["append_ms"]["p99"] > 10 * many["append_ms"]["p99"]


def test_below_capacity_one_chain_keeps_up():
    streams = scale_sim.poisson_streams(300, 4, 1.0, random.Random(5))
    one = scale_sim.simulate_log(streams, "one-chain", 0.2e-3, 0.1e-3, 1.0)
    assert one["backlog_at_horizon"] < 10 and one["append_ms"]["p99"] < 5


@pytest.mark.parametrize("size", [1, 2, 3, 7, 8, 100])
def test_the_epoch_root_is_rfc9162(size):
    leaves = [bytes([i]) * 32 for i in range(size)]
    assert scale_sim.merkle_root(leaves) == merkle.root(leaves)


def test_the_epoch_head_covers_every_chain_in_replica_then_seq_order():
    head = scale_sim.epoch_head([3, 0, 2], seed=1)
    assert head["size"] == 5 and [c["chain"] for c in head["chains"]] == [0, 2]
    assert scale_sim.epoch_head([2, 0, 3], seed=1)["root"] != head["root"]


def test_a_seed_fixes_the_outcome():
    first = scale_sim.study(TINY, 1e-3, 0.2e-3, quick=True, epoch=True)
    assert first == scale_sim.study(TINY, 1e-3, 0.2e-3, quick=True, epoch=True)
    assert first["scheduler"]["index"] != scale_sim.study(replace(TINY, seed=8), 1e-3, 0.2e-3, quick=True)["scheduler"]["index"]
