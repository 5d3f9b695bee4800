"""Production mode's checks, the example production .env, the treasury key file and network.env (one source of
settings for every `one` command beside `make run`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from dotenv import dotenv_values
from eth_account import Account

from backend import config
from backend.config import Settings, UnsafeSettings, network_env_path
from backend.protocol.signing import write_private_file

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "deploy" / "example.env"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    """Only what a test sets: no ONE_ variable of the machine, no .env of the checkout."""
    for name in [n for n in os.environ if n.startswith("ONE_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    config.get_settings.cache_clear()
    yield
    config.get_settings.cache_clear()


def private(path: Path, text: str, mode: int = 0o600) -> Path:
    write_private_file(path, text)
    path.chmod(mode)
    return path


def test_the_example_production_env_passes_every_check(tmp_path):
    """deploy/example.env, with the files it names made in a temp dir (and a treasury address whose key we hold)."""
    values = dotenv_values(EXAMPLE)
    treasury = Account.create()
    moved = {name: str(tmp_path / value.lstrip("/")) for name, value in values.items() if name in ("ONE_DATA_DIR", "ONE_TREASURY_KEY_FILE")}
    private(Path(moved["ONE_TREASURY_KEY_FILE"]), treasury.key.hex() + "\n", 0o400)
    private(Path(moved["ONE_DATA_DIR"]) / "coordinator.key", "00" * 32)
    env_file = tmp_path / "production.env"
    env_file.write_text(EXAMPLE.read_text() + "".join(f"{k}={v}\n" for k, v in {**moved, "ONE_TREASURY_ADDRESS": treasury.address}.items()))
    settings = Settings(_env_file=env_file)
    assert settings.env == "production" and settings.production_problems() == []
    settings.refuse_if_unsafe()
    assert settings.signin_domain == "one.example.org" and settings.url == "https://one.example.org"
    assert settings.treasury_private_key() == treasury.key.hex()


def test_production_names_every_problem_at_once(tmp_path):
    data_dir = tmp_path / "data"
    private(data_dir / "coordinator.key", "00" * 32, 0o644)
    settings = Settings(env="production", data_dir=data_dir, dev_wallets=["0x" + "aa" * 20], treasury_key="0x" + "11" * 32,
                        fetch_allow_networks=["127.0.0.1/32"])  # fmt: skip
    with pytest.raises(UnsafeSettings) as refused:
        settings.refuse_if_unsafe()
    message = str(refused.value)
    for problem in ("ONE_OPEN_ACCESS is on", "ONE_DEV_WALLETS is set", "ONE_FETCH_ALLOW_NETWORKS is set", "ONE_CHAIN_RPC_URL is not set", "ONE_CHAIN_ID is 31337",
                    "ONE_TREASURY_ADDRESS", "ONE_CONFIRMATIONS is 1", "ONE_PUBLIC_URL '' is not an https:// address",
                    "ONE_TREASURY_KEY is set inline", "ONE_TREASURY_KEY_FILE is not set", "the coordinator key", "mode 0644"):  # fmt: skip
        assert problem in message
    Settings(data_dir=data_dir, dev_wallets=["0x" + "aa" * 20]).refuse_if_unsafe()  # dev mode starts on the same settings


@pytest.mark.parametrize(("mode", "content", "problem"), [
    (0o644, "key", "has mode 0644"),
    (0o640, "key", "has mode 0640"),
    (0o600, "wrong key", "does not hold the key of ONE_TREASURY_ADDRESS"),
    (None, "key", "does not exist"),
])  # fmt: skip
def test_the_treasury_key_file_must_be_the_owners_alone(tmp_path, mode, content, problem):
    treasury = Account.create()
    key_file = tmp_path / "treasury.key"
    if mode is not None:
        private(key_file, treasury.key.hex() if content == "key" else Account.create().key.hex(), mode)
    settings = Settings(treasury_key_file=key_file, treasury_address=treasury.address, data_dir=tmp_path)
    [found] = [p for p in settings.production_problems() if "ONE_TREASURY_KEY_FILE" in p]
    assert found.startswith(f"ONE_TREASURY_KEY_FILE {key_file} {problem}")


def test_the_treasury_key_is_read_from_its_file_when_one_is_named(tmp_path):
    key_file = private(tmp_path / "treasury.key", "0xabc\n")
    assert Settings(treasury_key_file=key_file, treasury_key="0xinline").treasury_private_key() == "0xabc"
    assert Settings(treasury_key="0xinline").treasury_private_key() == "0xinline"


def test_the_siwe_domain_comes_from_configuration_only():
    assert Settings(public_url="https://one.example:8443/").signin_domain == "one.example:8443"
    assert Settings(port=8080).signin_domain == "127.0.0.1:8080" and Settings(port=8080).url == "http://127.0.0.1:8080"
    assert Settings(host="0.0.0.0", port=8080).local_url == "http://127.0.0.1:8080"
    assert Settings(public_url="https://one.example", siwe_domain="login.one.example").signin_domain == "login.one.example"


def test_network_env_sits_between_the_environment_and_dotenv(tmp_path, monkeypatch):
    """What `one up` generated beats .env (it describes the running network); a real environment variable beats both."""
    data_dir = tmp_path / "data"
    private(network_env_path(data_dir), "ONE_CHAIN_RPC_URL='http://from-network-env'\nONE_PORT='4000'\nONE_DEV_WALLETS='[\"0xab\"]'\n")
    (tmp_path / ".env").write_text(f"ONE_DATA_DIR={data_dir}\nONE_CHAIN_RPC_URL=http://from-dotenv\nONE_CONFIRMATIONS=7\n")
    monkeypatch.setenv("ONE_PORT", "5000")
    settings = config.get_settings()
    assert (settings.chain_rpc_url, settings.port, settings.confirmations, settings.dev_wallets) == ("http://from-network-env", 5000, 7, ["0xab"])


def test_devnet_writes_its_settings_owner_only(tmp_path):
    from backend.dev.devnet import Devnet

    net = Devnet(port=4321, data_dir=tmp_path, log_dir=tmp_path / "logs", chain_env={"ONE_DEV_WALLETS": '["0xab", "0xcd"]', "ONE_CHAIN_ID": "31337"})
    net.write_network_env()
    path = network_env_path(tmp_path)
    assert path.stat().st_mode & 0o777 == 0o600
    settings = Settings(_env_file=path)
    assert (settings.dev_wallets, settings.port, settings.chain_id) == (["0xab", "0xcd"], 4321, 31337)


def test_get_runtime_refuses_unsafe_production_settings_before_touching_anything(tmp_path, monkeypatch):
    from backend import runtime

    monkeypatch.setenv("ONE_ENV", "production")
    monkeypatch.setenv("ONE_DATA_DIR", str(tmp_path))
    runtime.get_runtime.cache_clear()
    with pytest.raises(UnsafeSettings, match="ONE_OPEN_ACCESS is on"):
        runtime.get_runtime()
    assert not (tmp_path / "one.db").exists() and not (tmp_path / "coordinator.key").exists()


def test_reflex_run_refuses_to_serve_unsafe_production_settings(tmp_path):
    """rxconfig.py stops `reflex run` with the whole list before anything listens."""
    env = {**os.environ, "ONE_ENV": "production", "ONE_DATA_DIR": str(tmp_path), "REFLEX_TELEMETRY_ENABLED": "false"}
    done = subprocess.run([sys.executable, "-m", "reflex", "run", "--env", "prod", "--single-port"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode != 0
    assert "ONE_ENV=production refuses to start" in done.stderr and "ONE_OPEN_ACCESS is on" in done.stderr and "ONE_PUBLIC_URL" in done.stderr
