"""Proof sessions against the real (prelude-only) Lean: goals read, tactics
applied, errors returned, limits kept, nothing left running.

This Lean has no Init, so no tactic can close a goal here (`exact`, `rfl`,
`simp` come from Init); the builtin `intro | pat => ?_` changes the goal,
which is enough to see each part work. Closing goals needs Mathlib
(tests/test_mathlib.py)."""

from __future__ import annotations

import asyncio

import pytest

from conftest import PRELUDE_HEADER, lean_processes
from mathagent.verify import sandbox
from mathagent.verify.session import ProofSession, ProofState, SessionError, SessionLimits, proof_text
from mathagent.verify.toolchain import LeanToolchain

STATEMENT = "theorem two_imp : Eq two two → Eq four four → Eq two two :="
LIMITS = SessionLimits(timeout_s=30, memory_mb=4096)


def session(lean: LeanToolchain, limits: SessionLimits = LIMITS) -> ProofSession:
    return ProofSession(lean, limits, sandbox.choose("auto"))


def test_goals_are_read_and_a_tactic_changes_them(lean: LeanToolchain, no_leftover_lean: None) -> None:
    async def go() -> tuple[ProofState, ProofState, ProofState]:
        async with session(lean) as s:
            start = await s.open(PRELUDE_HEADER, STATEMENT)
            one = await s.apply(start, "intro | h => ?_")
            assert one.state is not None, one.error
            two = await s.apply(one.state, "intro | k => ?_")
            assert two.state is not None, two.error
            return start, one.state, two.state

    start, one, two = asyncio.run(go())
    assert start.goals == ("⊢ Eq two two → Eq four four → Eq two two",) and not start.solved
    assert one.tactics == ("intro | h => ?_",)
    assert "h : Eq two two" in one.goals[0] and one.goals[0].endswith("⊢ Eq four four → Eq two two")
    assert two.goals[0].endswith("⊢ Eq two two") and two.key != one.key


def test_a_failing_tactic_returns_leans_error_and_the_state_is_kept(
    lean: LeanToolchain, no_leftover_lean: None
) -> None:
    async def go() -> tuple[str, str, ProofState | None]:
        async with session(lean) as s:
            start = await s.open(PRELUDE_HEADER, STATEMENT)
            unknown = await s.apply(start, "exact Eq.refl two")  # Init's `exact`: not on this Lean
            bad_pattern = await s.apply(start, "intro | Eq.refl _ => ?_")  # needs PProd, which the header lacks
            again = await s.apply(start, "intro | h => ?_")  # the session goes on from the old state
            assert unknown.state is None and bad_pattern.state is None
            return unknown.error, bad_pattern.error, again.state

    unknown, bad_pattern, again = asyncio.run(go())
    assert unknown == "unknown tactic"
    assert "PProd" in bad_pattern
    assert again is not None and again.tactics == ("intro | h => ?_",)


def test_a_tactic_that_ends_the_block_and_declares_a_theorem_fails(lean: LeanToolchain, no_leftover_lean: None) -> None:
    # a command in a tactic ends the `by` block (Lean parses it as the next command): Lean's own list of
    # the document's declarations shows it
    escape = "intro | h => ?_\ntheorem stolen : Eq two two := Eq.refl two"
    assert proof_text(STATEMENT, ("intro | h => ?_",)) == " by\n  intro | h => ?_\n"

    async def go() -> str:
        async with session(lean) as s:
            result = await s.apply(await s.open(PRELUDE_HEADER, STATEMENT), escape)
            assert result.state is None
            return result.error

    assert asyncio.run(go()) == "the tactic's text ends the proof and declares stolen"


def test_a_broken_header_or_statement_is_an_error_not_a_state(lean: LeanToolchain, no_leftover_lean: None) -> None:
    async def go(header: str, statement: str) -> None:
        async with session(lean) as s:
            await s.open(header, statement)

    with pytest.raises(SessionError, match="header does not elaborate"):
        asyncio.run(go(PRELUDE_HEADER + "def broken : N := nope\n", STATEMENT))
    with pytest.raises(SessionError, match="must end with"):
        asyncio.run(go(PRELUDE_HEADER, "theorem t : Eq two two"))


def test_a_tactic_past_the_time_limit_stops_its_server_and_leaves_nothing(
    lean: LeanToolchain, no_leftover_lean: None
) -> None:
    async def go() -> tuple[bool, str, int, bool]:
        async with session(lean) as s:
            start = await s.open(PRELUDE_HEADER, STATEMENT)
            s.limits = SessionLimits(timeout_s=0.0005, memory_mb=4096)  # no tactic answers this fast
            late = await s.apply(start, "intro | h => ?_")
            running = len(lean_processes(lean))
            s.limits = LIMITS
            again = await s.apply(start, "intro | h => ?_")  # a fresh server takes over
            return late.timed_out, late.error, running, again.state is not None

    timed_out, error, running, recovered = asyncio.run(go())
    assert timed_out and "time limit" in error
    assert running == 0  # the stopped server is gone before the next tactic
    assert recovered
