"""The `one` command: run the network, verify receipts and proofs, settle, manage agents; `one worker` where a
worker is installed beside the coordinator.

Commands of other installed distributions join through the `one.commands` entry-point group (the worker
distribution's `worker`), so the coordinator imports no worker code and installs without one. Each command
imports the services it runs inside its own body: `one --help`, `one agent` and `one worker` (which `one up`
starts as `python -m backend.cli worker`) then never load the coordinator's stack (web3, SQLModel, Reflex).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Callable

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from backend.agents.cli import agent_app, coordinator_call

if TYPE_CHECKING:
    from backend.dev.devnet import Devnet

COMMAND_GROUP = "one.commands"

app = typer.Typer(help="ONE network command line.", no_args_is_help=True, add_completion=False)
app.add_typer(agent_app, name="agent")
for _command in entry_points(group=COMMAND_GROUP):  # `one worker`, from the worker distribution when installed
    app.add_typer(_command.load(), name=_command.name)
console = Console()
cluster_app = typer.Typer(help="A Cluster's dedicated nodes and private models (with its package's key).", no_args_is_help=True,
                          add_completion=False)  # fmt: skip
app.add_typer(cluster_app, name="cluster")
ClusterKey = Annotated[str, typer.Option(help="The Cluster package's API key.", envvar="ONE_API_KEY")]
CoordinatorUrl = Annotated[str, typer.Option(help="Coordinator base URL.", envvar="ONE_COORDINATOR_URL")]


def _cluster_call(method: str, url: str, key: str, path: str = "", **kw) -> dict:
    return coordinator_call(method, url, key, f"/one/cluster{path}", **kw)


def _show_cluster(body: dict) -> None:
    console.print(f"Cluster [bold]{body['cluster']}[/] (nodes join with: one worker --cluster {body['cluster']})")
    for node in body["nodes"]:
        console.print(f"  node {node['worker_id']}  {'online' if node['online'] else 'offline'}")
    for model in body["models"]:
        console.print(f"  private model {model['id']}  {model['status']}  {model['billing']} {model['rate']}")


@cluster_app.command("show")
def cluster_show(key: ClusterKey, url: CoordinatorUrl = "http://127.0.0.1:3000") -> None:
    """The Cluster's nodes and private models."""
    _show_cluster(_cluster_call("GET", url, key))


@cluster_app.command("add-node")
def cluster_add_node(worker_id: Annotated[str, typer.Argument(help="The worker's public key (printed when `one worker` starts).")],
                     key: ClusterKey, url: CoordinatorUrl = "http://127.0.0.1:3000") -> None:  # fmt: skip
    """Consent to a worker as one of the Cluster's nodes."""
    _show_cluster(_cluster_call("POST", url, key, "/nodes", json={"worker_id": worker_id}))


@cluster_app.command("remove-node")
def cluster_remove_node(worker_id: str, key: ClusterKey, url: CoordinatorUrl = "http://127.0.0.1:3000") -> None:
    """Withdraw consent: the node is hung up on now and may not join again."""
    _show_cluster(_cluster_call("DELETE", url, key, f"/nodes/{worker_id}"))


@cluster_app.command("add-model")
def cluster_add_model(
    model_id: str, key: ClusterKey, url: CoordinatorUrl = "http://127.0.0.1:3000",
    tasks: Annotated[str, typer.Option(help="Comma-separated: chat,completion,embedding,image,vision.")] = "chat,completion",
    context: Annotated[int, typer.Option(min=1)] = 4096,
    billing: str = "per_1k_output_tokens",
    rate: Annotated[int, typer.Option(min=0, help="Micro-USDC per billing unit, what its nodes earn.")] = 0,
) -> None:  # fmt: skip
    """Register a private model (your fine-tune): only this Cluster's keys may call it, only its nodes serve it."""
    card = _cluster_call("POST", url, key, "/models", json={"id": model_id, "tasks": tasks.split(","), "context": context, "billing": billing, "rate": rate})
    console.print(f"private model {card['id']}: {card['status']}; serve it on a node with --engine KIND:{card['id']}=TARGET")


@app.command()
def verify(
    source: Annotated[str, typer.Argument(help="Receipts: a file (JSON, JSON lines) or a URL such as http://host/one/receipts")],
    coordinator: Annotated[str | None, typer.Option(help="Pin the coordinator public key (hex).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdicts as JSON.")] = False,
) -> None:
    """Check receipt hashes, coordinator and worker signatures, and chain links. Exit 1 on any failure."""
    from backend.trust.verify import load_receipts, verify_chain

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
    from backend.money.settlement import SettlementBusy, failed_payments, payouts
    from backend.money.settlement import settle as run_settlement
    from backend.protocol.signing import load_or_create_key

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
    reply_file: Annotated[Path, typer.Argument(help="The API reply (JSON, with its receipt and token_ids)")],
    request_file: Annotated[Path, typer.Option("--request", help="The request body you sent (JSON)")],
    model_dir: Annotated[Path, typer.Option("--model-dir", help="The claimed model's weights (transformers folder)")],
    tolerance: Annotated[float, typer.Option(help="Largest allowed logprob gap per token (replies asked with logprobs=true)")] = 1e-3,
) -> None:
    """Audit mode: re-score the answer with the claimed model under the sampling seed its receipt commits to (one
    teacher-forced pass, as the network's auditors do), and compare any committed logprobs. Needs the worker
    distribution's local engines (`pip install './worker[ml]'`): the re-scoring runs there (python -m gpu_worker.audit)."""
    from backend.trust.verify import audit_logprobs

    reply, body = json.loads(reply_file.read_text()), json.loads(request_file.read_text())
    results = []
    if reply.get("token_ids") is not None and (reply.get("receipt") or {}).get("sampling_seed"):
        run = subprocess.run([sys.executable, "-m", "gpu_worker.audit", str(reply_file), "--request", str(request_file), "--model-dir", str(model_dir)],
                             capture_output=True, text=True)  # fmt: skip
        if not run.stdout.strip():
            console.print(f"[red]cannot re-score here (install the worker with its local engines): {escape(run.stderr.strip()[-500:])}")
            raise typer.Exit(2)
        rescored = json.loads(run.stdout.strip().splitlines()[-1])
        results.append(rescored)
        if rescored["judgement"]:
            j = rescored["judgement"]
            console.print(f"re-scored {j['tokens']} tokens: {j['misses']} not the model's pick, mean margin {j['mean_margin']} -> {j['verdict']}")
    if any((c.get("logprobs") or {}).get("content") for c in reply.get("choices") or []):
        result = audit_logprobs(model_dir, body, reply["choices"][0], reply.get("receipt"), tolerance)
        console.print(f"largest logprob gap: {result['max_gap']}")
        results.append(result)
    if not results:
        console.print("[red]nothing to audit: the reply has no token_ids with a seeded receipt, and no logprobs")
        raise typer.Exit(2)
    for result in results:
        for name, ok in result["checks"].items():
            console.print(f"{name:16} " + ("[green]ok" if ok else "[red]FAIL"))
    ok = all(r["ok"] for r in results)
    console.print("[green]the answer matches the claimed model" if ok else "[red]the answer does NOT match the claimed model")
    raise typer.Exit(0 if ok else 1)


@app.command("verify-proof")
def verify_proof_cmd(
    receipt_hash: Annotated[str, typer.Argument(help="The receipt's hash")],
    url: Annotated[str, typer.Option(help="Coordinator base URL", envvar="ONE_COORDINATOR_URL")] = "http://127.0.0.1:3000",
    rpc: Annotated[str | None, typer.Option(help="Chain RPC URL: also check the root anchored on chain")] = None,
    coordinator: Annotated[str | None, typer.Option(help="Pin the coordinator public key (hex).")] = None,
) -> None:
    """Check a receipt's inclusion proof against its epoch head and, with --rpc, the root anchored on chain."""
    import httpx

    from backend.trust.verify import verify_proof

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
    from backend.config import get_settings

    # `one worker`, `one agent` and `one verify-proof` talk to the coordinator this machine's settings name (under
    # `make run`: the port in network.env) unless told otherwise.
    os.environ.setdefault("ONE_COORDINATOR_URL", get_settings().local_url)
    app()


@app.command("check-config")
def check_config() -> None:
    """List every setting production mode (ONE_ENV=production) would refuse; exit 1 if there is any."""
    from backend.config import get_settings

    problems = get_settings().production_problems()
    for problem in problems:
        console.print(f"[red]✗[/] {escape(problem)}")
    console.print(f"[red]{len(problems)} problem(s)[/]: production mode refuses to start" if problems else "[green]ready for ONE_ENV=production")
    raise typer.Exit(1 if problems else 0)


def run_until_stopped(net: Devnet, start: Callable[[], None]) -> None:
    """Start the network, then wait until one of its processes exits or we are told to stop: Ctrl-C, SIGTERM and
    SIGHUP (a closed terminal) stop everything; a harder death (SIGKILL) is the watchdog's (backend/dev/devnet.py)."""
    import signal
    import time

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # even when started from a shell that ignored SIGINT
        signal.signal(sig, signal.default_int_handler)
    try:
        start()
        while all(p.poll() is None for p in net.processes.values()):
            time.sleep(1)
        console.print("[red]a process exited; stopping. See the logs above.")
    except KeyboardInterrupt:
        console.print("\nstopping…")
    finally:
        net.stop_all()


@app.command()
def serve() -> None:
    """Start the coordinator + UI alone (production: the chain, treasury and workers are yours). Ctrl-C stops it."""
    from backend.config import UnsafeSettings, get_settings
    from backend.dev.devnet import Devnet

    settings = get_settings()
    try:
        settings.refuse_if_unsafe()
    except UnsafeSettings as exc:
        console.print(f"[red]{escape(str(exc))}")
        raise typer.Exit(1) from None
    data_dir = settings.data_dir.resolve()
    net = Devnet(port=settings.port, data_dir=data_dir, log_dir=data_dir / "logs", host=settings.host)

    def start() -> None:
        with console.status(f"starting the coordinator on {settings.host}:{settings.port}"):
            net.start_coordinator()
        console.print(f"[bold green]ONE coordinator ({settings.env}) is up:[/] {settings.url}   logs: {net.log_dir}")

    run_until_stopped(net, start)


@app.command()
def up(
    port: Annotated[int, typer.Option(help="Port for the coordinator, API and UI.", envvar="ONE_PORT")] = 3000,
    workers: Annotated[int, typer.Option(min=0, help="Local CPU node workers to start.")] = 1,
    chain_port: Annotated[int, typer.Option(help="Port of the local dev chain (anvil).")] = 8545,
) -> None:
    """Start the whole network locally: dev chain, coordinator + UI on one port and CPU node workers. Ctrl-C stops all.

    What it generates (chain, addresses, key files, port) goes to <data dir>/network.env for every other `one` command."""
    from backend.config import Settings
    from backend.dev.devnet import Devnet

    settings = Settings()  # not get_settings(): network.env is what this command writes, never what it reads
    if settings.env == "production":
        console.print("[red]`one up` starts a dev network (anvil and its public keys); in production start the coordinator with `one serve`.")
        raise typer.Exit(2)
    data_dir = settings.data_dir.resolve()
    net = Devnet(port=port, data_dir=data_dir, log_dir=data_dir / "logs", host=settings.host, public_url=settings.public_url)
    run_until_stopped(net, lambda: _start_dev_network(net, workers, chain_port))


@app.command("up-scale")
def up_scale(
    port: Annotated[int, typer.Option(help="Port of the front door (nginx); replicas listen on the ports after it.", envvar="ONE_PORT")] = 3000,
    replicas: Annotated[int, typer.Option(min=1, help="Coordinator replicas behind the front door.")] = 3,
    workers: Annotated[int, typer.Option(min=0, help="Local CPU node workers, each connected straight to a replica in turn.")] = 2,
    chain_port: Annotated[int, typer.Option(help="Port of the local dev chain (anvil).")] = 8545,
    database_url: Annotated[str, typer.Option(help="Postgres the replicas share (the database is created if missing).",
                                              envvar="ONE_DATABASE_URL")] = "postgresql+psycopg://postgres@127.0.0.1:5432/one_scale",
    redis_url: Annotated[str, typer.Option(help="Redis database for the UI state the replicas share.", envvar="ONE_REDIS_URL")] = "redis://127.0.0.1:6379/1",
    broker_url: Annotated[str, typer.Option(help="Redis database for the replicas' broker (Redis Streams).",
                                            envvar="ONE_BROKER_URL")] = "redis://127.0.0.1:6379/2",
) -> None:  # fmt: skip
    """Scale mode locally: `one up` with several coordinator replicas on Postgres and Redis behind nginx. Ctrl-C stops all.

    The front door (nginx, Debian's) on --port is the one URL; each replica also answers on its own port."""
    from backend.config import Settings
    from backend.dev.replicas import ReplicaSet, ServiceUnavailable, ensure_database, require_redis

    settings = Settings()  # as in `one up`: network.env is what this command writes
    if settings.env == "production":
        console.print("[red]`one up-scale` starts a dev network (anvil and its public keys); in production start each replica with `one serve`.")
        raise typer.Exit(2)
    if redis_url == broker_url:
        console.print("[red]the UI state and the broker need Redis databases of their own (--redis-url, --broker-url)")
        raise typer.Exit(2)
    try:
        ensure_database(database_url)
        require_redis(redis_url, "UI state")
        require_redis(broker_url, "broker")
    except ServiceUnavailable as exc:
        console.print(f"[red]{escape(str(exc))}")
        raise typer.Exit(1) from None
    data_dir = settings.data_dir.resolve()
    net = ReplicaSet(data_dir, data_dir / "logs", front_port=port, replica_ports=range(port + 1, port + 1 + replicas),
                     database_url=database_url, redis_url=redis_url, broker_url=broker_url)  # fmt: skip
    run_until_stopped(net, lambda: _start_dev_network(net, workers, chain_port, replicas))


def _start_dev_network(net: Devnet, workers: int, chain_port: int, replicas: int = 0) -> None:
    """What `one up` starts, and `one up-scale` with `replicas` coordinators behind a front door (net: a ReplicaSet)."""
    from collections import Counter

    from backend.chain.devchain import dev_accounts
    from backend.dev.demo import ensure_demo_key
    from backend.dev.devnet import wait_for_workers

    if workers:
        with console.status("building tiny models"):
            net.build_models()
    with console.status("starting the dev chain (anvil) and deploying the test tokens"):
        deployment = net.start_chain(chain_port)
    if replicas:
        with console.status(f"starting {replicas} coordinator replicas and the front door (nginx) on {net.host}:{net.port}"):
            net.start(replicas)
    else:
        with console.status(f"starting the coordinator on {net.host}:{net.port} (first start installs the UI, ~1 min)"):
            net.start_coordinator()
    for i in range(workers):  # two slots: the demo Starter key reserves one for the Dedicated lane
        payout = dev_accounts(10)[min(5 + i, 9)].address  # dev accounts 5..9 receive the local workers' payouts
        where = {"replica": i % replicas + 1} if replicas else {}  # scale mode: workers may join any replica
        net.start_worker(f"worker-{i}", "--slots", "2", "--payout-address", payout, **where)
    if workers:
        with console.status("waiting for workers to register"):
            for url, count in Counter(net.worker_urls.values()).items():  # each where it connected
                wait_for_workers(url, count)
    with console.status("buying the demo Starter package on the dev chain"):
        key_path = net.data_dir / "demo-key"
        demo_key = ensure_demo_key(net.url, net.chain.web3(), deployment, dev_accounts(3)[2], key_path)
    console.print(f"\n[bold green]ONE is up:[/] {net.url}   (OpenAI base_url: {net.url}/v1)")
    for i in range(1, replicas + 1):
        joined = ", ".join(name for name, url in net.worker_urls.items() if url == net.replica_url(i)) or "no local worker"
        console.print(f"  replica r{i}: {net.replica_url(i)}   ({joined}; log {net.log_dir / (net.replica_process(i) + '.log')})")
    if replicas:
        console.print(f"  front door: nginx on {net.url} before them (config {net.data_dir / 'nginx' / 'nginx.conf'})")
    console.print(f"demo Dedicated key (Starter, dev chain): {demo_key}   saved in {key_path}")
    console.print(f"dev chain: {net.chain.rpc_url} (chain id {deployment.chain_id})  $ONE {deployment.one_token}  USDC {deployment.usdc_token}")
    database = net.network_settings.get("ONE_DATABASE_URL")
    console.print(f"logs: {net.log_dir}   keys{'' if database else ' and database'}: {net.data_dir}   settings: {net.data_dir / 'network.env'}"
                  + (f"   database: {database}" if database else ""))  # fmt: skip
    console.print("Ctrl-C stops everything")

if __name__ == "__main__":
    main()
