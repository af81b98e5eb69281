"""Best-first search over tactic states, as InternLM2-Math's prover results were measured.

The open states wait in a priority queue keyed by the sum, along the path
from the theorem's start, of each tactic's length-normalised log-probability
(the mean log-probability per token the engine reports). The best state is
expanded: the model is shown its goals with the InternLM2 tactic prompt
(`prompts/tactic.toml`) and asked for `candidates` tactics in one batched
generation; each distinct tactic runs in the proof session; states already
seen (the same goals, by any path) are dropped. The search stops at a proof,
an empty queue, or a budget: expansions, seconds, or generated tokens.

A state with no goals is only a candidate: the tactics are assembled into a
proof and checked by the verifier, like any whole proof, and only its verdict
can make the result verified. A candidate the verifier rejects is recorded
and the search goes on.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from mathagent import prompts
from mathagent.engines.base import Engine
from mathagent.verify.checker import Checker
from mathagent.verify.leantext import fences
from mathagent.verify.session import ProofState, TacticSession, proof_text
from mathagent.verify.tasks import VerifyTask
from mathagent.verify.verdict import Verdict
from mathagent.vocabulary import PromptKind, SearchStop


@dataclass(frozen=True)
class SearchBudget:
    expansions: int = 64  # states expanded (one batched generation each)
    candidates: int = 8  # tactics asked for per expansion
    time_s: float = 600.0
    tokens: int = 500_000  # generated tokens, all expansions together
    max_tactic_chars: int = 2000  # longer suggestions are not run


@dataclass
class TraceNode:
    """One node of the search tree: a tactic tried on its parent's state, and what Lean said."""

    index: int
    parent: int | None
    tactic: str
    score: float
    goals: list[str] | None  # None: the tactic failed (see `error`)
    error: str = ""
    duplicate_of: int | None = None  # the same goals as an earlier node: not expanded again
    verdict: str | None = None  # for a node with no goals: the verifier's verdict on the assembled proof


@dataclass
class SearchResult:
    proof: str | None  # the proof text to append to the statement, verified; None: not found
    tactics: tuple[str, ...] = ()  # the verified proof's tactics
    verdict: Verdict | None = None  # the verifier's verdict on `proof` (or on the last candidate it rejected)
    stop: SearchStop = SearchStop.EXHAUSTED
    expansions: int = 0
    tactics_run: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_s: float = 0.0
    lean_s: float = 0.0
    wall_s: float = 0.0
    trace: list[TraceNode] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        return self.proof is not None and self.verdict is not None and self.verdict.verified

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stop"] = self.stop.value
        data["verdict"] = self.verdict.to_dict() if self.verdict is not None else None
        return data


SearchListener = Callable[[TraceNode], None]


def tactic_from_output(text: str, limit: int) -> str | None:
    """The tactic in a model's answer: the body of its first fenced block, else the
    text itself; None when empty or longer than `limit` characters."""
    first = next(fences(text), None)
    tactic = (first.body if first else text).strip("\n").rstrip()
    if not tactic.strip() or len(tactic) > limit:
        return None
    return tactic


async def best_first_search(
    session: TacticSession,
    engine: Engine,
    checker: Checker,
    *,
    task_id: str,
    header: str,
    statement: str,
    budget: SearchBudget,
    start: tuple[str, ...] = (),
    on_node: SearchListener = lambda node: None,
) -> SearchResult:
    """Search for a tactic proof of `statement` under `header`, from the state
    `start`'s tactics lead to (as far as Lean accepts them; `()`: the theorem's start)."""
    started = time.monotonic()
    result = SearchResult(proof=None, verdict=None, stop=SearchStop.EXHAUSTED)
    template = prompts.load(PromptKind.TACTIC)
    sampling = template.default_sampling(n=budget.candidates, logprobs=True)
    t0 = time.monotonic()
    root = await session.open(header, statement)
    result.trace.append(TraceNode(0, None, "", 0.0, list(root.goals)))
    for step in start:  # a prefix Lean accepts, e.g. of a failed whole proof
        replayed = await session.apply(root, step)
        if replayed.state is None or replayed.state.solved:
            break  # a solved prefix is a whole proof: the whole-proof check has judged it already
        root = replayed.state
        result.trace.append(TraceNode(len(result.trace), len(result.trace) - 1, step, 0.0, list(root.goals)))
    result.lean_s += time.monotonic() - t0
    root_index = len(result.trace) - 1
    seen: dict[str, int] = {root.key: root_index}
    order = itertools.count()
    queue: list[tuple[float, int, int, ProofState]] = [(-0.0, next(order), root_index, root)]

    def stop_for_budget() -> SearchStop | None:
        if result.expansions >= budget.expansions:
            return SearchStop.EXPANSIONS
        if time.monotonic() - started >= budget.time_s:
            return SearchStop.TIME
        if result.completion_tokens >= budget.tokens:
            return SearchStop.TOKENS
        return None

    try:
        while queue:
            over = stop_for_budget()
            if over is not None:
                result.stop = over
                return result
            negative_score, _, parent, state = heapq.heappop(queue)
            result.expansions += 1
            chat = template.render(state=state.pretty() + "\n")
            t0 = time.monotonic()
            [samples] = await engine.generate([chat], sampling)
            result.model_s += time.monotonic() - t0
            tried: set[str] = set()
            for sample in samples:
                result.prompt_tokens += sample.prompt_tokens
                result.completion_tokens += sample.completion_tokens
            for sample in sorted(samples, key=lambda s: -(s.mean_logprob or 0.0)):
                tactic = tactic_from_output(sample.text, budget.max_tactic_chars)
                if tactic is None or tactic in tried:
                    continue
                tried.add(tactic)
                if time.monotonic() - started >= budget.time_s:
                    result.stop = SearchStop.TIME
                    return result
                score = -negative_score + (sample.mean_logprob or 0.0)
                t0 = time.monotonic()
                applied = await session.apply(state, tactic)
                result.lean_s += time.monotonic() - t0
                result.tactics_run += 1
                node = TraceNode(len(result.trace), parent, tactic, round(score, 4), None, applied.error)
                result.trace.append(node)
                if applied.state is None:
                    on_node(node)
                    continue
                node.goals = list(applied.state.goals)
                if applied.state.solved:
                    verdict = await _recheck(checker, task_id, header, statement, applied.state, result)
                    node.verdict = str(verdict.verdict)
                    on_node(node)
                    result.verdict = verdict
                    if verdict.verified:
                        result.proof = proof_text(statement, applied.state.tactics)
                        result.tactics = applied.state.tactics
                        result.stop = SearchStop.PROVED
                        return result
                    continue
                if applied.state.key in seen:
                    node.duplicate_of = seen[applied.state.key]
                    on_node(node)
                    continue
                seen[applied.state.key] = node.index
                on_node(node)
                heapq.heappush(queue, (-score, next(order), node.index, applied.state))
        result.stop = SearchStop.EXHAUSTED
        return result
    finally:
        result.wall_s = time.monotonic() - started


async def _recheck(
    checker: Checker, task_id: str, header: str, statement: str, state: ProofState, result: SearchResult
) -> Verdict:
    """The verifier's verdict on the tactics assembled into a whole proof."""
    task = VerifyTask(
        id=f"{task_id}#search{result.tactics_run}",
        formal_statement=statement,
        proof=proof_text(statement, state.tactics),
        header=header,
    )
    t0 = time.monotonic()
    verdict = await checker.verify(task)
    result.lean_s += time.monotonic() - t0
    return verdict
