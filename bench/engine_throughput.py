"""Tokens per second of mathagent's vLLM engine against bare `vllm.LLM.generate`.

Both run on the same loaded model, the same prompts and the same sampling
(same seed, so the same tokens), alternating over several rounds; the script
prints the median throughput of each and the ratio. On a CPU it defaults to
the embedded SmolLM2 model; on a GPU pass the model:

    python bench/engine_throughput.py                                   # CPU, embedded model
    python bench/engine_throughput.py --model internlm/internlm2-math-plus-7b --prompts 64 --max-tokens 512
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mathagent.config import load_settings  # noqa: E402
from mathagent.engines import embedded  # noqa: E402
from mathagent.engines.base import Message, Sampling  # noqa: E402
from mathagent.engines.families import CHATML  # noqa: E402
from mathagent.engines.vllm import VLLMConfig, VLLMEngine  # noqa: E402
from mathagent.hardware import nvidia_gpus  # noqa: E402

QUESTIONS = [
    "What is {a} + {b}?",
    "Compute {a} times {b}.",
    "What is the sum of the roots of x^2 - {a}x + {b} = 0?",
    "A train travels {a} km in {b} hours. What is its average speed?",
]


def prompts(count: int) -> list[list[Message]]:
    return [
        [Message("user", QUESTIONS[i % len(QUESTIONS)].format(a=i + 3, b=2 * i + 5) + " Please reason step by step.")]
        for i in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="hub id or folder (default: the embedded model)")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    gpu = bool(nvidia_gpus())
    model = args.model or str(embedded.ensure_model(load_settings().cache_dir, print))
    config = VLLMConfig(model=model, max_model_len=2048)
    engine = VLLMEngine(config if gpu else config.for_cpu(), None if args.model else CHATML)
    engine.start()
    llm = engine.llm
    chats = prompts(args.prompts)
    sampling = Sampling(n=1, temperature=0.8, top_p=0.95, max_tokens=args.max_tokens, seed=1234)
    params = engine.sampling_params(sampling)
    texts = [engine.render(chat) for chat in chats]

    def bare() -> tuple[float, int]:
        start = time.perf_counter()
        outputs = llm.generate(texts, params, use_tqdm=False)
        return time.perf_counter() - start, sum(len(c.token_ids) for o in outputs for c in o.outputs)

    def ours() -> tuple[float, int]:
        async def go() -> list:
            return await engine.generate(chats, sampling)

        start = time.perf_counter()
        results = asyncio.run(go())
        return time.perf_counter() - start, sum(s.completion_tokens for r in results for s in r)

    bare()  # warm-up: first generate pays one-off costs
    rates: dict[str, list[float]] = {"bare LLM.generate": [], "mathagent VLLMEngine": []}
    for r in range(args.rounds):
        for name, run in (("bare LLM.generate", bare), ("mathagent VLLMEngine", ours)):
            seconds, tokens = run()
            rates[name].append(tokens / seconds)
            print(f"round {r + 1} {name}: {tokens} tokens in {seconds:.2f}s", file=sys.stderr)
    med = {k: statistics.median(v) for k, v in rates.items()}
    device = "GPU: " + nvidia_gpus()[0] if gpu else "CPU"
    print(f"{args.prompts} prompts x {args.max_tokens} max tokens, {args.rounds} rounds, {device}, model {model}")
    for name, value in med.items():
        print(f"{name:22} {value:9.1f} tokens/s (median; min {min(rates[name]):.1f}, max {max(rates[name]):.1f})")
    print(f"mathagent / bare: {med['mathagent VLLMEngine'] / med['bare LLM.generate']:.3f}x throughput")
    asyncio.run(engine.aclose())


if __name__ == "__main__":
    main()
