"""`one agent validate|deploy|run|list|logs|pause|resume`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from backend.agents import tools
from backend.agents.spec import AgentSpecError, parse_agent
from backend.catalog import load_catalog, load_packages
from backend.config import get_settings

agent_app = typer.Typer(help="Agents declared in YAML: validate, deploy, run, list, logs, pause.", no_args_is_help=True, add_completion=False)
console = Console()
Url = Annotated[str, typer.Option(help="Coordinator base URL.", envvar="ONE_COORDINATOR_URL")]
Key = Annotated[str, typer.Option(help="Your ONE API key (SIWE session or Dedicated package).", envvar="ONE_API_KEY")]


def coordinator_call(method: str, url: str, key: str, path: str, **kw) -> dict:
    """One call to the coordinator's API with a bearer key (the `one agent` and `one cluster` commands): its JSON
    body, or the refusal printed (an agent file's problems line by line) and exit 1."""
    reply = httpx.request(method, f"{url}{path}", headers={"authorization": f"Bearer {key}"}, timeout=60, **kw)
    body = reply.json()
    if reply.status_code >= 400:
        for p in body.get("problems", []):
            console.print(f"[red]line {p['line']}: {escape(p['field'] or '(document)')}: {escape(p['message'])}")
        if not body.get("problems"):
            console.print(f"[red]{escape(body['error']['message'])}")
        raise typer.Exit(1)
    return body


def _call(method: str, url: str, key: str, path: str, **kw) -> dict:
    return coordinator_call(method, url, key, f"/one/agents{path}", **kw)


def availability_warnings(model: str, url: str) -> list[str]:
    """What the coordinator's catalog says about a model this catalog knows: a warning when no worker serves it
    right now, or when the check could not be made (the file is valid either way)."""
    try:
        cards = httpx.get(f"{url}/one/catalog", timeout=10).json()["models"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return [f"availability not checked: the coordinator at {url} could not be reached (--url / ONE_COORDINATOR_URL)"]
    card = next((c for c in cards if isinstance(c, dict) and c.get("id") == model), None)
    if card is None:
        return [f"the coordinator at {url} does not list `{model}`: deploy it to a network whose catalog has it"]
    if not card.get("available"):
        return [f"no worker serves `{model}` on {url} right now: the agent deploys, and its runs wait for a worker"]
    return []


@agent_app.command()
def validate(file: Path, url: Url = "http://127.0.0.1:3000") -> None:
    """Check an agent file against the schema, this catalog's models, the tools and the packages, then ask the
    coordinator whether a worker serves its model now (a model the catalog knows but nobody serves is a warning,
    not an error). The network's own limits, such as the shortest schedule, are checked when it is deployed."""

    settings = get_settings()
    tools.load_tool_modules(settings.agent_tool_modules)
    try:
        spec = parse_agent(file.read_text(), models={m.id for m in load_catalog(*settings.catalog_files).models}, tools=tools.REGISTRY,
                           packages={p.id for p in load_packages(settings.packages_path).packages})  # fmt: skip
    except AgentSpecError as exc:
        for p in exc.problems:
            console.print(f"[red]{file}:{p.line}: {p.field or '(document)'}: {p.message}")
        raise typer.Exit(1) from None
    for warning in availability_warnings(spec.model, url.rstrip("/")):
        console.print(f"[yellow]{file}: warning: {warning}")
    console.print(f"[green]{file}: agent `{spec.agent}` is valid")


@agent_app.command()
def deploy(file: Path, url: Url = "http://127.0.0.1:3000", key: Key = "") -> None:
    """Deploy (or update) an agent; prints its webhook secret the first time."""
    body = _call("POST", url, key, "", json={"yaml": file.read_text()})
    console.print(f"deployed `{body['name']}` ({body['status']}), next run at {body['next_run_at']}; its wallet: {body.get('wallet', '')}")
    for warning in body.get("warnings") or []:
        console.print(f"[yellow]warning: {warning}")
    if body.get("webhook_secret"):
        console.print(f"webhook secret (shown once; verify x-one-signature with it): {body['webhook_secret']}")


@agent_app.command("run")
def run_now(name: str, url: Url = "http://127.0.0.1:3000", key: Key = "") -> None:
    """Run an agent now."""
    console.print(f"started run {_call('POST', url, key, f'/{name}/run')['run']}")


@agent_app.command("list")
def list_agents(url: Url = "http://127.0.0.1:3000", key: Key = "") -> None:
    """Your agents, with each one's own wallet (fund it with ETH for gas and the tokens it trades)."""
    table = Table("agent", "status", "lane", "wallet", "next run", "last run", "last status")
    for a in _call("GET", url, key, "")["agents"]:
        last = a["last_run"] or {}
        table.add_row(a["name"], a["status"], a["lane"] + (f"/{a['package']}" if a["package"] else ""), a.get("wallet", ""), str(a["next_run_at"]),
                      last.get("id", ""), last.get("status", ""))  # fmt: skip
    console.print(table)


@agent_app.command()
def logs(name: str, url: Url = "http://127.0.0.1:3000", key: Key = "") -> None:
    """An agent's runs: status, spend, tools called and the receipt trail."""
    for r in _call("GET", url, key, f"/{name}/runs")["runs"]:
        traded = f", traded {r['traded']} micro-USDC" if r.get("traded") else ""
        console.print(f"run {r['id']} ({r['trigger']}): {r['status']}, {r['steps']} steps, spent {r['spent']}{traded}, tools {r['tools']}"
                      + (f", error: {r['error']}" if r["error"] else ""))  # fmt: skip
        for h in r["receipts"]:
            console.print(f"   receipt {h}")


@agent_app.command()
def pause(name: str, url: Url = "http://127.0.0.1:3000", key: Key = "") -> None:
    console.print(f"`{name}` is {_call('POST', url, key, f'/{name}/pause')['status']}")


@agent_app.command()
def resume(name: str, url: Url = "http://127.0.0.1:3000", key: Key = "") -> None:
    console.print(f"`{name}` is {_call('POST', url, key, f'/{name}/resume')['status']}")
