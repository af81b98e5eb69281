"""How much the agent may spend on one problem."""

from __future__ import annotations

from dataclasses import dataclass

from mathagent.vocabulary import StrategyKind


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
    # How a statement is proved (`--strategy`), and the tactic search's budget when it runs
    strategy: StrategyKind = StrategyKind.WHOLE
    expansions: int = 64  # states the search expands (one batched generation each)
    candidates: int = 8  # tactics asked for per state

    @property
    def searches(self) -> bool:
        return self.strategy is not StrategyKind.WHOLE
