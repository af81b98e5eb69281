"""Best-first tactic search: a scripted model over real HTTP proposing tactics
with log-probabilities, the real proof session and the real verifier on the
prelude Lean.

No tactic can close a goal on this Lean (see tests/test_session.py), so a
search here explores real states and ends without a proof; finding one is
tested with Mathlib (tests/test_mathlib.py). What a found proof must still
pass is tested with a session that claims a solved state, as buggy REPLs have
done: the verifier, not the session, decides."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from conftest import PRELUDE_HEADER
from mathagent.agent.search import SearchBudget, SearchResult, SearchStop, best_first_search, tactic_from_output
from mathagent.engines.openai import OpenAIConfig, OpenAIEngine
from mathagent.verify import sandbox
from mathagent.verify.session import ProofSession, ProofState, SessionLimits, TacticResult
from mathagent.verify.toolchain import LeanToolchain
from mathagent.verify.verifier import Verifier, VerifyOptions
from scripted_server import Rule, ScriptedServer

STATEMENT = "theorem two_imp : Eq two two → Eq four four → Eq two two :="
START = r"⊢ Eq two two → Eq four four → Eq two two\n```"
AFTER_H = r"h : Eq two two := x✝\n⊢ Eq four four → Eq two two\n```"
AFTER_G = r"g : Eq two two := x✝\n⊢ Eq four four → Eq two two\n```"


def script() -> list[Rule]:
    return [
        # the start: two ways to the same goals (h), one to other goals (g), one unknown tactic
        Rule(
            START,
            ["intro | h => ?_", "```lean\nintro | h => _\n```", "intro | g => ?_", "exact fun h _ => h"],
            logprobs=[-0.2, -0.3, -1.0, -0.1],
        ),
        Rule(AFTER_H, ["intro | k => ?_"], logprobs=[-0.5]),
        Rule(AFTER_G, ["intro | k => ?_"], logprobs=[-0.5]),
    ]


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    server = ScriptedServer(script())
    server.start()
    yield server
    server.stop()


def search(
    lean: LeanToolchain,
    server: ScriptedServer,
    budget: SearchBudget,
    session_class: type[ProofSession] = ProofSession,
) -> SearchResult:
    async def go() -> SearchResult:
        engine = OpenAIEngine(OpenAIConfig(base_url=server.base_url, model="scripted", max_retries=0, timeout_s=30))
        options = VerifyOptions(workers=1, timeout_s=30, default_header=PRELUDE_HEADER)
        session = session_class(lean, SessionLimits(timeout_s=30, memory_mb=4096), sandbox.choose("auto"))
        try:
            async with Verifier(lean, options) as verifier, session:
                return await best_first_search(
                    session, engine, verifier, task_id="t", header=PRELUDE_HEADER, statement=STATEMENT, budget=budget
                )
        finally:
            await engine.aclose()

    return asyncio.run(go())


def test_the_search_runs_real_tactics_dedups_states_and_expands_the_best_first(
    lean: LeanToolchain, server: ScriptedServer, no_leftover_lean: None
) -> None:
    result = search(lean, server, SearchBudget(expansions=10, candidates=4))
    assert result.stop is SearchStop.EXHAUSTED and result.proof is None
    root, *nodes = result.trace
    assert root.goals == ["⊢ Eq two two → Eq four four → Eq two two"]
    by_tactic = {n.tactic: n for n in nodes if n.parent == 0}
    # each distinct tactic ran once, best log-probability first
    assert list(by_tactic) == ["exact fun h _ => h", "intro | h => ?_", "intro | h => _", "intro | g => ?_"]
    assert by_tactic["exact fun h _ => h"].error == "unknown tactic"
    h, h_again, g = by_tactic["intro | h => ?_"], by_tactic["intro | h => _"], by_tactic["intro | g => ?_"]
    assert h.goals is not None and h.goals[0].endswith("⊢ Eq four four → Eq two two")
    assert h_again.duplicate_of == h.index and g.duplicate_of is None
    # expanded by score: the start (0), h (-0.2), h's child (-0.2 - 0.5), g (-1.0), g's child (-1.5)
    prompts = [r["messages"][-1]["content"] for r in server.requests]
    assert "⊢ Eq four four → Eq two two" in prompts[1] and "h : Eq two two" in prompts[1]
    assert "k : Eq four four" in prompts[2] and "h : Eq two two" in prompts[2]
    assert "g : Eq two two" in prompts[3] and "k : Eq four four" not in prompts[3]
    assert "k : Eq four four" in prompts[4] and "g : Eq two two" in prompts[4]
    assert result.expansions == len(server.requests) == 5
    assert result.completion_tokens > 0 and result.tactics_run == len(nodes)


def test_the_search_stops_at_its_expansion_budget(
    lean: LeanToolchain, server: ScriptedServer, no_leftover_lean: None
) -> None:
    result = search(lean, server, SearchBudget(expansions=1, candidates=4))
    assert result.stop is SearchStop.EXPANSIONS
    assert result.expansions == 1 and len(server.requests) == 1


def test_the_search_stops_at_its_token_budget(lean: LeanToolchain, server: ScriptedServer) -> None:
    result = search(lean, server, SearchBudget(expansions=10, candidates=4, tokens=1))
    assert result.stop is SearchStop.TOKENS and len(server.requests) == 1


class _ClaimsSolved(ProofSession):
    """A session that says the goals are gone after one tactic Lean does not even know."""

    async def apply(self, state: ProofState, tactic: str) -> TacticResult:
        if tactic == "exact fun h _ => h":
            return TacticResult(ProofState((*state.tactics, tactic), ()))
        return await super().apply(state, tactic)


def test_a_solved_state_counts_only_when_the_verifier_accepts_the_whole_proof(
    lean: LeanToolchain, server: ScriptedServer, no_leftover_lean: None
) -> None:
    result = search(lean, server, SearchBudget(expansions=10, candidates=4), session_class=_ClaimsSolved)
    assert not result.verified and result.proof is None
    claimed = next(n for n in result.trace if n.tactic == "exact fun h _ => h")
    assert claimed.goals == [] and claimed.verdict == "rejected"
    assert result.verdict is not None and "lean_error" in result.verdict.reasons
    assert result.stop is SearchStop.EXHAUSTED  # the search went on after the rejected candidate


def test_a_tactic_is_the_first_fenced_block_or_the_text() -> None:
    assert tactic_from_output("```lean\nnlinarith [sq_nonneg x]\n```\nthen done", 100) == "nlinarith [sq_nonneg x]"
    assert tactic_from_output("  simp\n", 100) == "  simp"
    assert tactic_from_output("   \n", 100) is None
    assert tactic_from_output("x" * 101, 100) is None
