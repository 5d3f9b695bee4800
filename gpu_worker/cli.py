"""`one-worker` (also `one worker` where the coordinator's `one` is installed beside it): run a node worker, manage
its bond, build the tiny test models.

The worker distribution declares this app under the `one.commands` entry-point group, where the coordinator's CLI
finds it; the coordinator never imports it."""

from __future__ import annotations

import asyncio
import logging
import re
import signal
from pathlib import Path
from typing import Annotated

import httpx
import typer
import uvloop
from eth_account import Account
from eth_account.messages import encode_defunct
from rich.console import Console

from backend.protocol.claims import bond_claim, bond_consent, unbond_request
from backend.protocol.signing import load_or_create_key, public_hex, sign_hex
from gpu_worker.client import WorkerClient
from gpu_worker.engines.embeddings import minilm_path
from gpu_worker.engines.registry import build_engine, complete_from_catalog, parse_engine_spec
from gpu_worker.settings import worker_settings

console = Console(stderr=True)
DEFAULT_MODELS_DIR = Path(".one/models")


worker_app = typer.Typer(help="Run a node worker (and manage its bond).", invoke_without_command=True, add_completion=False)


@worker_app.callback()
def worker(
    ctx: typer.Context,
    coordinator: Annotated[str, typer.Option(help="Coordinator base URL.", envvar="ONE_COORDINATOR_URL")] = "http://127.0.0.1:3000",
    engine: Annotated[
        list[str] | None,
        typer.Option(
            help="KIND:MODEL_ID[=TARGET], repeatable; KIND is transformers, sentence-transformers, diffusers, openai "
            "(TARGET a base URL) or vllm. Without =TARGET the coordinator's catalog names the repo "
            "(--engine vllm:chat-large). Default: the tiny test models."
        ),
    ] = None,
    models_dir: Annotated[Path, typer.Option(help="Where the tiny test models live (built if absent).")] = DEFAULT_MODELS_DIR,
    key_file: Annotated[Path, typer.Option(help="This worker's Ed25519 key (created on first run).", envvar="ONE_WORKER_KEY")] = Path(
        ".one/worker.key"
    ),
    payout_address: Annotated[str, typer.Option(help="USDC payout address (0x...).", envvar="ONE_PAYOUT_ADDRESS")] = "0x"
    + "0" * 40,
    slots: Annotated[int, typer.Option(min=1, help="Jobs served at once.")] = 1,
    device: Annotated[str, typer.Option(help="torch device: cpu, cuda, cuda:1 ...")] = "cpu",
    cluster: Annotated[
        str | None,
        typer.Option(help="Dedicate this node to a Cluster (its account address): it then runs only that Cluster's jobs. "
                          "The Cluster consents first (`one cluster add-node WORKER_ID`).", envvar="ONE_CLUSTER"),
    ] = None,
    threads: Annotated[
        int, typer.Option(min=0, help="CPU threads for torch (0: torch's default). Use 1 when several workers share a small box.")
    ] = 0,
) -> None:
    """Connect to a coordinator and serve models until Ctrl-C."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"coordinator": coordinator, "key_file": key_file}
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s")
    try:
        worker_settings()  # a malformed ONE_* setting stops the worker now, not at its first job
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if threads:
        import torch  # the ML extra's: only the local engines use it

        torch.set_num_threads(threads)  # oversubscribed cores make every worker on the box crawl
    specs = engine or default_engine_specs(models_dir)
    try:
        parsed = [parse_engine_spec(spec) for spec in specs]
        if any(not spec.target for spec in parsed):
            parsed = complete_from_catalog(parsed, catalog_cards(coordinator))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--engine") from None
    engines = {spec.model_id: build_engine(spec, device=device) for spec in parsed}
    if cluster is not None and not re.fullmatch(r"0x[0-9a-fA-F]{40}", cluster):
        raise typer.BadParameter("a Cluster is named by its account address (0x and 40 hex digits)", param_hint="--cluster")
    client = WorkerClient(coordinator, engines, load_or_create_key(key_file), payout_address, slots=slots,
                          cluster=cluster.lower() if cluster else None)  # fmt: skip
    console.print(f"[bold]ONE worker[/] {client.pubkey} -> {client.url} serving {', '.join(engines)}")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, client.stop)
        await client.run_forever()

    uvloop.run(main())  # libuv's event loop: a relayed token costs the worker less than under asyncio's own loop


@worker_app.command("bond")
def bond(
    ctx: typer.Context,
    tx_hash: Annotated[str, typer.Option(help="Your USDC transfer to the treasury.")],
    payer_key_file: Annotated[Path | None, typer.Option(help="File with the paying wallet's hex private key.")] = None,
    payer_sig: Annotated[str | None, typer.Option(help="The paying wallet's signature of the claim, made elsewhere.")] = None,
    print_claim: Annotated[bool, typer.Option(help="Print the claim text the paying wallet signs (personal_sign).")] = False,
) -> None:
    """Stake USDC: claim a transfer to the treasury as this worker's bond. The wallet that sent it signs the claim
    and is the only place the bond is ever paid back to (checked on chain, once per tx)."""
    if not re.fullmatch(r"0x[0-9a-fA-F]{64}", tx_hash):
        raise typer.BadParameter("a transaction hash is 0x and 64 hex digits", param_hint="--tx-hash")
    key = load_or_create_key(ctx.obj["key_file"])
    worker_id, tx_hash = public_hex(key), tx_hash.lower()
    claim = bond_claim(worker_id, tx_hash)
    if print_claim:
        print(claim)
        return
    if (payer_key_file is None) == (payer_sig is None):
        hint = "give the paying wallet's --payer-key-file or its --payer-sig (see --print-claim)"
        raise typer.BadParameter(hint, param_hint="--payer-key-file")
    if payer_key_file is not None:
        payer_sig = Account.sign_message(encode_defunct(text=claim), payer_key_file.read_text().strip()).signature.hex()
    reply = httpx.post(f"{ctx.obj['coordinator']}/one/bonds", timeout=60,
                       json={"worker_id": worker_id, "tx_hash": tx_hash, "sig": sign_hex(key, bond_consent(tx_hash)), "payer_sig": payer_sig})  # fmt: skip
    body = reply.json()
    if reply.status_code == 202:
        console.print(f"pending: {body['confirmations']} of {body['required']} confirmations; run this again later")
        raise typer.Exit(1)
    if reply.status_code != 200:
        console.print(f"[red]bond refused: {body['error']['message']}")
        raise typer.Exit(1)
    console.print(f"bonded: {body['bond']} micro-USDC staked by worker {body['worker_id'][:16]}…")


@worker_app.command("unbond")
def unbond(ctx: typer.Context) -> None:
    """Ask for this worker's bond back (paid by settlement after the unbonding delay)."""
    key = load_or_create_key(ctx.obj["key_file"])
    worker_id = public_hex(key)
    reply = httpx.post(f"{ctx.obj['coordinator']}/one/bonds/unbond", timeout=60,
                       json={"worker_id": worker_id, "sig": sign_hex(key, unbond_request(worker_id))})  # fmt: skip
    if reply.status_code != 200:
        console.print(f"[red]unbond refused: {reply.json()['error']['message']}")
        raise typer.Exit(1)
    console.print(f"unbonding: the bond is paid back by settlement after {reply.json()['refund_after']:.0f} (unix time)")


@worker_app.command("build-models")
def build_models(
    out: Annotated[Path, typer.Option(help="Folder to write the models into.")] = DEFAULT_MODELS_DIR,
) -> None:
    """Build the tiny test models from configs (offline, about a second; skipped where they exist)."""
    for name, path in _tiny_models().build_all(out).items():
        print(f"{name}: {path}")


def catalog_cards(coordinator: str) -> list[dict]:
    """The coordinator's model cards (GET /one/catalog): where an --engine without TARGET finds its repo."""
    try:
        reply = httpx.get(f"{coordinator.rstrip('/')}/one/catalog", timeout=30)
        reply.raise_for_status()
        models = reply.json()["models"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"cannot read the catalog from {coordinator} to find the model's repo ({exc}); give --engine KIND:MODEL_ID=TARGET") from None
    if not isinstance(models, list) or not all(isinstance(m, dict) for m in models):
        raise ValueError(f"{coordinator}/one/catalog did not list models")
    return models


def default_engine_specs(models_dir: Path) -> list[str]:
    """The tiny test models (built if absent) and the real MiniLM embeddings, with the engine kind of each."""
    tiny = _tiny_models()
    specs = [f"{tiny.ENGINE_KINDS[name]}:{name}={path}" for name, path in tiny.build_all(models_dir).items()]
    return specs + [f"sentence-transformers:all-minilm-l6-v2={minilm_path()}"]


def _tiny_models():
    """gpu_worker.tiny_models, which needs the ML extra (tokenizers, torch): a worker installed without it runs the
    HTTP engines only, so the import waits until the tiny models are asked for."""
    from gpu_worker import tiny_models

    return tiny_models


def main() -> None:
    """The `one-worker` command."""
    worker_app()


if __name__ == "__main__":
    main()
