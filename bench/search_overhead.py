"""What a tactic step through mathagent's proof session costs, and how fast a search expands.

1. Per tactic: the same chains of tactics applied two ways, interleaved round by round:

     bare      a minimal language-server client written here: `lean --worker` (no sandbox),
               `didChange` with the whole document, `waitForDiagnostics`, `$/lean/plainGoal`
     session   `ProofSession.apply` (sandboxed worker, the same requests, messages parsed,
               the failed-tactic and goal logic)

   and prints the median time per step of each and their ratio (target <= 1.2x).
   Each chain is `intro | hK => ?_` K times on `Eq two two → ... → Eq two two`
   (prelude Lean: no tactic closes a goal, but each of these changes it).

2. Expansions per second: `best_first_search` against a scripted model server
   (tests/scripted_server.py, no latency) proposing four tactics per state, the
   real session and the real verifier, until its expansion budget.

    python bench/search_overhead.py [--steps 12] [--rounds 5] [--expansions 20]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from mathagent.agent.search import SearchBudget, best_first_search  # noqa: E402
from mathagent.config import load_settings  # noqa: E402
from mathagent.engines.openai import OpenAIConfig, OpenAIEngine  # noqa: E402
from mathagent.verify import sandbox  # noqa: E402
from mathagent.verify.session import ProofSession, SessionLimits, tactic_lines  # noqa: E402
from mathagent.verify.toolchain import LeanToolchain, find_lean  # noqa: E402
from mathagent.verify.verifier import Verifier, VerifyOptions  # noqa: E402
from scripted_server import Rule, ScriptedServer  # noqa: E402

HEADER = (ROOT / "examples" / "prelude_header.lean").read_text(encoding="utf-8")
URI = "file:///tmp/bench/Search.lean"


def statement(steps: int) -> str:
    return "theorem chain : " + " → ".join(["Eq two two"] * (steps + 1)) + " :="


def chain(steps: int) -> list[str]:
    return [f"intro | h{k} => ?_" for k in range(steps)]


class BareClient:
    """Just enough of LSP over a worker's stdin/stdout to edit a document and ask for its goals."""

    def __init__(self, toolchain: LeanToolchain) -> None:
        self.toolchain = toolchain
        self.ids = itertools.count(1)
        self.version = 0
        self.waiting: dict[int, asyncio.Future[Any]] = {}

    async def start(self) -> None:
        env = {"LEAN_PATH": ":".join(self.toolchain.lean_path)} if self.toolchain.lean_path else None
        self.proc = await asyncio.create_subprocess_exec(
            str(self.toolchain.lean),
            "--worker",
            "-Dserver.reportDelayMs=0",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=env,
            limit=2**26,
        )
        self.reader = asyncio.ensure_future(self._read())
        params = {"processId": None, "rootUri": None, "capabilities": {}, "initializationOptions": {"editDelay": 0}}
        self._send({"jsonrpc": "2.0", "id": next(self.ids), "method": "initialize", "params": params})

    def _send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        body = json.dumps(message).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while True:
            header = await self.proc.stdout.readuntil(b"\r\n\r\n")
            length = int(header.split(b"Content-Length:")[1].split(b"\r\n")[0])
            message = json.loads(await self.proc.stdout.readexactly(length))
            future = self.waiting.pop(message.get("id", -1), None) if "method" not in message else None
            if future is not None and not future.done():
                future.set_result(message.get("result"))

    async def request(self, method: str, params: dict[str, Any]) -> Any:
        request_id = next(self.ids)
        self.waiting[request_id] = asyncio.get_running_loop().create_future()
        self._send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        return await self.waiting[request_id]

    async def goals_after(self, text: str, line: int) -> Any:
        self.version += 1
        if self.version == 1:
            doc = {"uri": URI, "languageId": "lean4", "version": 1, "text": text}
            self._send({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": doc}})
        else:
            params = {"textDocument": {"uri": URI, "version": self.version}, "contentChanges": [{"text": text}]}
            self._send({"jsonrpc": "2.0", "method": "textDocument/didChange", "params": params})
        await self.request("textDocument/waitForDiagnostics", {"uri": URI, "version": self.version})
        position = {"line": line, "character": 0}
        return await self.request("$/lean/plainGoal", {"textDocument": {"uri": URI}, "position": position})

    async def close(self) -> None:
        self.proc.kill()
        await self.proc.wait()
        self.reader.cancel()


async def bare_steps(toolchain: LeanToolchain, steps: int) -> list[float]:
    client = BareClient(toolchain)
    await client.start()
    head = HEADER + statement(steps)[: -len(" :=")] + " := by\n"
    try:
        await client.goals_after(head, head.count("\n"))  # opened: the header elaborated once
        times = []
        tactics = chain(steps)
        for k in range(1, steps + 1):
            body = tactic_lines(tuple(tactics[:k]))
            started = time.perf_counter()
            goals = await client.goals_after(head + body, (head + body).count("\n"))
            times.append(time.perf_counter() - started)
            assert goals and goals.get("goals"), goals
        return times
    finally:
        await client.close()


async def session_steps(toolchain: LeanToolchain, steps: int) -> list[float]:
    async with ProofSession(toolchain, SessionLimits(timeout_s=60), sandbox.choose("auto")) as session:
        state = await session.open(HEADER, statement(steps))
        times = []
        for tactic in chain(steps):
            started = time.perf_counter()
            result = await session.apply(state, tactic)
            times.append(time.perf_counter() - started)
            assert result.state is not None, result.error
            state = result.state
        return times


async def expansions_per_second(toolchain: LeanToolchain, expansions: int) -> tuple[float, int, int]:
    # every state: four suggestions, two of which reach the same goals, one an unknown tactic
    rules = [Rule(r"⊢", ["intro | a => ?_", "intro | b => ?_", "intro | a => _", "exact h"], [-0.1, -0.2, -0.3, -0.4])]
    server = ScriptedServer(rules)
    server.start()
    engine = OpenAIEngine(OpenAIConfig(base_url=server.base_url, model="scripted", max_retries=0, timeout_s=30))
    options = VerifyOptions(workers=1, timeout_s=60, default_header=HEADER)
    session = ProofSession(toolchain, SessionLimits(timeout_s=60), sandbox.choose("auto"))
    try:
        async with Verifier(toolchain, options) as verifier, session:
            result = await best_first_search(
                session,
                engine,
                verifier,
                task_id="bench",
                header=HEADER,
                statement=statement(40),
                budget=SearchBudget(expansions=expansions, candidates=4),
            )
        return result.expansions / result.wall_s, result.expansions, result.tactics_run
    finally:
        await engine.aclose()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--expansions", type=int, default=20)
    args = parser.parse_args()
    toolchain = find_lean(load_settings(), None)
    bare: list[float] = []
    ours: list[float] = []
    ratios: list[float] = []
    for r in range(args.rounds):
        b = asyncio.run(bare_steps(toolchain, args.steps))
        s = asyncio.run(session_steps(toolchain, args.steps))
        bare += b
        ours += s
        ratios.append(statistics.median(s) / statistics.median(b))
        print(
            f"round {r + 1}: bare {statistics.median(b) * 1000:.1f} ms/step, "
            f"session {statistics.median(s) * 1000:.1f} ms/step",
            file=sys.stderr,
        )
    rate, expanded, tactics = asyncio.run(expansions_per_second(toolchain, args.expansions))
    print(f"\nLean {toolchain.version} ({toolchain.origin}); {args.steps} steps x {args.rounds} rounds")
    print(f"bare language server   {statistics.median(bare) * 1000:7.1f} ms per tactic (median)")
    print(f"proof session          {statistics.median(ours) * 1000:7.1f} ms per tactic (median)")
    print(f"session / bare         {statistics.median(ratios):7.2f}x (median of per-round ratios; target <= 1.2x)")
    print(f"search                 {rate:7.1f} expansions/s ({expanded} expansions, {tactics} tactics run)")


if __name__ == "__main__":
    main()
