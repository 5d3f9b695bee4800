"""An engine that drives any OpenAI-compatible HTTP server: `vllm serve`, SGLang, llama.cpp server, Ollama.

The worker keeps its own jobs, receipts and shared layer (stop strings, tool-call parsing, JSON
constraints): this engine only forwards the request (sampling parameters, `tools` so the upstream's
chat template renders them, `response_format` so its guided decoding enforces the schema) and turns
the upstream's stream back into `Piece`/`End` events. vLLM is a separate process with its own CUDA
stack and pins; `VLLMProcess` spawns it and it is never a dependency of this venv.

Requests go out through aiohttp, not httpx: on the gateway benchmark (bench/gateway.py) httpx's pool bookkeeping,
anyio layers and per-request logging were four fifths of the worker's CPU per request.

With `one_sampler` (a `vllm serve` we started with our logits processor, gpu_worker.engines.vllm_sampler) every
token is the ONE sampler's pick under the job's seed and each choice's token ids come back, so audits can re-score
the answer (`score`). Any other upstream samples its own way: its answers carry no token ids.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import httpx

from backend.protocol import sampler
from backend.protocol.body import OpenAIBody
from gpu_worker import sampling
from gpu_worker.engines import Embeddings, End, EngineError, Piece, score_job

# Request fields forwarded upstream; everything else (our own extras) stays here.
FORWARDED = (
    "messages", "prompt", "n", "temperature", "top_p", "seed", "stop", "max_tokens", "max_completion_tokens", "logprobs",
    "top_logprobs", "response_format", "tools", "tool_choice", "min_tokens", "input", "encoding_format", "dimensions",
    "presence_penalty", "frequency_penalty",
)  # fmt: skip
ONE_SAMPLER = "gpu_worker.engines.vllm_sampler:OneSamplerLogitsProcessor"  # vllm serve --logits-processors
MAX_LINE_BYTES = 64 * 2**20  # one streamed event line from the upstream, at most
SCORE_TOP_K = 20  # prompt logprobs per position an audit reads (vLLM's default --max-logprobs)


@dataclass
class _Streamed:
    """What one upstream stream said besides its text: finish reasons, usage, token ids (per upstream index)."""

    finished: dict[int, str] = field(default_factory=dict)
    usage: dict[str, int] = field(default_factory=dict)
    token_ids: dict[int, list[int]] = field(default_factory=dict)
    cancelled: bool = False


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
        one_sampler: bool = False,
    ):
        self.model_id = model_id
        self.one_sampler = one_sampler  # the upstream is a `vllm serve` running our logits processor (vllm_command)
        self.base_url = base_url.rstrip("/")
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._headers, self._timeout_s = headers, timeout_s
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None  # the loop the session was made in
        self.trace_configs: list[aiohttp.TraceConfig] = []  # request hooks (tests read what is sent upstream)
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
        self.tasks = tasks or (["chat", "completion", "score"] if one_sampler else ["chat", "completion"])

    def _payload(self, body: dict[str, Any], stream: bool) -> dict[str, Any]:
        payload = {k: body[k] for k in FORWARDED if k in body}
        payload["model"] = self.upstream_model
        if stream:
            payload["stream"] = True
            payload["stream_options"] = {"include_usage": True}
        return payload

    async def generate(self, task: str, body: dict[str, Any], cancel: threading.Event, sampling_seed: str | None = None) -> AsyncIterator[Piece | End]:
        """Stream a chat/completion. A generic upstream gets the request as sent and samples its own way (no token ids);
        with `one_sampler` each choice is picked by the ONE sampler under `sampling_seed` (see `_one_sampler_choices`)."""
        if self.one_sampler:
            async for event in self._one_sampler_choices(task, body, cancel, sampling_seed or sampler.new_seed()):
                yield event
            return
        streamed = _Streamed()
        async for piece in self._stream(task, self._payload(body, stream=True), cancel, streamed):
            yield piece
        if streamed.cancelled:
            return
        indexes = sorted(streamed.finished) or [0]
        for i, index in enumerate(indexes):  # the request's completion tokens ride on the last End (others say 0)
            yield End(
                finish_reason=streamed.finished.get(index, "stop"),
                input_tokens=int(streamed.usage.get("prompt_tokens", 0)) if i == 0 else 0,
                output_tokens=int(streamed.usage.get("completion_tokens", 0)) if i == len(indexes) - 1 else 0,
                index=index,
            )

    async def _one_sampler_choices(
        self, task: str, body: dict[str, Any], cancel: threading.Event, seed: str
    ) -> AsyncIterator[Piece | End]:
        """Each choice is its own upstream request with n=1, so the logits processor knows the choice index it draws
        for; `vllm_xargs` carries the seed, index, temperature and top-p (gpu_worker.engines.vllm_sampler). Upstream
        sampling is greedy (temperature 0) over the one token the processor leaves, so nothing of vLLM's own sampling
        can change the pick. Choices run one after another (as the transformers engine runs them)."""
        params = sampling.sampling_params(body)
        base = {**self._payload(body, stream=True), "n": 1, "temperature": 0.0, "top_p": 1.0, "return_token_ids": True}
        base.pop("seed", None)
        if OpenAIBody(body).constrained():
            base.pop("min_tokens", None)  # as the transformers engine: under a JSON constraint the end is the grammar's
        n = OpenAIBody(body).n
        for p, prompt in enumerate(_prompts(task, body)):
            for k in range(n):
                index = p * n + k
                xargs = {
                    "one_seed": seed, "one_choice": index, "one_temperature": params["temperature"], "one_top_p": params["top_p"],
                }  # fmt: skip
                payload = {**base, "vllm_xargs": xargs, **({"prompt": prompt} if task == "completion" else {})}
                streamed = _Streamed()
                async for piece in self._stream(task, payload, cancel, streamed):
                    piece.index = index
                    yield piece
                if streamed.cancelled:
                    return
                out, ids = int(streamed.usage.get("completion_tokens", 0)), streamed.token_ids.get(0)
                yield End(
                    finish_reason=streamed.finished.get(0, "stop"),
                    input_tokens=int(streamed.usage.get("prompt_tokens", 0)) if k == 0 else 0,  # each prompt counted once
                    output_tokens=out,
                    index=index,
                    tokens=ids if ids is not None and len(ids) == out else None,  # ids that miss a token would fail an audit
                )

    async def _stream(
        self, task: str, payload: dict[str, Any], cancel: threading.Event, streamed: _Streamed
    ) -> AsyncIterator[Piece]:
        """One streamed upstream request: Pieces as they come (upstream indexes); the rest lands in `streamed`."""
        path = "/completions" if task == "completion" else "/chat/completions"
        async with self._http().post(self._url(path), json=payload) as response:
            if response.status != 200:
                raise _upstream_error(response.status, await response.read())
            async for line in _lines(response.content):
                if cancel.is_set():
                    streamed.cancelled = True
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
                    streamed.usage = chunk["usage"]
                for choice in chunk.get("choices") or []:
                    index = int(choice.get("index", 0))
                    delta = choice.get("delta") or {}
                    text = choice.get("text") if task == "completion" else delta.get("content")
                    logprobs = (choice.get("logprobs") or {}).get("content") if isinstance(choice.get("logprobs"), dict) else None
                    if isinstance(choice.get("token_ids"), list):  # vLLM's return_token_ids: this chunk's new ids
                        streamed.token_ids.setdefault(index, []).extend(choice["token_ids"])
                    if text or logprobs:
                        yield Piece(text or "", index, logprobs)
                    if choice.get("finish_reason"):
                        streamed.finished[index] = choice["finish_reason"]

    # --- audits: re-score a claimed answer with vLLM's prompt logprobs ------------------------------
    async def score(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
        """Per-token margins of each claimed choice, as TransformersTextEngine.score (same body, same items), read from
        one prefill of prompt + answer tokens: vLLM's `/tokenize` renders the prompt as generation did, `/completions`
        with that token-id prompt returns `prompt_logprobs` (raw model, top SCORE_TOP_K per position plus the claimed
        token). Only the top-k are known, so each margin is a LOWER BOUND of the full-vocabulary margin: the best
        token outside the top-k is never seen, a token is ruled out of the top-p nucleus only when the known mass
        proves it, and positions before `min_tokens` (EOS banned; vLLM does not say which ids are EOS) score 0. An
        honest answer therefore never scores worse than it would with every logit; a dishonest one may score better."""
        if not self.one_sampler:
            raise EngineError("task_not_supported", "only a vllm serve running the ONE sampler scores answers")
        job = score_job(body, ("chat", "completion"))
        task, request, seed = job.task, job.request, job.sampling_seed
        prompts = [await self._tokenize(task, request, prompt) for prompt in _prompts(task, request)]
        n = OpenAIBody(request).n
        params = sampling.sampling_params(request, constrained=OpenAIBody(request).constrained())
        items, read = [], 0
        for claimed in job.choices:
            index, tokens = claimed.index, claimed.tokens
            if index >= len(prompts) * n:
                raise EngineError("invalid_request", "each claimed choice needs its index and tokens")
            prompt = prompts[index // n]
            ids_ok = all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t < 2**31 for t in tokens)
            if len(prompt) + len(tokens) > self.max_context or not ids_ok:
                items.append({"index": index, "margins": [sampler.MARGIN_CAP] * len(tokens)})  # not this model's tokens
                continue
            shown = await self._detokenize(tokens)
            if shown is None or (claimed.content is not None and not _within(claimed.content, shown)):  # not the answer that was sent
                items.append({"index": index, "margins": [sampler.MARGIN_CAP] * len(tokens)})
                continue
            rows = (await self._prompt_logprobs(prompt + tokens))[len(prompt) :] if tokens else []
            temperature, top_p = params["temperature"], params["top_p"]
            margins = [
                0.0 if t < params["min_tokens"] else _topk_margin(rows[t], token, seed, index, t, temperature, top_p)
                for t, token in enumerate(tokens)
            ]
            items.append({"index": index, "margins": [round(m, 6) for m in margins]})
            read += len(prompt) + len(tokens)
        return items, read

    def _http(self) -> aiohttp.ClientSession:
        """The connection pool, made on first use in the running event loop (aiohttp binds a session to its loop)."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session_loop is not loop:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=10.0, sock_read=self._timeout_s)
            connector = aiohttp.TCPConnector(limit=256)
            self._session = aiohttp.ClientSession(headers=self._headers, timeout=timeout, connector=connector, trace_configs=self.trace_configs)
            self._session_loop = loop
        return self._session

    async def _post(self, url: str, payload: dict[str, Any]) -> Any:
        """POST JSON (the upstream model named) and return the reply's JSON; EngineError on any status but 200."""
        status, content = await self._exchange(url, payload)
        if status != 200:
            raise _upstream_error(status, content)
        return json.loads(content)

    async def _exchange(self, url: str, payload: dict[str, Any]) -> tuple[int, bytes]:
        async with self._http().post(self._url(url), json={"model": self.upstream_model, **payload}) as response:
            return response.status, await response.read()

    def _url(self, url: str) -> str:
        return url if url.startswith(("http://", "https://")) else self.base_url + url

    async def _tokenize(self, task: str, request: dict[str, Any], prompt: Any) -> list[int]:
        """The prompt's token ids as vLLM's chat/completions endpoints build them (their defaults for special tokens)."""
        payload: dict[str, Any] = {"prompt": prompt}
        if task == "chat":
            payload = {"messages": request.get("messages"), "add_generation_prompt": True}
            if request.get("tools"):
                payload["tools"] = request["tools"]
        return [int(t) for t in (await self._post(self._root + "/tokenize", payload))["tokens"]]

    async def _detokenize(self, tokens: list[int]) -> str | None:
        """The text of claimed token ids; None when the model refuses them (ids outside its vocabulary)."""
        status, content = await self._exchange(self._root + "/detokenize", {"tokens": tokens})
        if status == 400:
            return None
        if status != 200:
            raise _upstream_error(status, content)
        return str(json.loads(content).get("prompt", ""))

    async def _prompt_logprobs(self, ids: list[int]) -> list[dict[int, float]]:
        """Per position of `ids`: {token id: logprob} for the top SCORE_TOP_K and the token at that position."""
        if len(ids) + 1 > self.max_context:  # vLLM generates at least one token after the prompt
            raise EngineError("context_length_exceeded", "the answer fills the context: no room to re-score it")
        payload = {"prompt": ids, "max_tokens": 1, "temperature": 0.0, "prompt_logprobs": SCORE_TOP_K}
        rows = (await self._post("/completions", payload))["choices"][0].get("prompt_logprobs") or []
        if len(rows) != len(ids):
            raise EngineError("upstream_error", "the upstream returned no prompt logprobs")
        return [{int(k): float(v["logprob"]) for k, v in (row or {}).items()} for row in rows]

    @property
    def _root(self) -> str:
        """The server root: vLLM serves /tokenize and /detokenize beside /v1, not under it."""
        return self.base_url.removesuffix("/v1")

    async def embed(self, body: dict[str, Any]) -> Embeddings:
        payload = {**self._payload(body, stream=False), "encoding_format": "float"}
        reply = await self._post("/embeddings", payload)
        items = sorted(reply["data"], key=lambda d: d["index"])
        return Embeddings(vectors=[item["embedding"] for item in items], input_tokens=int(reply.get("usage", {}).get("prompt_tokens", 0)))


async def _lines(body: aiohttp.StreamReader) -> AsyncIterator[str]:
    """The lines of a streamed reply (\\n or \\r\\n), however long: aiohttp's own line reader refuses lines over its
    buffer size, and one chunk with many logprobs can be longer (up to MAX_LINE_BYTES). Each chunk is appended once and
    searched once, so a long line costs time in proportion to its length. Bytes that are not UTF-8 become U+FFFD, as
    httpx's line reader gave them."""
    pending = bytearray()
    async for chunk in body.iter_any():
        searched = len(pending)
        pending += chunk
        end = pending.rfind(b"\n", searched)
        if end >= 0:
            for line in bytes(pending[:end]).split(b"\n"):
                yield line.rstrip(b"\r").decode(errors="replace")
            del pending[: end + 1]
        if len(pending) > MAX_LINE_BYTES:  # what is left is one unfinished line
            raise EngineError("upstream_error", f"the upstream sent a line over {MAX_LINE_BYTES} bytes")
    if pending:
        yield bytes(pending).rstrip(b"\r").decode(errors="replace")


def _prompts(task: str, body: dict[str, Any]) -> list[Any]:
    """The prompts a request's choices come from: each string of a completion's list prompt, else the one prompt."""
    prompt = body.get("prompt") if task == "completion" else None
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return prompt
    return [prompt]


def _within(content: str, shown: str) -> bool:
    """Whether the sent content reads, in order, within the claimed ids' text. vLLM's /detokenize keeps special tokens
    that its streamed text skipped, so a prefix test (TransformersTextEngine's) could fail an honest answer; this one
    only lets through text the ids spell out with pieces left out."""
    rest = iter(shown)
    return all(c in rest for c in content)


def _topk_margin(row: dict[int, float], token: int, seed: str, choice: int, position: int, temperature: float,
                 top_p: float) -> float:  # fmt: skip
    """A lower bound of the token's margin (backend.protocol.sampler) from the top-k logprobs of one position.

    Logprobs differ from logits by one constant per position, so z = logprob / T + gumbel ranks tokens as the
    sampler does. Candidates are the known tokens no less likely than the claimed one (with top-p, a less likely
    one may be outside the nucleus); the claimed token is out of the nucleus (margin capped) only when the known
    mass above it is at least top_p even against the largest mass the unknown tokens could have."""
    if token not in row:
        raise EngineError("upstream_error", "the upstream's prompt logprobs miss a prompt token")
    order = sorted(row, key=lambda v: (-row[v], v))  # the sampler's order: most likely first, ties lower id first
    above = order[: order.index(token)]
    if top_p < 1.0:
        scale = temperature if temperature > 0 else 1.0
        if scale <= 1.0:  # softmax(logits / scale) from logprobs; the unknown tokens' mass bounded from above
            probs = sorted((math.exp(lp) for lp in row.values()), reverse=True)
            kth = probs[min(SCORE_TOP_K, len(probs)) - 1]
            rest = max(0.0, 1.0 - sum(probs)) * kth ** (1.0 / scale - 1.0)  # sum of p**(1/scale) over unknown p <= kth
            total = sum(p ** (1.0 / scale) for p in probs) + rest
            if above and sum(math.exp(row[v]) ** (1.0 / scale) for v in above) / total >= top_p:
                return sampler.MARGIN_CAP
        candidates = above + [token]
    else:
        candidates = order
    key = sampler.step_key(seed, choice, position)

    def z(v: int) -> float:
        return row[v] / temperature + sampler.gumbel(key, v) if temperature > 0 else row[v]

    return min(max(z(v) for v in candidates) - z(token), sampler.MARGIN_CAP)


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


def vllm_command(model: str, port: int, served_name: str, max_model_len: int | None = None, dtype: str = "auto", extra: tuple[str, ...] = (),
                 one_sampler: bool = True) -> list[str]:  # fmt: skip
    """The `vllm serve` command line for one model on 127.0.0.1 (tool parsing stays in our shared layer), with the
    ONE sampler's logits processor loaded (the engine in front of it then runs with `one_sampler`)."""
    exe = shutil.which("vllm")
    if exe is None:
        raise EngineError("engine_unavailable", "the `vllm` executable is not on PATH: install vLLM in its own environment (it needs CUDA)")
    cmd = [exe, "serve", model, "--host", "127.0.0.1", "--port", str(port), "--served-model-name", served_name, "--dtype", dtype]
    if max_model_len:
        cmd += ["--max-model-len", str(max_model_len)]
    if one_sampler:
        cmd += ["--logits-processors", ONE_SAMPLER]
    return cmd + list(extra)


def _sampler_pythonpath() -> str:
    """A folder holding only what vLLM's own Python needs to import the ONE sampler's processor (gpu_worker, the
    protocol package, rfc8785 which it imports): links, so vLLM's environment gets none of this venv's pins."""
    import rfc8785

    import backend.protocol
    import gpu_worker

    folder = Path(tempfile.mkdtemp(prefix="one-vllm-path-"))
    for module in (gpu_worker, rfc8785):
        (folder / module.__name__).symlink_to(Path(module.__file__).parent, target_is_directory=True)
    package = folder / "backend"  # the protocol package only: none of the coordinator's code
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "protocol").symlink_to(Path(backend.protocol.__file__).parent, target_is_directory=True)
    return str(folder)


class VLLMProcess:
    """`with VLLMProcess(model, served_name) as base_url:` starts `vllm serve`, waits for it, stops it."""

    def __init__(self, model: str, served_name: str, max_model_len: int | None = None, start_timeout_s: float = 900, extra: tuple[str, ...] = ()):
        self.port = _free_port()
        self.cmd = vllm_command(model, self.port, served_name, max_model_len, extra=extra)  # with the ONE sampler
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> str:
        paths = [_sampler_pythonpath(), os.environ.get("PYTHONPATH", "")]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
        self.proc = subprocess.Popen(self.cmd, start_new_session=True, env=env)
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
