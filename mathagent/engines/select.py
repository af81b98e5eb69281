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

from mathagent.config import EngineSettings
from mathagent.engines import embedded, enginelog
from mathagent.engines.base import Engine, EngineError, EngineInfo
from mathagent.engines.families import CHATML, DEFAULT_MODEL, resolve_model
from mathagent.hardware import nvidia_gpus
from mathagent.vocabulary import Device, EngineKind


@dataclass(frozen=True)
class EngineChoice:
    kind: EngineKind  # never AUTO: the engine decided on
    model: str | None  # None with openai: the server's first model
    base_url: str | None
    device: Device
    embedded: bool
    why: str

    def describe(self) -> str:
        if self.kind == EngineKind.OPENAI:
            return f"OpenAI-compatible server {self.base_url} (model: {self.model or 'server default'})"
        what = "SmolLM2-135M-Instruct (embedded)" if self.embedded else self.model
        if self.kind == EngineKind.TORCH:
            return f"PyTorch on the CPU: {what}"
        return f"in-process vLLM on the {self.device.upper()}: {what}"


def choose(engine: EngineSettings) -> EngineChoice:
    """Decide, from the `[engine]` settings, without loading anything."""
    kind = engine.kind
    if kind == EngineKind.OPENAI or (kind == EngineKind.AUTO and engine.base_url):
        if not engine.base_url:
            raise EngineError(
                "engine `openai` needs a server URL",
                hint="pass --base-url http://HOST:PORT/v1 or set MATHAGENT_BASE_URL",
            )
        return EngineChoice(
            EngineKind.OPENAI, engine.model, engine.base_url, Device.SERVER, False, "a server URL is configured"
        )
    if kind == EngineKind.TORCH:
        if engine.model and not Path(engine.model).expanduser().is_dir():
            raise EngineError(
                f"engine `torch` runs a local model folder; {engine.model} is not one",
                hint="pass --model /path/to/folder (config.json, tokenizer.json, *.safetensors), "
                "or --engine vllm for hub models",
            )
        if engine.model:
            return EngineChoice(
                EngineKind.TORCH, engine.model, None, Device.CPU, False, "engine torch with a model folder"
            )
        return EngineChoice(
            EngineKind.TORCH, embedded.MODEL_NAME, None, Device.CPU, True, "engine torch, no model configured"
        )
    device = Device.GPU if nvidia_gpus() else Device.CPU
    if engine.model:
        return EngineChoice(EngineKind.VLLM, resolve_model(engine.model), None, device, False, "a model is configured")
    if device == Device.GPU:
        why = "a GPU is present and no model is configured"
        return EngineChoice(EngineKind.VLLM, DEFAULT_MODEL, None, device, False, why)
    if kind == EngineKind.VLLM:
        why = "engine vllm on a CPU, no model configured"
        return EngineChoice(EngineKind.VLLM, embedded.MODEL_NAME, None, Device.CPU, True, why)
    why = "no GPU, and no model or server is configured"
    return EngineChoice(EngineKind.TORCH, embedded.MODEL_NAME, None, Device.CPU, True, why)


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def build(
    choice: EngineChoice,
    engine: EngineSettings,
    cache_dir: Path,
    say: Callable[[str], None] = lambda _: None,
    *,
    interactive: bool = False,
) -> Engine:
    """Construct the engine and load its model (the slow part); `cache_dir` holds the embedded
    model and the engine log. `interactive`: a chat or one question, where Ctrl-C stops an answer
    and the engine must live on."""
    if choice.kind == EngineKind.OPENAI:
        from mathagent.engines.openai import OpenAIConfig, OpenAIEngine

        if choice.base_url is None:
            raise EngineError("engine `openai` needs a server URL", hint="pass --base-url")
        return OpenAIEngine(
            OpenAIConfig(
                base_url=choice.base_url,
                model=choice.model,
                api_key=engine.api_key or "EMPTY",
                timeout_s=engine.timeout,
                concurrency=engine.concurrency,
            )
        )
    if choice.kind == EngineKind.TORCH:
        return _build_torch(choice, cache_dir, say)
    from mathagent.engines.vllm import INSTALL_HINT, VLLMConfig, VLLMEngine

    if not vllm_available():
        raise EngineError(
            "vLLM is not installed, so no model can run in-process", hint=INSTALL_HINT + "; or use --base-url"
        )
    family = None
    model = choice.model or DEFAULT_MODEL
    if choice.embedded:
        say(embedded.NOTICE)
        model = str(embedded.ensure_model(cache_dir, say))
        family = CHATML
    config = VLLMConfig(
        model=model,
        tensor_parallel_size=engine.tensor_parallel_size,
        max_model_len=engine.max_model_len or (2048 if choice.device == Device.CPU else 4096),
        in_process=interactive,  # a session must survive Ctrl-C; batch runs keep vLLM's processes on a GPU
        log_path=enginelog.log_path(cache_dir),
    )
    if choice.device == Device.CPU:
        config = config.for_cpu()
    vllm = VLLMEngine(config, family)
    if choice.embedded:
        vllm.info = EngineInfo(kind=EngineKind.VLLM, model=embedded.MODEL_NAME, detail=f"embedded, {model}")
    say(f"loading {choice.describe()} (this takes a while)")
    vllm.start()
    return vllm


def torch_available() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("torch", "tokenizers", "safetensors"))


def _build_torch(choice: EngineChoice, cache_dir: Path, say: Callable[[str], None]) -> Engine:
    if not torch_available():
        raise EngineError(
            "the torch engine needs PyTorch and tokenizers", hint="pip install 'mathagent[cpu]'; or use --base-url"
        )
    from mathagent.engines.torch_cpu import TorchCPUEngine

    if choice.embedded:
        say(embedded.NOTICE)
        folder, family = embedded.ensure_model(cache_dir, say), CHATML
    else:
        folder, family = Path(choice.model or "").expanduser(), None
    engine = TorchCPUEngine(folder, family)
    say(f"loading {choice.describe()}")
    engine.start()
    if choice.embedded:
        engine.info = EngineInfo(
            kind=EngineKind.TORCH, model=embedded.MODEL_NAME, detail=f"embedded, {engine.info.detail}"
        )
    return engine
