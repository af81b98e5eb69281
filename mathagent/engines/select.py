"""Which engine to use, from settings and the machine; and building it.

`auto`: a `base_url` means an OpenAI-compatible server; a `model` means
in-process vLLM; with neither, a GPU with vLLM gets InternLM2-Math-Plus-7B,
and a CPU gets the embedded demonstration model.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

from mathagent.config import Settings
from mathagent.engines import embedded
from mathagent.engines.base import Engine, EngineError, EngineInfo
from mathagent.engines.families import CHATML, DEFAULT_MODEL, resolve_model
from mathagent.hardware import nvidia_gpus


@dataclass(frozen=True)
class EngineChoice:
    kind: str  # "vllm" | "openai"
    model: str | None  # None with openai: the server's first model
    base_url: str | None
    device: str  # "gpu" | "cpu" | "server"
    embedded: bool
    why: str

    def describe(self) -> str:
        if self.kind == "openai":
            return f"OpenAI-compatible server {self.base_url} (model: {self.model or 'server default'})"
        what = "SmolLM2-135M-Instruct (embedded)" if self.embedded else self.model
        return f"in-process vLLM on the {self.device.upper()}: {what}"


def choose(settings: Settings) -> EngineChoice:
    """Decide without loading anything."""
    kind = settings.engine
    if kind == "openai" or (kind == "auto" and settings.base_url):
        if not settings.base_url:
            raise EngineError(
                "engine `openai` needs a server URL",
                hint="pass --base-url http://HOST:PORT/v1 or set MATHAGENT_BASE_URL",
            )
        return EngineChoice("openai", settings.model, settings.base_url, "server", False, "a server URL is configured")
    device = "gpu" if nvidia_gpus() else "cpu"
    if settings.model:
        return EngineChoice("vllm", resolve_model(settings.model), None, device, False, "a model is configured")
    if device == "gpu":
        return EngineChoice("vllm", DEFAULT_MODEL, None, device, False, "a GPU is present and no model is configured")
    return EngineChoice("vllm", embedded.MODEL_NAME, None, "cpu", True, "no GPU, and no model or server is configured")


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def build(choice: EngineChoice, settings: Settings, say: Callable[[str], None] = lambda _: None) -> Engine:
    """Construct the engine and load its model (the slow part)."""
    if choice.kind == "openai":
        from mathagent.engines.openai import OpenAIConfig, OpenAIEngine

        if choice.base_url is None:
            raise EngineError("engine `openai` needs a server URL", hint="pass --base-url")
        return OpenAIEngine(
            OpenAIConfig(
                base_url=choice.base_url,
                model=choice.model,
                api_key=settings.api_key or "EMPTY",
                timeout_s=settings.engine_timeout_s,
                concurrency=settings.concurrency,
            )
        )
    from mathagent.engines.vllm import INSTALL_HINT, VLLMConfig, VLLMEngine

    if not vllm_available():
        raise EngineError(
            "vLLM is not installed, so no model can run in-process", hint=INSTALL_HINT + "; or use --base-url"
        )
    family = None
    model = choice.model or DEFAULT_MODEL
    if choice.embedded:
        say(embedded.NOTICE)
        model = str(embedded.prepare(settings.cache_dir, say))
        family = CHATML
    config = VLLMConfig(
        model=model,
        tensor_parallel_size=settings.tensor_parallel_size,
        max_model_len=settings.max_model_len or (2048 if choice.device == "cpu" else 4096),
    )
    if choice.device == "cpu":
        config = config.for_cpu()
    engine = VLLMEngine(config, family)
    if choice.embedded:
        engine.info = EngineInfo(kind="vllm", model=embedded.MODEL_NAME, detail=f"embedded, {model}")
    say(f"loading {choice.describe()} (this takes a while)")
    engine.start()
    return engine
