"""The torch CPU engine, checked against transformers on a tiny random Llama (grouped-query attention)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mathagent.engines.base import EngineError, Message, Sampling
from mathagent.engines.families import CHATML

torch = pytest.importorskip("torch", reason="needs PyTorch (pip install -e '.[test]')")
transformers = pytest.importorskip("transformers", reason="needs transformers (pip install -e '.[test]')")

from mathagent.engines.llama_torch import LlamaModel  # noqa: E402
from mathagent.engines.torch_cpu import TorchCPUEngine  # noqa: E402

CHAT = [Message("user", "What is 2+3?")]


@pytest.fixture(scope="module")
def engine(tiny_llama: Path) -> Iterator[TorchCPUEngine]:
    engine = TorchCPUEngine(tiny_llama, CHATML, dtype="float32")
    engine.start()
    yield engine
    asyncio.run(engine.aclose())


@pytest.fixture(scope="module")
def reference(tiny_llama: Path) -> tuple[object, object]:
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_llama)
    return model, tokenizer


def generate(engine: TorchCPUEngine, sampling: Sampling, prompts: list | None = None) -> list:
    return asyncio.run(engine.generate(prompts or [CHAT], sampling))


def test_logits_match_transformers(tiny_llama: Path, reference: tuple) -> None:
    model, _ = reference
    ours = LlamaModel.load(tiny_llama, torch.float32)
    ids = torch.tensor([[5, 17, 42, 99, 3, 250, 7, 8, 120, 64, 33]])
    cache = ours.new_cache(1, 32)
    valid = torch.ones(1, 32, dtype=torch.bool)
    prefill = ours.forward(ids[:, :-1], torch.arange(10)[None], valid, cache)
    step = ours.forward(ids[:, -1:], torch.tensor([[10]]), valid, cache)  # one decoding step from the cache
    with torch.no_grad():
        expected = model(ids).logits[0]
    assert torch.allclose(prefill[0], expected[-2], atol=1e-4)
    assert torch.allclose(step[0], expected[-1], atol=1e-4)


def test_left_padded_rows_decode_as_if_alone(tiny_llama: Path, reference: tuple) -> None:
    model, _ = reference
    ours = LlamaModel.load(tiny_llama, torch.float32)
    short, long = [9, 30, 31], [5, 17, 42, 99, 3, 250]
    tokens = torch.tensor([[0, 0, 0, *short], long])
    valid = torch.ones(2, 16, dtype=torch.bool)
    valid[0, :3] = False
    positions = (valid[:, :6].long().cumsum(1) - 1).clamp(min=0)
    logits = ours.forward(tokens, positions, valid, ours.new_cache(2, 16))
    with torch.no_grad():
        assert torch.allclose(logits[0], model(torch.tensor([short])).logits[0, -1], atol=1e-4)
        assert torch.allclose(logits[1], model(torch.tensor([long])).logits[0, -1], atol=1e-4)
    assert not torch.isnan(logits).any()


def test_greedy_text_and_prompt_match_transformers(engine: TorchCPUEngine, reference: tuple) -> None:
    model, tokenizer = reference
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2+3?"}], tokenize=False, add_generation_prompt=True
    )
    assert engine.render(CHAT) == prompt
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids
    with torch.no_grad():
        out = model.generate(ids, do_sample=False, max_new_tokens=12, eos_token_id=[], pad_token_id=0)
    expected = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
    [[sample]] = generate(engine, Sampling(temperature=0.0, max_tokens=12, logprobs=True))
    if sample.finish_reason == "length":
        assert sample.text == expected
    else:  # the random model wrote an end-of-sequence token: transformers went on past it
        assert expected.startswith(sample.text)
    assert sample.prompt_tokens == ids.shape[1]
    assert sample.mean_logprob is not None and sample.mean_logprob < 0


def test_concurrent_prompts_batch_and_match_sequential(engine: TorchCPUEngine) -> None:
    prompts = [[Message("user", "q" * (i + 1))] for i in range(4)]  # different lengths: left padding
    greedy = Sampling(temperature=0.0, max_tokens=10)
    sequential = [generate(engine, greedy, [p])[0][0].text for p in prompts]

    async def together() -> list[str]:
        results = await asyncio.gather(*(engine.generate([p], greedy) for p in prompts))
        return [r[0][0].text for r in results]

    assert asyncio.run(together()) == sequential


def test_samples_seeds_and_max_tokens(engine: TorchCPUEngine) -> None:
    [samples] = generate(engine, Sampling(n=3, temperature=1.0, max_tokens=8, seed=11))
    assert len(samples) == 3
    assert all(1 <= s.completion_tokens <= 8 and s.finish_reason in ("stop", "length") for s in samples)
    again = [s.text for s in generate(engine, Sampling(n=3, temperature=1.0, max_tokens=8, seed=11))[0]]
    other = [s.text for s in generate(engine, Sampling(n=3, temperature=1.0, max_tokens=8, seed=12))[0]]
    assert [s.text for s in samples] == again
    assert again != other


def test_stop_string_cuts_the_text(engine: TorchCPUEngine) -> None:
    [[full]] = generate(engine, Sampling(temperature=0.0, max_tokens=24, stop_token_ids=()))
    text = full.text
    assert len(text) > 6, text
    stop = text[4:6]
    [[cut]] = generate(engine, Sampling(temperature=0.0, max_tokens=24, stop=(stop,)))
    assert cut.text == text[: text.index(stop)]
    assert cut.finish_reason == "stop"


def test_cancelled_request_stops_and_the_engine_keeps_serving(engine: TorchCPUEngine) -> None:
    async def cancel_then_ask() -> tuple[float, list]:
        long = asyncio.ensure_future(engine.generate([CHAT], Sampling(temperature=1.0, max_tokens=4000, n=2)))
        await asyncio.sleep(0.2)
        long.cancel()
        started = time.monotonic()
        await asyncio.gather(long, return_exceptions=True)
        after = await engine.generate([CHAT], Sampling(temperature=0.0, max_tokens=4))
        return time.monotonic() - started, after

    waited, after = asyncio.run(cancel_then_ask())
    assert after[0][0].completion_tokens >= 1
    assert waited < 5  # 4000 tokens would take far longer: the cancelled rows stopped at the next step


def test_other_architectures_are_refused_with_a_hint(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["Qwen2ForCausalLM"]}))
    with pytest.raises(EngineError) as info:
        TorchCPUEngine(tmp_path).start()
    assert "Llama-architecture" in info.value.message and "--engine vllm" in (info.value.hint or "")
