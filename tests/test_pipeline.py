"""The pipeline in-process: problems in, results out, each appended once and
counted as the file holds it; a second run resumes past them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import PRELUDE_HEADER
from mathagent.agent.budget import Budget
from mathagent.agent.loop import Agent
from mathagent.agent.records import Result
from mathagent.engines.openai import OpenAIConfig, OpenAIEngine
from mathagent.eval.metrics import summarize
from mathagent.pipeline import Run, open_results, read_problems, run_problems
from mathagent.verify.toolchain import LeanToolchain
from mathagent.verify.verifier import Verifier, VerifyOptions
from mathagent.vocabulary import ErrorKind, Status
from scripted_server import Rule, ScriptedServer

STATEMENT = "theorem X : Eq (N.add two two) four :="


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    server = ScriptedServer([Rule(r"Complete the following", [f"```lean4\n{STATEMENT} Eq.refl _\n```"])])
    server.start()
    yield server
    server.stop()


def solve(problems: Path, output: Path, lean: LeanToolchain, url: str) -> Run:
    async def go() -> Run:
        engine = OpenAIEngine(OpenAIConfig(base_url=url, model="scripted", max_retries=0, timeout_s=30))
        options = VerifyOptions(workers=2, timeout_s=30, default_header=PRELUDE_HEADER, cache_path=None)
        resume = open_results(output)
        try:
            async with Verifier(lean, options) as verifier:
                agent = Agent(engine, verifier, Budget(rounds=1, samples=1, solve=False))
                return await run_problems(read_problems(problems), agent, resume, concurrency=2)
        finally:
            resume.log.close()
            await engine.aclose()

    return asyncio.run(go())


def test_each_result_is_appended_once_and_counted_as_the_file_holds_it(
    lean: LeanToolchain, server: ScriptedServer, tmp_path: Path
) -> None:
    problems = tmp_path / "problems.jsonl"
    rows = [json.dumps({"name": f"p{i}", "formal_statement": STATEMENT}) for i in range(3)]
    problems.write_text("\n".join([*rows, rows[0], "not json"]) + "\n")
    output = tmp_path / "out.jsonl"

    first = solve(problems, output, lean, server.base_url)
    held = [Result.from_dict(json.loads(line)) for line in output.read_text().splitlines()]
    assert first.results == held  # the objects kept are the rows written, once each
    assert (first.ran, first.skipped, first.duplicates) == (4, 0, 1)
    m = summarize(first.results)
    assert (m.problems, m.verified, m.errors) == (4, 3, 1)
    bad = next(r for r in first.results if r.status is Status.ERROR)
    assert bad.error_kind is ErrorKind.INPUT and "invalid JSON" in (bad.error or "")

    again = solve(problems, output, lean, server.base_url)  # everything is final: nothing runs
    assert (again.ran, again.skipped, again.duplicates) == (0, 4, 1)
    assert again.results == held and len(output.read_text().splitlines()) == 4
