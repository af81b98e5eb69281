"""How much the agent may spend on one problem."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Budget:
    """How much the loop may spend on one problem."""

    rounds: int = 4  # 1 = no repair
    samples: int = 4  # proofs sampled in round 1; repairs per later round
    max_tokens: int = 2048  # per generated proof
    time_limit_s: float | None = None  # per problem, wall clock
    solve: bool = True  # write a natural-language solution of informal problems
    solve_when_formal: bool = True  # ... also when a formal statement is given
    solve_samples: int = 1  # natural-language solutions per problem (majority vote)
    # Evaluation: verify every round-1 proof even after one passes (pass@k needs
    # the count), and start repairs only once round 1 is all in and failed.
    exhaustive: bool = False
