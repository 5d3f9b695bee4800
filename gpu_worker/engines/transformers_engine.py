"""Hugging Face transformers engine for chat and completion: CPU or one GPU, token-by-token streaming.

Choices (`n`, several prompts) run one after another, each streamed. Every token is picked by the ONE
sampler (gpu_worker.sampling: Gumbel-max with the job's sampling seed, temperature and top-p) after our
processor list: JSON constraint, log-probability recorder; so log-probabilities come from the model's
distribution (as OpenAI reports them), top-p never empties a constrained step, and an auditor can
re-score the answer in one pass (`score`).
"""

from __future__ import annotations

import asyncio
import math
import queue
import threading
from functools import partial
from pathlib import Path
from typing import Any, AsyncIterator

from backend.protocol import sampler
from backend.protocol.body import OpenAIBody
from gpu_worker import sampling, structured
from gpu_worker.engines import End, EngineError, Piece, score_job
from gpu_worker.images import load_image

DEFAULT_MAX_TOKENS = 128


class TransformersTextEngine:
    """Chat and completion for causal LMs; also vision when the model has a vision tower (Llava-style)."""

    def __init__(self, model_id: str, path: str | Path, device: str = "cpu"):
        import torch
        from transformers import (
            AutoConfig,
            AutoModelForCausalLM,
            AutoModelForImageTextToText,
            AutoProcessor,
            AutoTokenizer,
            GenerationConfig,
        )

        self.model_id = model_id
        self.device = device
        config = AutoConfig.from_pretrained(path)
        self.processor = None
        if getattr(config, "vision_config", None) is not None:
            self.processor = AutoProcessor.from_pretrained(path)
            self.tokenizer = self.processor.tokenizer
            self.model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32).to(device).eval()
            text_config = config.get_text_config()
        else:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(device).eval()
            text_config = config
        self.tasks = ["chat", "completion", "vision", "score"] if self.processor else ["chat", "completion", "score"]
        self.vocab_size = int(text_config.vocab_size)
        self.max_context = int(getattr(text_config, "max_position_embeddings", 2048))
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos])
        # Only our processors shape the logits (a checkpoint's repetition penalty would change every pick, and its
        # re-scoring would no longer match): greedy over what OneSampler leaves, stopping at EOS.
        self._plain = partial(GenerationConfig, eos_token_id=sorted(self.eos_ids), pad_token_id=self.tokenizer.pad_token_id, do_sample=False)

    # --- prompts ----------------------------------------------------------------------------
    async def _prompts(self, task: str, body: dict[str, Any]) -> list[tuple[list[int], dict[str, Any]]]:
        """Token ids of each prompt, with extra model inputs (pixel values for vision)."""
        if task in ("chat", "vision"):
            try:
                text = self.tokenizer.apply_chat_template(body["messages"], tools=body.get("tools"), add_generation_prompt=True, tokenize=False)
            except Exception as exc:  # a template that cannot render this conversation
                raise EngineError("invalid_request", f"cannot apply the chat template: {exc}") from None
            urls = [part.url for part in OpenAIBody(body).image_parts()]
            if not urls:
                return [(self.tokenizer.encode(text, add_special_tokens=False), {})]
            if self.processor is None:
                raise EngineError("invalid_request", f"{self.model_id} does not take images")
            images = [await load_image(url) for url in urls]
            encoded = self.processor(text=[text], images=images, return_tensors="pt")
            return [(encoded["input_ids"][0].tolist(), {"pixel_values": encoded["pixel_values"]})]
        prompt = body.get("prompt", "")
        prompts = [prompt] if isinstance(prompt, str) else prompt
        if not prompts or not all(isinstance(p, str) for p in prompts):
            raise EngineError("invalid_request", "prompt must be a string or a list of strings")
        return [(self.tokenizer.encode(p, add_special_tokens=False) or [self.tokenizer.pad_token_id], {}) for p in prompts]

    async def generate(self, task: str, body: dict[str, Any], cancel: threading.Event, sampling_seed: str | None = None) -> AsyncIterator[Piece | End]:
        seed = sampling_seed or sampler.seed_for(body)  # (a coordinator that sends none: still reproducible for a client seed)
        prompts = await self._prompts(task, body)
        n = OpenAIBody(body).n
        longest = max(len(ids) for ids, _ in prompts)
        if longest >= self.max_context:
            raise EngineError("context_length_exceeded", f"prompt has {longest} tokens; this model's context is {self.max_context}")
        try:
            schema = structured.constraint_schema(body)
            constraint_for = (
                (lambda: structured.schema_logits_processor(self.tokenizer, self.vocab_size, schema)) if schema else (lambda: None)
            )
            constraint_for()  # fail fast on a schema the grammar compiler refuses
        except structured.RequestError as exc:
            raise EngineError("invalid_request", str(exc)) from None
        top = _top_logprobs(task, body)
        total_in = sum(len(ids) for ids, _ in prompts)
        for p_index, (prompt, extra) in enumerate(prompts):
            for k in range(n):
                index = p_index * n + k
                async for event in self._one_choice(prompt, extra, body, cancel, index, constraint_for(), top, seed):
                    if isinstance(event, End):
                        event.input_tokens = total_in if index == 0 else 0
                    yield event
                if cancel.is_set():
                    return

    # --- one streamed choice -------------------------------------------------------------------
    async def _one_choice(self, prompt, extra, body, cancel, index, constraint, top, seed) -> AsyncIterator[Piece | End]:
        import torch
        from transformers import (
            LogitsProcessor,
            LogitsProcessorList,
            StoppingCriteria,
            StoppingCriteriaList,
        )
        from transformers.generation.streamers import BaseStreamer

        budget = self.max_context - len(prompt)
        max_new = min(OpenAIBody(body).max_tokens(DEFAULT_MAX_TOKENS), budget)
        params = sampling.sampling_params(body, constrained=constraint is not None)
        min_new = min(params["min_tokens"], max_new)
        tokens: queue.Queue = queue.Queue()
        last_logprobs: list[Any] = [None]

        class Recorder(LogitsProcessor):
            """Keeps the step's log-probabilities (raw model output, after the JSON constraint)."""

            def __call__(self, input_ids, scores):
                if top is not None:
                    last_logprobs[0] = torch.log_softmax(scores[0].float(), dim=-1)
                return scores

        class TokenStreamer(BaseStreamer):
            def __init__(self):
                self.prompt_seen = False

            def put(self, value):
                if not self.prompt_seen:
                    self.prompt_seen = True
                    return
                token = int(value.view(-1)[-1])
                tokens.put((token, last_logprobs[0]))

            def end(self):
                tokens.put(None)

        class OneSampler(LogitsProcessor):
            """Picks the step's token with the ONE sampler and leaves it the only choice (greedy then takes it)."""

            def __call__(self, input_ids, scores):
                position = input_ids.shape[1] - len(prompt)
                token = sampling.pick(scores[0], seed, index, position, params["temperature"], params["top_p"])
                forced = torch.full_like(scores, -torch.inf)
                forced[0, token] = 0.0
                return forced

        class Cancelled(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return cancel.is_set()

        # transformers applies min_new_tokens (EOS banned) before these, as the auditor's re-scoring does
        processors = ([constraint] if constraint else []) + [Recorder(), OneSampler()]
        result: dict[str, Any] = {}

        def run() -> None:
            try:
                with torch.no_grad():
                    self.model.generate(
                        input_ids=torch.tensor([prompt], device=self.device),
                        attention_mask=torch.ones(1, len(prompt), dtype=torch.long, device=self.device),
                        **{k: v.to(self.device) for k, v in extra.items()},
                        streamer=TokenStreamer(),
                        logits_processor=LogitsProcessorList(processors),
                        stopping_criteria=StoppingCriteriaList([Cancelled()]),
                        tokenizer=self.tokenizer,
                        generation_config=self._plain(max_new_tokens=max_new, min_new_tokens=min_new,
                                                      stop_strings=structured.stop_strings(body) or None),
                    )
            except Exception as exc:  # surfaced on the async side
                result["error"] = exc
                tokens.put(None)

        thread = threading.Thread(target=run, name=f"generate-{self.model_id}", daemon=True)
        thread.start()
        loop = asyncio.get_running_loop()
        ids: list[int] = []
        sent_text = ""
        pending_logprobs: list[dict[str, Any]] = []
        while True:
            item = await loop.run_in_executor(None, tokens.get)
            if item is None:
                break
            token, logprobs = item
            ids.append(token)
            if token in self.eos_ids:
                continue
            if top is not None and logprobs is not None:
                pending_logprobs.append(self._logprob_entry(token, logprobs, top))
            text = self.tokenizer.decode([t for t in ids if t not in self.eos_ids], skip_special_tokens=True)
            if text.endswith("\ufffd"):
                continue  # half a UTF-8 character: wait for the rest
            if len(text) > len(sent_text) and text.startswith(sent_text):
                yield Piece(text[len(sent_text) :], index, pending_logprobs or None)
                sent_text, pending_logprobs = text, []
        await loop.run_in_executor(None, thread.join)
        if "error" in result:
            raise EngineError("engine_error", f"generation failed: {type(result['error']).__name__}: {result['error']}")
        final = self.tokenizer.decode([t for t in ids if t not in self.eos_ids], skip_special_tokens=True)
        rest = final[len(sent_text) :] if final.startswith(sent_text) else ""  # text held back (a half character at the end)
        if rest or pending_logprobs:
            yield Piece(rest, index, pending_logprobs or None)
        finish = "stop" if ids and ids[-1] in self.eos_ids else "length"
        yield End(finish_reason=finish, input_tokens=0, output_tokens=len(ids), index=index, tokens=ids)

    # --- audits: re-score a claimed answer in one teacher-forced pass ---------------------------
    async def score(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
        """Per-token margins (backend.protocol.sampler) of each claimed choice of a text job under this model:
        `body` = {"task", "request", "sampling_seed", "choices": [{"index", "tokens", "content"}]}. Returns the
        items and the tokens read."""
        job = score_job(body, ("chat", "completion", "vision"))
        prompts = await self._prompts(job.task, job.request)
        n = OpenAIBody(job.request).n
        params = sampling.sampling_params(job.request, constrained=OpenAIBody(job.request).constrained())  # as generate() read it
        items, read = [], 0
        for claimed in job.choices:
            index, tokens = claimed.index, claimed.tokens
            if index >= len(prompts) * n:
                raise EngineError("invalid_request", "each claimed choice needs its index and tokens")
            prompt, extra = prompts[index // n]
            if len(prompt) + len(tokens) > self.max_context or not all(isinstance(t, int) and 0 <= t < self.vocab_size for t in tokens):
                items.append({"index": index, "margins": [sampler.MARGIN_CAP] * len(tokens)})  # not this model's tokens
                continue
            margins = await asyncio.to_thread(self._margins, prompt, extra, tokens, job.sampling_seed, index, params)
            shown = self.tokenizer.decode([t for t in tokens if t not in self.eos_ids], skip_special_tokens=True)
            if claimed.content is not None and not shown.startswith(claimed.content):  # the ids are not the answer that was sent
                margins = [sampler.MARGIN_CAP] * len(margins)
            items.append({"index": index, "margins": [round(m, 6) for m in margins]})
            read += len(prompt) + len(tokens)
        return items, read

    def _margins(self, prompt, extra, tokens, seed, index, params) -> list[float]:
        import torch

        if not tokens:
            return []
        with torch.no_grad():
            logits = self.model(
                input_ids=torch.tensor([prompt + tokens[:-1]], device=self.device), **{k: v.to(self.device) for k, v in extra.items()}
            ).logits[0, len(prompt) - 1 :]
        return sampling.margins(logits.float().cpu(), tokens, seed, index, params["temperature"], params["top_p"],
                                eos_ids=self.eos_ids, min_tokens=params["min_tokens"])  # fmt: skip

    def _logprob_entry(self, token: int, logprobs, top: int) -> dict[str, Any]:
        def entry(tok: int, lp: float) -> dict[str, Any]:
            text = self.tokenizer.decode([tok])
            return {"token": text, "logprob": lp if math.isfinite(lp) else -9999.0, "bytes": token_bytes(self.tokenizer, tok, text)}

        best = logprobs.topk(top) if top else None
        return {
            **entry(token, float(logprobs[token])),
            "top_logprobs": [entry(int(i), float(v)) for v, i in zip(best.values, best.indices)] if best is not None else [],
        }


def token_bytes(tokenizer, token: int, text: str) -> list[int]:
    """The token's own bytes (OpenAI `bytes`): exact for byte-level BPE even when the token is part of a
    multi-byte character (its decoded text is then U+FFFD); audits map these bytes back to the token."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    decoder = {c: b for b, c in bytes_to_unicode().items()}
    piece = tokenizer.convert_ids_to_tokens(token)
    if isinstance(piece, str) and piece and all(c in decoder for c in piece):
        return [decoder[c] for c in piece]
    return list(text.encode("utf-8"))


def _top_logprobs(task: str, body: dict[str, Any]) -> int | None:
    """None when no logprobs were asked for, else how many alternatives per token (0..20)."""
    if task == "completion":
        value = body.get("logprobs")
        return None if value is None else int(value)
    if not body.get("logprobs"):
        return None
    return int(body.get("top_logprobs") or 0)
