"""`--strategy tactic|both` inside the agent: the search as the agent's strategy,
after the whole proofs, from the best failed proof's state; a scripted model
over real HTTP, the real session and verifier on the prelude Lean (where no
tactic closes a goal: the search runs and ends without a proof)."""

from __future__ import annotations

import asyncio

from tactic_script import STATEMENT, tactic_server  # noqa: F401 (tactic_server: the `server` fixture)

from conftest import PRELUDE_HEADER
from mathagent.agent import events
from mathagent.agent.budget import Budget
from mathagent.agent.loop import Agent
from mathagent.agent.records import Attempt, Problem, Result
from mathagent.agent.search import SearchBudget
from mathagent.agent.tactic import TacticSearch, WholeThenTactic, best_failed_start, strategy_for
from mathagent.agent.whole import WholeProof
from mathagent.engines.openai import OpenAIConfig, OpenAIEngine
from mathagent.verify.toolchain import LeanToolchain
from mathagent.verify.verifier import Verifier, VerifyOptions
from mathagent.vocabulary import LEAN_ERROR, PromptKind, Status, StrategyKind
from scripted_server import ScriptedServer


def run(lean: LeanToolchain, server: ScriptedServer, strategy: object, seen: list[events.Event]) -> Result:
    async def go() -> Result:
        engine = OpenAIEngine(OpenAIConfig(base_url=server.base_url, model="scripted", max_retries=0, timeout_s=30))
        options = VerifyOptions(workers=1, timeout_s=30, default_header=PRELUDE_HEADER)
        try:
            async with Verifier(lean, options) as verifier:
                agent = Agent(engine, verifier, Budget(rounds=1, samples=1), strategy=strategy)  # type: ignore[arg-type]
                return await agent.run(Problem(id="p", formal_statement=STATEMENT), seen.append)
        finally:
            await engine.aclose()

    return asyncio.run(go())


def test_the_tactic_strategy_searches_and_records_its_numbers(
    lean: LeanToolchain, server: ScriptedServer, no_leftover_lean: None
) -> None:
    seen: list[events.Event] = []
    result = run(lean, server, TacticSearch(SearchBudget(expansions=5, candidates=2)), seen)
    assert result.status is Status.UNVERIFIED and result.proof is None
    assert result.attempts == []  # no whole proof was sampled
    assert result.search is not None and result.search["stop"] == "exhausted"
    assert result.search["expansions"] >= 2 and result.search["tactics_run"] >= 3
    assert result.completion_tokens > 0 and result.lean_s > 0
    tried = [e for e in seen if isinstance(e, events.TacticTried)]
    assert [e.tactic for e in tried][:1] == ["intro | h => ?_"] and tried[0].accepted
    assert any(e.tactic == "exact h" and e.error == "unknown tactic" for e in tried)
    assert isinstance(seen[-2], events.SearchDone) and not seen[-2].verified
    assert result.verified_round() is None


def test_both_searches_from_the_best_failed_whole_proof(
    lean: LeanToolchain, server: ScriptedServer, no_leftover_lean: None
) -> None:
    seen: list[events.Event] = []
    result = run(lean, server, WholeThenTactic(SearchBudget(expansions=3, candidates=2)), seen)
    assert [a.reasons for a in result.attempts][:1] == [[LEAN_ERROR]]  # the whole proof: `exact` is unknown here
    searching = next(e for e in seen if isinstance(e, events.Searching))
    assert searching.replayed == 2  # its tactics, replayed as far as Lean accepts them
    first_prompt_after_whole = next(
        r["messages"][-1]["content"] for r in server.requests if "My LEAN 4 state" in r["messages"][-1]["content"]
    )
    assert "h : Eq two two" in first_prompt_after_whole  # the search began after `intro | h => ?_`
    assert result.search is not None and result.status is Status.UNVERIFIED


def test_the_best_failed_start_is_the_likeliest_rejected_proof() -> None:
    def attempt(index: int, proof: str, logprob: float, reasons: list[str]) -> Attempt:
        return Attempt(index, 1, PromptKind.PROVE, "", proof, reasons=reasons, mean_logprob=logprob)  # type: ignore[arg-type]

    attempts = [
        attempt(0, " by\n  simp\n  ring", -0.9, [LEAN_ERROR]),
        attempt(1, " by\n  norm_num\n  linarith", -0.2, [LEAN_ERROR]),
        attempt(2, " by\n  sorry", -0.1, ["sorry"]),  # a cheat is no start
        attempt(3, " Eq.refl _", -0.05, [LEAN_ERROR]),  # not a tactic proof
    ]
    assert best_failed_start(attempts) == ("norm_num", "linarith")
    assert best_failed_start([]) == ()


def test_strategy_words_pick_the_strategy() -> None:
    budget = SearchBudget()
    assert isinstance(strategy_for(StrategyKind.WHOLE, budget), WholeProof)
    assert isinstance(strategy_for(StrategyKind.TACTIC, budget), TacticSearch)
    assert isinstance(strategy_for(StrategyKind.BOTH, budget), WholeThenTactic)
