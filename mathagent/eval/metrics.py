"""The numbers a benchmark run is judged by, computed from its result rows.

Formal problems count as solved only with a verified proof; natural-language
problems by their answer's equivalence to the dataset's answer (sympy).
pass@k uses the unbiased estimator over n samples per problem (Chen et al.,
2021): 1 - C(n-c, k) / C(n, k), with c the correct samples among n.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from math import comb
from typing import Any

from mathagent.agent.records import Result
from mathagent.vocabulary import AnswerCheck, Status, VerdictKind


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn from n (c correct) is correct."""
    if not 0 <= c <= n or k < 1 or k > n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def ks_for(n: int) -> list[int]:
    """k = 1, 2, 4, ... up to n (and n itself)."""
    ks, k = [], 1
    while k < n:
        ks.append(k)
        k *= 2
    return [*ks, n] if n >= 1 else []


@dataclass
class Metrics:
    """Everything a set of results says, computed once (`summarize`).

    The one summary of a run, counted here and nowhere else: `to_dict` is
    the evaluation's view (summary.json); `cli.batch_cmd.summary_dict` and
    `summary_table` are the batch command's view of the same numbers.
    """

    problems: int = 0
    formal: int = 0
    informal: int = 0  # natural-language problems with a reference answer
    formal_solved: int = 0
    informal_solved: int = 0  # majority answer equals the reference
    errors: int = 0  # results with an `error` (status `error`)
    formal_samples: int = 0  # n per formal problem (round-1 proofs)
    informal_samples: int = 0  # n per natural-language problem
    formal_pass_at_k: dict[int, float] = field(default_factory=dict)
    informal_pass_at_k: dict[int, float] = field(default_factory=dict)
    solved_by_round: dict[int, int] = field(default_factory=dict)  # round -> formal problems verified by then
    attempts_per_solved: float | None = None
    tokens_per_solved: float | None = None
    model_s: float = 0.0  # summed over problems, unrounded (problems overlap: not a wall time)
    lean_s: float = 0.0
    wall_s: float = 0.0  # each problem's own wall time, summed (they overlap)
    verdicts: dict[str, int] = field(default_factory=dict)  # over every proof attempt
    reasons: dict[str, int] = field(default_factory=dict)  # over every rejected attempt
    # by status and answer check
    verified: int = 0
    unverified: int = 0
    answered: int = 0
    bad_statement: int = 0
    verified_first_round: int = 0  # verified without repair
    answer_checked: int = 0
    answer_disagrees: int = 0
    reference_matches: int = 0
    with_reference: int = 0
    completion_tokens: int = 0
    error_messages: list[str] = field(default_factory=list)  # the commonest, with counts
    notes: list[str] = field(default_factory=list)  # the commonest notes (results that are not errors)
    # the tactic search (`--strategy tactic|both`), over the results it ran on
    searched: int = 0
    search_solved: int = 0  # verified by a proof the search found
    search_expansions: int = 0
    search_tactics: int = 0

    def search_summary(self) -> dict[str, int] | None:
        """The search's numbers, or None when no search ran (the summary then reads as before)."""
        if not self.searched:
            return None
        return {
            "problems": self.searched,
            "solved": self.search_solved,
            "expansions": self.search_expansions,
            "tactics_run": self.search_tactics,
        }

    def to_dict(self) -> dict[str, Any]:
        """The evaluation's summary (summary.json, `eval --json`)."""
        return {
            "problems": self.problems,
            "formal": self.formal,
            "informal": self.informal,
            "formal_solved": self.formal_solved,
            "informal_solved": self.informal_solved,
            "errors": self.errors,
            "formal_samples": self.formal_samples,
            "informal_samples": self.informal_samples,
            "formal_pass_at_k": dict(self.formal_pass_at_k),
            "informal_pass_at_k": dict(self.informal_pass_at_k),
            "solved_by_round": dict(self.solved_by_round),
            "attempts_per_solved": self.attempts_per_solved,
            "tokens_per_solved": self.tokens_per_solved,
            "model_s": round(self.model_s, 2),
            "lean_s": round(self.lean_s, 2),
            "wall_s": round(self.wall_s, 2),
            "verdicts": dict(self.verdicts),
            "reasons": dict(self.reasons),
            **({"search": search} if (search := self.search_summary()) else {}),
        }


def summarize(results: Iterable[Result]) -> Metrics:
    m = Metrics()
    formal_counts: list[tuple[int, int]] = []
    informal_counts: list[tuple[int, int]] = []
    solved_rounds: list[int] = []
    solved_attempts: list[int] = []
    solved_tokens: list[int] = []
    verdicts: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    messages: Counter[str] = Counter()
    notes: Counter[str] = Counter()
    max_round = 1
    for r in results:
        m.problems += 1
        m.model_s += r.model_s
        m.lean_s += r.lean_s
        m.wall_s += r.wall_s
        m.completion_tokens += r.completion_tokens
        if r.status is Status.VERIFIED:
            m.verified += 1
            index = r.verified_attempt
            if index is not None and index < len(r.attempts) and r.attempts[index].round == 1:
                m.verified_first_round += 1
        elif r.status is Status.ERROR:
            m.errors += 1
            messages[str(r.error or "unknown error")[:160]] += 1
        elif r.status is Status.UNVERIFIED:
            m.unverified += 1
        elif r.status is Status.ANSWERED:
            m.answered += 1
        elif r.status is Status.BAD_STATEMENT:
            m.bad_statement += 1
        if r.note:
            notes[r.note[:160]] += 1
        if r.reference_match is not None:
            m.with_reference += 1
            m.reference_matches += bool(r.reference_match)
        if r.answer_check is AnswerCheck.CHECKED:
            m.answer_checked += 1
        elif r.answer_check is AnswerCheck.DISAGREES:
            m.answer_disagrees += 1
        for attempt in r.attempts:
            verdicts[str(attempt.verdict or "none")] += 1
            for reason in attempt.reasons:
                reasons[reason] += 1
            max_round = max(max_round, attempt.round or 1)
        if r.formal:
            m.formal += 1
            first = r.first_round()
            formal_counts.append((len(first), sum(1 for a in first if a.verdict is VerdictKind.VERIFIED)))
            if r.verified:
                m.formal_solved += 1
                solved_rounds.append(r.verified_round() or 1)
                max_round = max(max_round, solved_rounds[-1])  # a search's proof counts after the rounds
                if r.verified_attempt is not None or r.search is None:
                    solved_attempts.append((r.verified_attempt or 0) + 1)
                solved_tokens.append(r.completion_tokens)
        if r.search is not None:
            m.searched += 1
            m.search_solved += r.verified and r.verified_attempt is None
            m.search_expansions += int(r.search.get("expansions", 0))
            m.search_tactics += int(r.search.get("tactics_run", 0))
        elif r.reference_answer is not None:
            m.informal += 1
            informal_counts.append((len(r.sample_matches), sum(1 for x in r.sample_matches if x)))
            if r.reference_match:
                m.informal_solved += 1
                solved_tokens.append(r.completion_tokens)
    m.formal_samples, m.formal_pass_at_k = _pass_curve(formal_counts)
    m.informal_samples, m.informal_pass_at_k = _pass_curve(informal_counts)
    m.solved_by_round = {r: sum(1 for x in solved_rounds if x <= r) for r in range(1, max_round + 1)}
    if solved_attempts:
        m.attempts_per_solved = round(sum(solved_attempts) / len(solved_attempts), 2)
    if solved_tokens:
        m.tokens_per_solved = round(sum(solved_tokens) / len(solved_tokens), 1)
    m.verdicts = dict(verdicts.most_common())
    m.reasons = dict(reasons.most_common())
    m.error_messages = [f"{n}x {msg}" for msg, n in messages.most_common(5)]
    m.notes = [f"{n}x {msg}" for msg, n in notes.most_common(5)]
    return m


def solved_ids(results: Iterable[Result]) -> set[str]:
    """Problems solved: a verified proof, or (word problems) the right answer."""
    return {r.id for r in results if r.verified or (not r.statement and r.reference_match)}


def _pass_curve(counts: list[tuple[int, int]]) -> tuple[int, dict[int, float]]:
    """(n, {k: mean pass@k}) over problems; a problem with fewer samples than
    the usual n (an error, an early stop) counts its missing samples as wrong."""
    if not counts:
        return 0, {}
    n = max(c[0] for c in counts)
    if n == 0:
        return 0, {}
    curve = {}
    for k in ks_for(n):
        curve[k] = round(sum(pass_at_k(n, min(c, n), k) for _, c in counts) / len(counts), 4)
    return n, curve
