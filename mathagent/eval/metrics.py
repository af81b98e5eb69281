"""The numbers a benchmark run is judged by, computed from its result rows.

Formal problems count as solved only with a verified proof; natural-language
problems by their answer's equivalence to the dataset's answer (sympy).
pass@k uses the unbiased estimator over n samples per problem (Chen et al.,
2021): 1 - C(n-c, k) / C(n, k), with c the correct samples among n.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from math import comb
from typing import Any


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
    problems: int = 0
    formal: int = 0
    informal: int = 0  # natural-language problems with a reference answer
    formal_solved: int = 0
    informal_solved: int = 0  # majority answer equals the reference
    errors: int = 0
    formal_samples: int = 0  # n per formal problem (round-1 proofs)
    informal_samples: int = 0  # n per natural-language problem
    formal_pass_at_k: dict[int, float] = field(default_factory=dict)
    informal_pass_at_k: dict[int, float] = field(default_factory=dict)
    solved_by_round: dict[int, int] = field(default_factory=dict)  # round -> formal problems verified by then
    attempts_per_solved: float | None = None
    tokens_per_solved: float | None = None
    model_s: float = 0.0
    lean_s: float = 0.0
    wall_s: float = 0.0
    verdicts: dict[str, int] = field(default_factory=dict)  # over every proof attempt
    reasons: dict[str, int] = field(default_factory=dict)  # over every rejected attempt

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compute(rows: list[dict[str, Any]]) -> Metrics:
    m = Metrics(problems=len(rows))
    formal_counts: list[tuple[int, int]] = []
    informal_counts: list[tuple[int, int]] = []
    solved_rounds: list[int] = []
    solved_attempts: list[int] = []
    solved_tokens: list[int] = []
    verdicts: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    max_round = 1
    for row in rows:
        if row.get("status") == "error":
            m.errors += 1
        m.model_s += float(row.get("model_s") or 0)
        m.lean_s += float(row.get("lean_s") or 0)
        m.wall_s += float(row.get("wall_s") or 0)
        attempts = row.get("attempts") or []
        for attempt in attempts:
            verdicts[attempt.get("verdict") or "none"] += 1
            for reason in attempt.get("reasons") or []:
                reasons[reason] += 1
            max_round = max(max_round, int(attempt.get("round") or 1))
        if row.get("statement") or attempts or (row.get("status") == "error" and not row.get("informal")):
            m.formal += 1
            first = [a for a in attempts if a.get("round") == 1]
            formal_counts.append((len(first), sum(1 for a in first if a.get("verdict") == "verified")))
            if row.get("status") == "verified":
                m.formal_solved += 1
                index = row.get("verified_attempt") or 0
                solved_rounds.append(int(attempts[index].get("round") or 1) if index < len(attempts) else 1)
                solved_attempts.append(index + 1)
                solved_tokens.append(int(row.get("completion_tokens") or 0))
        elif row.get("reference_answer") is not None:
            m.informal += 1
            matches = row.get("sample_matches") or []
            informal_counts.append((len(matches), sum(1 for x in matches if x)))
            if row.get("reference_match"):
                m.informal_solved += 1
                solved_tokens.append(int(row.get("completion_tokens") or 0))
    m.formal_samples, m.formal_pass_at_k = _pass_curve(formal_counts)
    m.informal_samples, m.informal_pass_at_k = _pass_curve(informal_counts)
    m.solved_by_round = {r: sum(1 for x in solved_rounds if x <= r) for r in range(1, max_round + 1)}
    if solved_attempts:
        m.attempts_per_solved = round(sum(solved_attempts) / len(solved_attempts), 2)
    if solved_tokens:
        m.tokens_per_solved = round(sum(solved_tokens) / len(solved_tokens), 1)
    m.model_s, m.lean_s, m.wall_s = round(m.model_s, 2), round(m.lean_s, 2), round(m.wall_s, 2)
    m.verdicts = dict(verdicts.most_common())
    m.reasons = dict(reasons.most_common())
    return m


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
