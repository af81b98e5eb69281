"""Which engine to use, from settings and the machine; and building it.

`auto`: a `base_url` means an OpenAI-compatible server; a `model` means
in-process vLLM; with neither, a GPU gets InternLM2-Math-Plus-7B on vLLM,
and a CPU gets the embedded demonstration model on the torch engine (it
starts in seconds where vLLM on a CPU takes half a minute). `torch` runs the
embedded model or a local Llama-architecture folder in plain PyTorch.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mathagent.config import Settings
from mathagent.engines import embedded, enginelog
from mathagent.engines.base import Engine, EngineError, EngineInfo
from mathagent.engines.families import CHATML, DEFAULT_MODEL, resolve_model
from mathagent.hardware import nvidia_gpus


@dataclass(frozen=True)
class EngineChoice:
    kind: str  # "torch" | "vllm" | "openai"
    model: str | None  # None with openai: the server's first model
    base_url: str | None
    device: str  # "gpu" | "cpu" | "server"
    embedded: bool
    why: str

    def describe(self) -> str:
        if self.kind == "openai":
            return f"OpenAI-compatible server {self.base_url} (model: {self.model or 'server default'})"
        what = "SmolLM2-135M-Instruct (embedded)" if self.embedded else self.model
        if self.kind == "torch":
            return f"PyTorch on the CPU: {what}"
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
    if kind == "torch":
        if settings.model and not Path(settings.model).expanduser().is_dir():
            raise EngineError(
                f"engine `torch` runs a local model folder; {settings.model} is not one",
                hint="pass --model /path/to/folder (config.json, tokenizer.json, *.safetensors), "
                "or --engine vllm for hub models",
            )
        if settings.model:
            return EngineChoice("torch", settings.model, None, "cpu", False, "engine torch with a model folder")
        return EngineChoice("torch", embedded.MODEL_NAME, None, "cpu", True, "engine torch, no model configured")
    device = "gpu" if nvidia_gpus() else "cpu"
    if settings.model:
        return EngineChoice("vllm", resolve_model(settings.model), None, device, False, "a model is configured")
    if device == "gpu":
        return EngineChoice("vllm", DEFAULT_MODEL, None, device, False, "a GPU is present and no model is configured")
    if kind == "vllm":
        return EngineChoice("vllm", embedded.MODEL_NAME, None, "cpu", True, "engine vllm on a CPU, no model configured")
    return EngineChoice("torch", embedded.MODEL_NAME, None, "cpu", True, "no GPU, and no model or server is configured")


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def build(
    choice: EngineChoice, settings: Settings, say: Callable[[str], None] = lambda _: None, *, interactive: bool = False
) -> Engine:
    """Construct the engine and load its model (the slow part). `interactive`: a chat or one
    question, where Ctrl-C stops an answer and the engine must live on."""
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
    if choice.kind == "torch":
        return _build_torch(choice, settings, say)
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
        in_process=interactive,  # a session must survive Ctrl-C; batch runs keep vLLM's processes on a GPU
        log_path=enginelog.log_path(settings.cache_dir),
    )
    if choice.device == "cpu":
        config = config.for_cpu()
    engine = VLLMEngine(config, family)
    if choice.embedded:
        engine.info = EngineInfo(kind="vllm", model=embedded.MODEL_NAME, detail=f"embedded, {model}")
    say(f"loading {choice.describe()} (this takes a while)")
    engine.start()
    return engine


def torch_available() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("torch", "tokenizers", "safetensors"))


def _build_torch(choice: EngineChoice, settings: Settings, say: Callable[[str], None]) -> Engine:
    if not torch_available():
        raise EngineError(
            "the torch engine needs PyTorch and tokenizers", hint="pip install 'mathagent[cpu]'; or use --base-url"
        )
    from mathagent.engines.torch_cpu import TorchCPUEngine

    if choice.embedded:
        say(embedded.NOTICE)
        folder, family = embedded.prepare(settings.cache_dir, say), CHATML
    else:
        folder, family = Path(choice.model or "").expanduser(), None
    engine = TorchCPUEngine(folder, family)
    say(f"loading {choice.describe()}")
    engine.start()
    if choice.embedded:
        engine.info = EngineInfo(kind="torch", model=embedded.MODEL_NAME, detail=f"embedded, {engine.info.detail}")
    return engine
