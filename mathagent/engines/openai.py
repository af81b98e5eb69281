"""Any OpenAI-compatible server: `vllm serve`, `lmdeploy serve api_server`, hosted APIs.

Uses the official `openai` client for timeouts and bounded retries with
backoff (connection errors, 408/409/429/5xx); its errors are translated into
EngineError messages that name the URL and say what to do.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from mathagent.engines.base import Chat, EngineError, EngineInfo, Sample, Sampling
from mathagent.engines.families import Family, family_of
from mathagent.vocabulary import EngineKind

INSTALL_HINT = "pip install openai"


@dataclass(frozen=True)
class OpenAIConfig:
    base_url: str  # e.g. http://127.0.0.1:8000/v1 (vllm serve), http://127.0.0.1:23333/v1 (LMDeploy)
    model: str | None = None  # None: the first model the server lists
    api_key: str = "EMPTY"
    timeout_s: float = 300.0
    max_retries: int = 2
    concurrency: int = 16


class OpenAIEngine:
    """`Engine` over an OpenAI-compatible chat-completions endpoint."""

    def __init__(self, config: OpenAIConfig, family: Family | None = None) -> None:
        self.config = config
        self._family = family
        self._client: Any = None
        self._model: str | None = config.model
        self._slots = asyncio.Semaphore(config.concurrency)
        self.info = EngineInfo(kind=EngineKind.OPENAI, model=config.model or "(server default)", detail=config.base_url)

    def _connect(self) -> Any:
        if self._client is None:
            try:
                import openai
            except ImportError as exc:
                raise EngineError("the openai package is not installed", hint=INSTALL_HINT) from exc
            self._client = openai.AsyncOpenAI(
                base_url=self.config.base_url,
                api_key=self.config.api_key,
                timeout=self.config.timeout_s,
                max_retries=self.config.max_retries,
            )
        return self._client

    async def model(self) -> str:
        """The model to ask for: as configured, else the first one the server serves."""
        if self._model is None:
            client = self._connect()
            try:
                listing = await client.models.list()
            except Exception as exc:  # noqa: BLE001 - translated below
                raise self._translate(exc) from exc
            names = [m.id for m in listing.data]
            if not names:
                raise EngineError(f"the server at {self.config.base_url} serves no model")
            self._model = names[0]
            self.info = EngineInfo(kind=EngineKind.OPENAI, model=self._model, detail=self.config.base_url)
        return self._model

    @property
    def family(self) -> Family:
        return self._family or family_of(self._model or "")

    async def generate(self, prompts: list[Chat], sampling: Sampling) -> list[list[Sample]]:
        model = await self.model()
        return list(await asyncio.gather(*(self._one(model, chat, sampling) for chat in prompts)))

    async def _one(self, model: str, chat: Chat, sampling: Sampling) -> list[Sample]:
        client = self._connect()
        family = self.family
        messages = [{"role": m.role, "content": m.content} for m in chat if family.system_prompt or m.role != "system"]
        extra: dict[str, Any] = {}
        stop_ids = list(dict.fromkeys([*family.stop_token_ids, *sampling.stop_token_ids]))
        if stop_ids:
            extra["stop_token_ids"] = stop_ids
        if sampling.top_k > 0:
            extra["top_k"] = sampling.top_k
        kwargs: dict[str, Any] = dict(
            model=model,
            messages=messages,
            n=sampling.n,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_tokens,
            stop=list(dict.fromkeys([*family.stop, *sampling.stop])) or None,
            logprobs=sampling.logprobs,
            extra_body=extra or None,
        )
        if sampling.seed is not None:
            kwargs["seed"] = sampling.seed
        async with self._slots:
            try:
                response = await client.chat.completions.create(**kwargs)
            except Exception as exc:  # noqa: BLE001 - translated below
                raise self._translate(exc) from exc
        prompt_tokens = response.usage.prompt_tokens if response.usage else 0
        total = response.usage.completion_tokens if response.usage else 0
        samples = []
        for choice in sorted(response.choices, key=lambda c: c.index):
            content = choice.logprobs.content if choice.logprobs and choice.logprobs.content else []
            tokens = len(content) or (total // max(1, len(response.choices)))
            mean = sum(t.logprob for t in content) / len(content) if content else None
            samples.append(
                Sample(
                    text=choice.message.content or "",
                    finish_reason=str(choice.finish_reason or "stop"),
                    prompt_tokens=prompt_tokens,
                    completion_tokens=tokens,
                    mean_logprob=mean,
                )
            )
        return samples

    def _translate(self, exc: Exception) -> EngineError:
        import openai

        url = self.config.base_url
        if isinstance(exc, openai.APITimeoutError):
            return EngineError(
                f"the model server at {url} did not answer within {self.config.timeout_s:g} s",
                hint="raise the timeout (--timeout / engine.timeout) or use a smaller max_tokens",
            )
        if isinstance(exc, openai.APIConnectionError):
            return EngineError(
                f"cannot reach the model server at {url} ({exc.__cause__ or exc})",
                hint="start one, e.g. `vllm serve internlm/internlm2-math-plus-7b --trust-remote-code`, or \
check --base-url",
            )
        if isinstance(exc, openai.NotFoundError):
            return EngineError(
                f"the server at {url} does not serve model {self._model!r}: {exc.message}", hint="check --model"
            )
        if isinstance(exc, openai.AuthenticationError):
            return EngineError(f"the server at {url} refused the API key", hint="set --api-key or MATHAGENT_API_KEY")
        if isinstance(exc, openai.APIStatusError):
            return EngineError(f"the model server at {url} answered {exc.status_code}: {exc.message}")
        return EngineError(f"talking to the model server at {url} failed: {exc}")

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
