"""A small model on the CPU in plain PyTorch: the fast-starting engine.

vLLM on a CPU spends about 30 s starting (two processes importing torch,
KV-cache profiling) before a 135M model writes its first token; this engine
is ready in about 2 s and writes SmolLM2's short answers in a few seconds.
vLLM stays the engine for GPUs, bigger models and servers.

Requests wait in a queue; one worker thread takes every waiting request,
decodes them as one left-padded batch, and checks between steps whether a
caller gave up (Ctrl-C cancels the awaiting task): its rows stop at once and
the engine stays ready for the next question.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mathagent.engines.base import Chat, EngineError, EngineInfo, Sample, Sampling
from mathagent.engines.families import Family, family_of
from mathagent.vocabulary import EngineKind

MAX_BATCH = 16  # sequences decoded together; more only costs memory on a CPU
PROMPT_TOKENS_LIMIT = 8192


@dataclass
class _Request:
    prompt: list[int]
    sampling: Sampling
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[list[Sample]]
    stops: tuple[str, ...] = ()  # the family's and the request's stop strings
    cancelled: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Row:
    """One sequence being decoded: a request's sample."""

    request: _Request
    generated: list[int] = field(default_factory=list)
    logprob_sum: float = 0.0
    finish: str | None = None
    text: str = ""
    generator: Any = None


class TorchCPUEngine:
    """`Engine` over `llama_torch.LlamaModel`. Call `start()` before use (about 2 s)."""

    def __init__(self, folder: Path, family: Family | None = None, dtype: str = "float32", threads: int = 0) -> None:
        self.folder = folder
        self.family = family or family_of(str(folder))
        self.dtype_name = dtype
        self.threads = threads
        self.info = EngineInfo(kind=EngineKind.TORCH, model=folder.name, detail="plain PyTorch on the CPU")
        self._model: Any = None
        self._tokenizer: Any = None
        self._template: Any = None
        self._special: dict[str, str] = {}
        self._eos: set[int] = set()
        self._queue: list[_Request] = []
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    # ------------------------------------------------------------ loading

    def start(self) -> None:
        if self._model is not None:
            return
        import torch
        from tokenizers import Tokenizer

        from mathagent.engines.llama_torch import LlamaModel

        if self.threads > 0:
            torch.set_num_threads(self.threads)
        dtype = _pick_dtype(self.dtype_name)
        self._model = LlamaModel.load(self.folder, dtype)
        try:
            self._tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        except Exception as exc:  # noqa: BLE001 - the tokenizers library raises its own exception type
            raise EngineError(f"{self.folder} has no usable tokenizer.json: {exc}") from exc
        self._template = _chat_template(self.folder)
        self._special = {
            k: v
            for k, v in _json(self.folder / "tokenizer_config.json").items()
            if k.endswith("_token") and isinstance(v, str)
        }
        self._eos = _eos_ids(self.folder) | set(self.family.stop_token_ids)
        for text in self.family.stop:
            token = self._tokenizer.token_to_id(text)
            if token is not None:
                self._eos.add(token)
        self.info = EngineInfo(
            kind=EngineKind.TORCH,
            model=self.folder.name,
            detail=f"plain PyTorch on the CPU, {str(dtype).removeprefix('torch.')}",
        )
        self._thread = threading.Thread(target=self._serve, name="torch-cpu-engine", daemon=True)
        self._thread.start()

    def render(self, chat: Chat) -> str:
        """The prompt text: the model's chat template, else the family's format."""
        turns = [m for m in chat if self.family.system_prompt or m.role != "system"]
        if self._template is None:
            return self.family.format(turns)
        return str(
            self._template.render(
                messages=[{"role": m.role, "content": m.content} for m in turns],
                add_generation_prompt=True,
                **self._special,
            )
        )

    # ------------------------------------------------------------ the Engine interface

    async def generate(self, prompts: list[Chat], sampling: Sampling) -> list[list[Sample]]:
        self.start()
        loop = asyncio.get_running_loop()
        stops = (*self.family.stop, *sampling.stop)
        requests = []
        for chat in prompts:
            ids = self._tokenizer.encode(self.render(chat), add_special_tokens=False).ids
            if len(ids) > PROMPT_TOKENS_LIMIT:
                raise EngineError(f"the prompt has {len(ids)} tokens, more than {PROMPT_TOKENS_LIMIT}")
            requests.append(_Request(ids, sampling, loop, loop.create_future(), stops))
        with self._wake:
            self._queue.extend(requests)
            self._wake.notify()
        try:
            return list(await asyncio.gather(*(r.future for r in requests)))
        except asyncio.CancelledError:
            for request in requests:  # the worker drops these rows at its next step
                request.cancelled.set()
            raise

    async def aclose(self) -> None:
        with self._wake:
            self._closed = True
            for request in self._queue:
                request.cancelled.set()
            self._wake.notify()
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.join, 30)
        self._model = None

    # ------------------------------------------------------------ the worker thread

    def _serve(self) -> None:
        while True:
            with self._wake:
                while not self._queue and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                batch: list[_Request] = []
                taken = 0
                while self._queue and (not batch or taken + self._queue[0].sampling.n <= MAX_BATCH):
                    request = self._queue.pop(0)
                    batch.append(request)
                    taken += request.sampling.n
            live = [r for r in batch if not r.cancelled.is_set()]
            try:
                if live:
                    self._decode(live)
            except Exception as exc:  # noqa: BLE001 - handed to every waiting caller
                for request in live:
                    _settle(request, error=EngineError(f"generation failed: {exc}"))

    def _decode(self, requests: list[_Request]) -> None:
        import torch

        rows = [_Row(r, generator=_generator(r.sampling.seed, i)) for r in requests for i in range(r.sampling.n)]
        width = max(len(r.request.prompt) for r in rows)
        budget = max(r.request.sampling.max_tokens for r in rows)
        pad = next(iter(self._eos), 0)
        tokens = torch.tensor([[pad] * (width - len(r.request.prompt)) + r.request.prompt for r in rows])
        valid = torch.zeros(len(rows), width + budget, dtype=torch.bool)
        for i, row in enumerate(rows):
            valid[i, width - len(row.request.prompt) :] = True
        positions = (valid[:, :width].long().cumsum(1) - 1).clamp(min=0)
        lengths = valid[:, :width].sum(1)
        cache = self._model.new_cache(len(rows), width + budget)
        logits = self._model.forward(tokens, positions, valid, cache)
        for step in range(budget):
            for row in rows:
                if row.finish is None and row.request.cancelled.is_set():
                    row.finish = "abort"
            if all(row.finish is not None for row in rows):
                break
            chosen = [pad] * len(rows)  # a finished row is fed padding: its output is settled
            for i, row in enumerate(rows):
                if row.finish is None:
                    chosen[i], logprob = _sample(logits[i], row.request.sampling, row.generator)
                    self._advance(row, chosen[i], logprob, step)
            self._settle_finished(requests, rows)
            if all(row.finish is not None for row in rows):
                break
            feed = torch.tensor(chosen)[:, None]
            logits = self._model.forward(feed, (lengths + step)[:, None], valid, cache)
        for row in rows:
            if row.finish is None:
                row.finish = "length"
        self._settle_finished(requests, rows)

    def _advance(self, row: _Row, token: int, logprob: float, step: int) -> None:
        sampling = row.request.sampling
        if token in self._eos or token in sampling.stop_token_ids:
            row.finish = "stop"
            row.text = self._tokenizer.decode(row.generated, skip_special_tokens=True)
            return
        row.generated.append(token)
        row.logprob_sum += logprob
        stops = row.request.stops
        if stops:
            # only the tail can newly contain a stop string; decode it, not the whole text, each step
            longest = max(len(s) for s in stops)
            tail = self._tokenizer.decode(row.generated[-(longest + 8) :], skip_special_tokens=False)
            if any(s in tail for s in stops):
                text = self._tokenizer.decode(row.generated, skip_special_tokens=False)
                cut = min(i for i in (text.find(s) for s in stops) if i >= 0)
                row.text, row.finish = text[:cut], "stop"
                return
        if step + 1 >= sampling.max_tokens:
            row.finish = "length"
            row.text = self._tokenizer.decode(row.generated, skip_special_tokens=True)

    def _settle_finished(self, requests: list[_Request], rows: list[_Row]) -> None:
        for request in requests:
            mine = [row for row in rows if row.request is request]
            if request.future.done() or any(row.finish is None for row in mine):
                continue
            if request.cancelled.is_set():
                _settle(request, error=asyncio.CancelledError())
                continue
            samples = [
                Sample(
                    text=row.text,
                    finish_reason=row.finish or "length",
                    prompt_tokens=len(request.prompt),
                    completion_tokens=len(row.generated),
                    mean_logprob=(row.logprob_sum / len(row.generated)) if row.generated else None,
                )
                for row in mine
            ]
            _settle(request, result=samples)


def _settle(request: _Request, result: list[Sample] | None = None, error: BaseException | None = None) -> None:
    def deliver() -> None:
        if request.future.done():
            return
        if error is not None:
            request.future.set_exception(error)
        else:
            request.future.set_result(result or [])

    try:
        request.loop.call_soon_threadsafe(deliver)
    except RuntimeError:  # the caller's loop is closed: nobody is waiting
        pass


def _sample(logits: Any, sampling: Sampling, generator: Any) -> tuple[int, float]:
    """A token from one row's logits, and its log-probability under the model."""
    import torch

    logprobs = torch.log_softmax(logits, dim=-1)
    if sampling.temperature <= 0:
        token = int(torch.argmax(logits))
        return token, float(logprobs[token])
    scores = logits / sampling.temperature
    if sampling.top_k > 0:
        kth = torch.topk(scores, min(sampling.top_k, scores.numel())).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    if sampling.top_p < 1.0:
        ordered, order = torch.sort(probs, descending=True)
        outside = ordered.cumsum(0) - ordered > sampling.top_p  # keep the smallest set reaching top_p
        ordered = ordered.masked_fill(outside, 0.0)
        probs = torch.zeros_like(probs).scatter(0, order, ordered)
    token = int(torch.multinomial(probs, 1, generator=generator))
    return token, float(logprobs[token])


def _generator(seed: int | None, index: int) -> Any:
    import torch

    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed * 1000003 + index)  # each sample of a seeded request differs, reproducibly
    return generator


def _pick_dtype(name: str) -> Any:
    """float32 unless asked: bfloat16 decodes about 2-3x faster on CPUs with AVX-512 BF16, but it changes
    the greedy answers of a 135M model (SmolLM2 answers "What is 2+3?" with "2 + 3" in bfloat16, "5" in
    float32, as transformers and vLLM do), and an answer matters more than seconds here."""
    import torch

    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16}[name]
    except KeyError as exc:
        raise EngineError(f"unknown dtype {name!r}: use float32 or bfloat16") from exc


def _chat_template(folder: Path) -> Any:
    """The model's own chat template (jinja, sandboxed as transformers renders it), if it has one."""
    source = None
    if (folder / "chat_template.jinja").is_file():
        source = (folder / "chat_template.jinja").read_text(encoding="utf-8")
    else:
        config = _json(folder / "tokenizer_config.json")
        template = config.get("chat_template")
        source = template if isinstance(template, str) else None
    if source is None:
        return None
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise EngineError(f"the model's chat template refused the prompt: {message}")

    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    environment.globals["raise_exception"] = raise_exception
    return environment.from_string(source)


def _eos_ids(folder: Path) -> set[int]:
    found: set[int] = set()
    for name in ("generation_config.json", "config.json"):
        value = _json(folder / name).get("eos_token_id")
        values: Sequence[Any] = value if isinstance(value, list) else [value]
        found.update(int(v) for v in values if isinstance(v, int))
    return found


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
