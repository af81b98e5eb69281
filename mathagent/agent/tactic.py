"""The tactic strategies: best-first search over Lean's goal states, alone or
after the whole-proof attempts (`--strategy tactic | both`).

`TacticSearch` opens a proof session on the checker (this machine's Lean, or
one node of a Ray cluster for the session's whole life) and runs
`search.best_first_search`. `WholeThenTactic` runs the whole-proof strategy
first; when it finds no proof, the search starts from the best failed
attempt's state: the longest run of its tactics Lean accepts (its attempts
ranked by the model's mean log-probability), or the theorem's start.

Either way the result is verified only by the verifier's verdict on the
assembled proof; the search's numbers go into `Result.search`.
"""

from __future__ import annotations

from mathagent.agent import events
from mathagent.agent.records import Attempt, Result
from mathagent.agent.search import SearchBudget, SearchResult, TraceNode, best_first_search
from mathagent.agent.strategy import ProofGoal, Strategy
from mathagent.agent.whole import WholeProof
from mathagent.errors import VerifierError
from mathagent.verify.leantext import top_level_tactics
from mathagent.vocabulary import LEAN_ERROR, Status, StrategyKind


class TacticSearch:
    """Best-first tactic search as the agent's strategy."""

    def __init__(self, budget: SearchBudget) -> None:
        self.budget = budget

    async def prove(self, goal: ProofGoal, result: Result, emit: events.Listener) -> None:
        await self.search(goal, result, emit, start=())

    async def search(self, goal: ProofGoal, result: Result, emit: events.Listener, *, start: tuple[str, ...]) -> None:
        emit(events.Searching(self.budget.expansions, self.budget.candidates, len(start)))

        def tried(node: TraceNode) -> None:
            emit(events.TacticTried(node.index, node.tactic, node.goals is not None, node.error, node.verdict))

        try:
            async with goal.checker.session() as session:
                found = await best_first_search(
                    session,
                    goal.engine,
                    goal.checker,
                    task_id=goal.problem.id,
                    header=goal.header,
                    statement=goal.statement,
                    budget=self.budget,
                    start=start,
                    on_node=tried,
                )
        except VerifierError as exc:  # the statement cannot be opened, or its node was lost
            result.note = result.note or f"tactic search: {exc.message}"
            return
        _record(found, result)
        emit(events.SearchDone(found.stop, found.expansions, found.tactics_run, found.verified))


class WholeThenTactic:
    """Whole proofs first; without a verified one, the tactic search from the best failed attempt."""

    def __init__(self, budget: SearchBudget, whole: Strategy | None = None) -> None:
        self.whole = whole or WholeProof()
        self.tactic = TacticSearch(budget)

    async def prove(self, goal: ProofGoal, result: Result, emit: events.Listener) -> None:
        await self.whole.prove(goal, result, emit)
        if result.status is Status.VERIFIED:
            return
        await self.tactic.search(goal, result, emit, start=best_failed_start(result.attempts))


def strategy_for(kind: StrategyKind, budget: SearchBudget) -> Strategy:
    """The agent's strategy for `--strategy`."""
    if kind is StrategyKind.TACTIC:
        return TacticSearch(budget)
    if kind is StrategyKind.BOTH:
        return WholeThenTactic(budget)
    return WholeProof()


def best_failed_start(attempts: list[Attempt]) -> tuple[str, ...]:
    """The tactics of the most likely whole proof Lean rejected with errors
    (the search replays them as far as Lean accepts them); () when there is none."""
    failed = [a for a in attempts if a.proof and LEAN_ERROR in a.reasons and a.duplicate_of is None]
    failed.sort(key=lambda a: -(a.mean_logprob if a.mean_logprob is not None else float("-inf")))
    for attempt in failed:
        tactics = top_level_tactics(attempt.proof or "")
        if tactics:
            return tuple(tactics)
    return ()


def _record(found: SearchResult, result: Result) -> None:
    result.model_s += found.model_s
    result.lean_s += found.lean_s
    result.prompt_tokens += found.prompt_tokens
    result.completion_tokens += found.completion_tokens
    result.search = {
        "stop": found.stop.value,
        "expansions": found.expansions,
        "tactics_run": found.tactics_run,
        "nodes": len(found.trace),
        "wall_s": round(found.wall_s, 3),
        "proof_tactics": len(found.tactics),
    }
    if found.verified and found.proof is not None and found.verdict is not None:
        result.status = Status.VERIFIED
        result.proof = found.proof
        result.search["verdict"] = found.verdict.to_dict()
