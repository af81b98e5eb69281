"""What overlapping generation with verification buys the agent loop.

A scripted OpenAI-compatible model server answers each request after a fixed
latency L, working on at most 2 requests at once (like a GPU with a fixed
batch); each answer is a proof whose Lean check also takes about L. The loop
solves 20 problems two ways, in one run:

  overlap     as mathagent runs: the model and the Lean pool work at the same time
  serialized  generation and verification never run at the same time (each
              may still use its own parallelism)

and prints the wall times and the speed-up (target >= 1.7x on 2 cores).

    python bench/loop_overlap.py [--problems 20] [--latency 0.4] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from mathagent.agent.budget import Budget  # noqa: E402
from mathagent.agent.loop import Agent  # noqa: E402
from mathagent.agent.records import Problem  # noqa: E402
from mathagent.config import load_settings  # noqa: E402
from mathagent.engines.openai import OpenAIConfig, OpenAIEngine  # noqa: E402
from mathagent.verify.toolchain import find_lean  # noqa: E402
from mathagent.verify.verifier import Verifier, VerifyOptions  # noqa: E402
from scripted_server import Rule, ScriptedServer  # noqa: E402

HEADER = (ROOT / "examples" / "prelude_header.lean").read_text(encoding="utf-8")
# second factor of N.mul hundred b; about 0.3-0.45 s of Lean work each here
FACTORS = ["N.add ten two", "N.add ten (N.s N.z)", "N.add ten (N.s two)", "N.add ten N.z"]


def statement(i: int) -> str:
    b = FACTORS[i % len(FACTORS)]
    return (
        f"set_option maxRecDepth 100000 in\n"
        f"theorem comm_{i} : Eq (N.mul (N.mul ten ten) ({b})) (N.mul ({b}) (N.mul ten ten)) :="
    )


class Phases:
    """Lets many generations or many verifications run, never both kinds at once."""

    def __init__(self) -> None:
        self.kind: str | None = None
        self.active = 0
        self.changed = asyncio.Condition()

    async def run(self, kind: str, work: Any) -> Any:
        async with self.changed:
            await self.changed.wait_for(lambda: self.kind in (None, kind))
            self.kind = kind
            self.active += 1
        try:
            return await work
        finally:
            async with self.changed:
                self.active -= 1
                if self.active == 0:
                    self.kind = None
                self.changed.notify_all()


class SerializedEngine:
    def __init__(self, engine: OpenAIEngine, phases: Phases) -> None:
        self.engine, self.phases, self.info = engine, phases, engine.info

    async def generate(self, prompts: Any, sampling: Any) -> Any:
        return await self.phases.run("generate", self.engine.generate(prompts, sampling))

    async def aclose(self) -> None:
        await self.engine.aclose()


class SerializedVerifier:
    def __init__(self, verifier: Verifier, phases: Phases) -> None:
        self.verifier, self.phases = verifier, phases
        self.options, self.toolchain = verifier.options, verifier.toolchain

    async def verify(self, task: Any) -> Any:
        return await self.phases.run("verify", self.verifier.verify(task))

    async def check_statement(self, *args: Any) -> Any:
        return await self.phases.run("verify", self.verifier.check_statement(*args))


async def solve_all(url: str, toolchain: Any, problems: list[Problem], serialized: bool) -> float:
    engine = OpenAIEngine(OpenAIConfig(base_url=url, model="scripted", concurrency=64))
    options = VerifyOptions(workers=2, timeout_s=60, default_header=HEADER, cache_path=None)
    async with Verifier(toolchain, options) as verifier:
        phases = Phases()
        used_engine: Any = SerializedEngine(engine, phases) if serialized else engine
        used_verifier: Any = SerializedVerifier(verifier, phases) if serialized else verifier
        agent = Agent(used_engine, used_verifier, Budget(rounds=1, samples=1, solve=False))
        start = time.perf_counter()
        results = await asyncio.gather(*(agent.run(p) for p in problems))
        elapsed = time.perf_counter() - start
    await engine.aclose()
    if not all(r.verified for r in results):
        raise SystemExit(
            f"not every problem verified: {[(r.id, r.status, r.error) for r in results if not r.verified]}"
        )
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.4, help="seconds per model request")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    toolchain = find_lean(load_settings(), None)
    problems = [Problem(id=f"p{i}", formal_statement=statement(i), header=HEADER) for i in range(args.problems)]
    # each problem's reply is its own proof; a unique comment keeps proofs distinct
    rules = [
        Rule(rf"theorem comm_{i} :", [f"```lean4\n{statement(i)} Eq.refl _ -- {i}\n```"]) for i in range(args.problems)
    ]
    server = ScriptedServer(rules, latency_s=args.latency, slots=2)
    url = server.start()
    times: dict[str, list[float]] = {"overlap": [], "serialized": []}
    try:
        for r in range(args.rounds):
            for mode in ("serialized", "overlap"):
                times[mode].append(asyncio.run(solve_all(url, toolchain, problems, mode == "serialized")))
                print(f"round {r + 1} {mode}: {times[mode][-1]:.2f}s", file=sys.stderr)
    finally:
        server.stop()
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"{args.problems} problems, model latency {args.latency}s (2 at a time), 2 Lean workers, Lean "
        f"{toolchain.version}"
    )
    for mode, value in med.items():
        print(f"{mode:10} {value:6.2f}s median (min {min(times[mode]):.2f}, max {max(times[mode]):.2f})")
    print(f"speed-up from overlap: {med['serialized'] / med['overlap']:.2f}x")


if __name__ == "__main__":
    main()
