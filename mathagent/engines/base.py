"""What every engine speaks: chat prompts in, n samples each out.

An engine is anything with `async generate(prompts, sampling)`; the agent
loop awaits it, so generation can overlap Lean checks. Heavy imports (vLLM,
openai) happen only inside the engine modules that need them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from mathagent.errors import MathAgentError
from mathagent.vocabulary import EngineKind

Role = Literal["system", "user", "assistant"]


class EngineError(MathAgentError):
    """The model could not be loaded or did not answer."""


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


Chat = list[Message]


@dataclass(frozen=True)
class Sampling:
    """How to sample; `n` samples per prompt."""

    n: int = 1
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = -1  # -1: no top-k cut
    max_tokens: int = 1024
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    seed: int | None = None
    logprobs: bool = True


@dataclass(frozen=True)
class Sample:
    """One generated completion."""

    text: str
    finish_reason: str  # "stop", "length", ...
    prompt_tokens: int
    completion_tokens: int
    mean_logprob: float | None = None  # mean log-probability per token; ranks proofs


@dataclass(frozen=True)
class EngineInfo:
    """What an engine is, for people (doctor, --json output)."""

    kind: EngineKind  # never AUTO
    model: str
    detail: str = ""
    extra: dict[str, object] = field(default_factory=dict)


@runtime_checkable
class Engine(Protocol):
    """Batched generation. Implementations: VLLMEngine, OpenAIEngine, TorchCPUEngine."""

    info: EngineInfo

    async def generate(self, prompts: list[Chat], sampling: Sampling) -> list[list[Sample]]:
        """For each prompt, `sampling.n` samples, in order."""
        ...

    async def aclose(self) -> None:
        """Release the model or connections."""
        ...
