"""The `one` command: verify receipts, run a node worker, build test models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from backend.agents.cli import agent_app
from gpu_worker.cli import build_models, worker_app

app = typer.Typer(help="ONE network command line.", no_args_is_help=True, add_completion=False)
app.add_typer(worker_app, name="worker")
app.add_typer(agent_app, name="agent")
app.command("build-models")(build_models)
console = Console()


@app.command()
def verify(
    source: Annotated[str, typer.Argument(help="Receipts: a file (JSON, JSON lines) or a URL such as http://host/one/receipts")],
    coordinator: Annotated[str | None, typer.Option(help="Pin the coordinator public key (hex).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdicts as JSON.")] = False,
) -> None:
    """Check receipt hashes, coordinator and worker signatures, and chain links. Exit 1 on any failure."""
    from backend.verify import load_receipts, verify_chain

    try:
        receipts = load_receipts(source)
    except Exception as exc:
        console.print(f"[red]cannot read receipts from {source}: {exc}")
        raise typer.Exit(2) from None
    report = verify_chain(receipts, coordinator)
    if as_json:
        print(json.dumps(report.as_json()))
    else:
        table = Table("seq", "hash", "verdict", "problems")
        for v in report.verdicts:
            table.add_row(str(v.seq), v.hash[:16], "[green]ok" if v.ok else "[red]FAIL", "; ".join(v.problems))
        console.print(table)
        console.print(f"{len(report.verdicts)} receipts: " + ("[green]all verify" if report.ok else "[red]verification FAILED"))
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def settle(
    wait: Annotated[float, typer.Option(help="Seconds to wait for a settlement already running (the coordinator's, or another `one settle`)")] = 600,
) -> None:
    """Close the open settlement epoch, anchor its Merkle root on chain and pay workers (safe to rerun)."""
    from backend.config import get_settings
    from backend.db import migrate
    from backend.settlement import SettlementBusy, failed_payments, payouts, settle as run_settlement
    from backend.signing import load_or_create_key

    settings = get_settings()
    migrate()
    try:
        result = run_settlement(settings, load_or_create_key(settings.data_dir / "coordinator.key"), wait,
                                on_wait=lambda: console.print("another settlement run is in progress; waiting for it to finish…"))  # fmt: skip
    except SettlementBusy as exc:
        console.print(f"[red]{exc}[/red] (waited {wait:g} s)")
        raise typer.Exit(3) from None
    closed = result["closed"]
    console.print(f"closed epoch {closed['epoch']} (receipts {closed['first_seq']}..{closed['last_seq']}, root {closed['root'][:16]}…)" if closed else "no new receipts to close")
    console.print(f"anchored {result['anchored']} epoch root(s); planned {result['planned']} payout(s); paid {result['paid']}, "
                  f"failed {result['failed']}, outcome unknown {result['unsettled']}")  # fmt: skip
    table = Table("epoch", "worker", "payout address", "receipts", "gross", "tau", "withheld", "net (micro-USDC)", "status", "tx")
    for p in payouts(limit=50):
        table.add_row(str(p["epoch"]), p["worker"][:12], p["payout_address"], str(p["receipts"]), str(p["gross"]), str(p["fee"]),
                      str(p["withheld"]), str(p["net"]), p["status"], (p["tx_hash"] or "")[:14])  # fmt: skip
    console.print(table)
    failed = failed_payments()
    if failed:
        problems = Table("kind", "epoch", "worker", "payout address", "net (micro-USDC)", "status", "reason", title="Not paid yet: retried every run")
        for f in failed:
            problems.add_row(f["kind"], "" if f["epoch"] is None else str(f["epoch"]), f["worker"][:12], f["payout_address"], str(f["net"]),
                             f"[red]{f['status']}", escape(f["failure"]))  # fmt: skip
        console.print(problems)


@app.command("verify-audit")
def verify_audit_cmd(
    reply_file: Annotated[Path, typer.Argument(help="The chat completion reply (JSON, with its receipt; asked with logprobs=true)")],
    request_file: Annotated[Path, typer.Option("--request", help="The request body you sent (JSON)")],
    model_dir: Annotated[Path, typer.Option("--model-dir", help="The claimed model's weights (transformers folder)")],
    tolerance: Annotated[float, typer.Option(help="Largest allowed logprob gap per token")] = 1e-3,
) -> None:
    """Audit mode: re-score the answer with the claimed model and compare with the worker's committed logprobs."""
    from backend.verify import audit_logprobs

    reply, body = json.loads(reply_file.read_text()), json.loads(request_file.read_text())
    result = audit_logprobs(model_dir, body, reply["choices"][0], reply.get("receipt"), tolerance)
    for name, ok in result["checks"].items():
        console.print(f"{name:14} " + ("[green]ok" if ok else "[red]FAIL"))
    console.print(f"largest logprob gap: {result['max_gap']}")
    console.print("[green]the answer matches the claimed model" if result["ok"] else "[red]the answer does NOT match the claimed model")
    raise typer.Exit(0 if result["ok"] else 1)


@app.command("verify-proof")
def verify_proof_cmd(
    receipt_hash: Annotated[str, typer.Argument(help="The receipt's hash")],
    url: Annotated[str, typer.Option(help="Coordinator base URL")] = "http://127.0.0.1:3000",
    rpc: Annotated[str | None, typer.Option(help="Chain RPC URL: also check the root anchored on chain")] = None,
    coordinator: Annotated[str | None, typer.Option(help="Pin the coordinator public key (hex).")] = None,
) -> None:
    """Check a receipt's inclusion proof against its epoch head and, with --rpc, the root anchored on chain."""
    import httpx

    from backend.verify import verify_proof

    proof = httpx.get(f"{url}/one/receipts/{receipt_hash}/proof", timeout=30).json()
    if "error" in proof:
        console.print(f"[red]{proof['error']['message']}")
        raise typer.Exit(2)
    anchored = None
    if rpc:
        from backend.chain import anchor_at, connect

        anchored = anchor_at(connect(rpc), proof["anchor"]["address"]).functions.roots(proof["epoch"]).call().hex()
    checks = verify_proof(proof, coordinator, anchored)
    for name, ok in checks.items():
        console.print(f"{name:16} " + ("[green]ok" if ok else "[red]FAIL"))
    console.print(f"receipt in epoch {proof['epoch']} at {proof['leaf_index']} of {proof['tree_size']}: " + ("[green]verified" if all(checks.values()) else "[red]NOT verified"))
    raise typer.Exit(0 if all(checks.values()) else 1)


def main() -> None:
    app()


@app.command()
def up(
    port: Annotated[int, typer.Option(help="Port for the coordinator, API and UI.", envvar="ONE_PORT")] = 3000,
    workers: Annotated[int, typer.Option(min=0, help="Local CPU node workers to start.")] = 1,
    chain_port: Annotated[int, typer.Option(help="Port of the local dev chain (anvil).")] = 8545,
) -> None:
    """Start the whole network locally: coordinator + UI on one port and CPU node workers. Ctrl-C stops all."""
    import signal
    import time

    from backend.config import get_settings
    from backend.devnet import Devnet, wait_for_workers
    from gpu_worker.tiny_models import build_all

    data_dir = get_settings().data_dir.resolve()
    net = Devnet(port=port, data_dir=data_dir, log_dir=data_dir / "logs")
    # Ctrl-C and SIGTERM both stop everything, even when started from a shell that ignored SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with console.status("building tiny models"):
            build_all(data_dir / "models")
        with console.status("starting the dev chain (anvil) and deploying the test tokens"):
            deployment = net.start_chain(chain_port)
        with console.status(f"starting the coordinator on port {port} (first start installs the UI, ~1 min)"):
            net.start_coordinator()
        from backend.chain.devchain import dev_accounts

        for i in range(workers):  # two slots: the demo Starter key reserves one for the Dedicated lane
            payout = dev_accounts(10)[min(5 + i, 9)].address  # dev accounts 5..9 receive the local workers' payouts
            net.start_worker(f"worker-{i}", "--slots", "2", "--payout-address", payout)
        if workers:
            with console.status("waiting for workers to register"):
                wait_for_workers(net.url, workers)
        with console.status("buying the demo Starter package on the dev chain"):
            from backend.chain.devchain import dev_accounts
            from backend.demo import ensure_demo_key

            key_path = data_dir / "demo-key"
            demo_key = ensure_demo_key(net.url, net.chain.web3(), deployment, dev_accounts(3)[2], key_path)
        console.print(f"\n[bold green]ONE is up:[/] {net.url}   (OpenAI base_url: {net.url}/v1)")
        console.print(f"demo Dedicated key (Starter, dev chain): {demo_key}   saved in {key_path}")
        console.print(f"dev chain: {net.chain.rpc_url} (chain id {deployment.chain_id})  $ONE {deployment.one_token}  USDC {deployment.usdc_token}")
        console.print(f"logs: {net.log_dir}   keys and database: {data_dir}   Ctrl-C stops everything")
        while all(p.poll() is None for p in net.processes.values()):
            time.sleep(1)
        console.print("[red]a process exited; stopping. See the logs above.")
    except KeyboardInterrupt:
        console.print("\nstopping…")
    finally:
        net.stop_all()


if __name__ == "__main__":
    main()
