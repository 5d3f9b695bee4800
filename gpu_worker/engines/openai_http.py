"""An engine that drives any OpenAI-compatible HTTP server: `vllm serve`, SGLang, llama.cpp server, Ollama.

The worker keeps its own jobs, receipts and shared layer (stop strings, tool-call parsing, JSON
constraints): this engine only forwards the request (sampling parameters, `tools` so the upstream's
chat template renders them, `response_format` so its guided decoding enforces the schema) and turns
the upstream's stream back into `Piece`/`End` events. vLLM is a separate process with its own CUDA
stack and pins; `VLLMProcess` spawns it and it is never a dependency of this venv.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from typing import Any, AsyncIterator

import httpx

from gpu_worker.engines import Embeddings, End, EngineError, Piece

# Request fields forwarded upstream; everything else (our own extras) stays here.
FORWARDED = (
    "messages", "prompt", "n", "temperature", "top_p", "seed", "stop", "max_tokens", "max_completion_tokens", "logprobs",
    "top_logprobs", "response_format", "tools", "tool_choice", "min_tokens", "input", "encoding_format", "dimensions",
    "presence_penalty", "frequency_penalty",
)  # fmt: skip


class OpenAIHTTPEngine:
    def __init__(
        self,
        model_id: str,
        base_url: str,
        upstream_model: str | None = None,
        tasks: list[str] | None = None,
        max_context: int | None = None,
        api_key: str | None = None,
        timeout_s: float = 600.0,
    ):
        self.model_id = model_id
        self.base_url = base_url.rstrip("/")
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=httpx.Timeout(timeout_s, connect=10.0), limits=httpx.Limits(max_connections=256)
        )
        listed = None if upstream_model and max_context else _list_models(self.base_url, headers)
        if upstream_model is None:
            if not listed:
                raise EngineError("upstream_error", f"{self.base_url}/models lists no model; name one with upstream_model")
            upstream_model = listed[0]["id"]
        self.upstream_model = upstream_model
        if max_context is None:
            card = next((m for m in listed or [] if m.get("id") == upstream_model), {})
            max_context = int(card.get("max_model_len") or card.get("context_length") or 4096)
        self.max_context = max_context
        self.tasks = tasks or ["chat", "completion"]

    def _payload(self, body: dict[str, Any], stream: bool) -> dict[str, Any]:
        payload = {k: body[k] for k in FORWARDED if k in body}
        payload["model"] = self.upstream_model
        if stream:
            payload["stream"] = True
            payload["stream_options"] = {"include_usage": True}
        return payload

    async def generate(self, task: str, body: dict[str, Any], cancel: threading.Event) -> AsyncIterator[Piece | End]:
        """Stream a chat/completion; the request's completion tokens ride on the last End (others say 0)."""
        path = "/completions" if task == "completion" else "/chat/completions"
        finished: dict[int, str] = {}
        usage: dict[str, int] = {}
        async with self._client.stream("POST", path, json=self._payload(body, stream=True)) as response:
            if response.status_code != 200:
                raise _upstream_error(response.status_code, await response.aread())
            async for line in response.aiter_lines():
                if cancel.is_set():
                    return  # leaving the block closes the upstream stream
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    continue  # read to the end so the connection goes back to the pool
                chunk = json.loads(data)
                if chunk.get("error"):
                    raise _upstream_error(502, json.dumps(chunk).encode())
                if chunk.get("usage"):
                    usage = chunk["usage"]
                for choice in chunk.get("choices") or []:
                    index = int(choice.get("index", 0))
                    delta = choice.get("delta") or {}
                    text = choice.get("text") if task == "completion" else delta.get("content")
                    logprobs = (choice.get("logprobs") or {}).get("content") if isinstance(choice.get("logprobs"), dict) else None
                    if text or logprobs:
                        yield Piece(text or "", index, logprobs)
                    if choice.get("finish_reason"):
                        finished[index] = choice["finish_reason"]
        indexes = sorted(finished) or [0]
        for i, index in enumerate(indexes):
            last = i == len(indexes) - 1
            yield End(
                finish_reason=finished.get(index, "stop"),
                input_tokens=int(usage.get("prompt_tokens", 0)) if i == 0 else 0,
                output_tokens=int(usage.get("completion_tokens", 0)) if last else 0,
                index=index,
            )

    async def embed(self, body: dict[str, Any]) -> Embeddings:
        payload = {**self._payload(body, stream=False), "encoding_format": "float"}
        response = await self._client.post("/embeddings", json=payload)
        if response.status_code != 200:
            raise _upstream_error(response.status_code, response.content)
        reply = response.json()
        items = sorted(reply["data"], key=lambda d: d["index"])
        return Embeddings(vectors=[item["embedding"] for item in items], input_tokens=int(reply.get("usage", {}).get("prompt_tokens", 0)))


def _list_models(base_url: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    try:
        response = httpx.get(base_url + "/models", headers=headers, timeout=10)
        response.raise_for_status()
        return response.json().get("data") or []
    except (httpx.HTTPError, ValueError) as exc:
        raise EngineError("upstream_error", f"cannot list models at {base_url}: {exc}") from None


def _upstream_error(status: int, content: bytes) -> EngineError:
    """The upstream's OpenAI error code when it sends one (model_not_found, context_length_exceeded, ...)."""
    try:
        error = json.loads(content).get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    code = error.get("code") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return EngineError(str(code or ("invalid_request" if status == 400 else "upstream_error")), message or f"upstream answered HTTP {status}")


# --- vLLM as a separate process ---------------------------------------------------------------------


def vllm_command(model: str, port: int, served_name: str, max_model_len: int | None = None, dtype: str = "auto", extra: tuple[str, ...] = ()) -> list[str]:
    """The `vllm serve` command line for one model on 127.0.0.1 (tool parsing stays in our shared layer)."""
    exe = shutil.which("vllm")
    if exe is None:
        raise EngineError("engine_unavailable", "the `vllm` executable is not on PATH: install vLLM in its own environment (it needs CUDA)")
    cmd = [exe, "serve", model, "--host", "127.0.0.1", "--port", str(port), "--served-model-name", served_name, "--dtype", dtype]
    if max_model_len:
        cmd += ["--max-model-len", str(max_model_len)]
    return cmd + list(extra)


class VLLMProcess:
    """`with VLLMProcess(model, served_name) as base_url:` starts `vllm serve`, waits for it, stops it."""

    def __init__(self, model: str, served_name: str, max_model_len: int | None = None, start_timeout_s: float = 900, extra: tuple[str, ...] = ()):
        self.port = _free_port()
        self.cmd = vllm_command(model, self.port, served_name, max_model_len, extra=extra)
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> str:
        self.proc = subprocess.Popen(self.cmd, start_new_session=True)
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EngineError("engine_unavailable", f"vllm serve exited with {self.proc.returncode}")
            try:
                if httpx.get(self.base_url + "/models", timeout=2).status_code == 200:
                    return self.base_url
            except httpx.HTTPError:
                pass
            time.sleep(1)
        self.__exit__()
        raise EngineError("engine_unavailable", f"vllm serve did not come up in {self.start_timeout_s}s")

    def __exit__(self, *exc: Any) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
