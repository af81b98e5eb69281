"""A proof session: one theorem under a header, driven a tactic at a time.

The backend is the Lean language server the warm pool already drives (one
sandboxed `lean --worker`, the same time and memory limits as a check). A
state is the list of tactics applied so far; applying a tactic makes the
document `header + statement by + tactics` and asks the server for the goals
after the last tactic with `$/lean/plainGoal`. Lean re-elaborates only what
changed (the header and the earlier tactics are snapshots it keeps), so a
step costs about the tactic itself.

Nothing here decides that a proof is correct: a state with no goals is only
a candidate, and the caller re-checks the assembled proof with the verifier
(tactic modes of REPLs have accepted false proofs before).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

from mathagent.errors import VerifierError
from mathagent.verify.closing import AsyncClosing
from mathagent.verify.judge import RunOutcome
from mathagent.verify.leantext import parse_statement
from mathagent.verify.messages import LeanMessage, parse_output
from mathagent.verify.toolchain import LeanToolchain
from mathagent.verify.warm import DOCUMENT_URI, LeanServer, WarmConfig, WorkerCrashed, supports_fast_report
from mathagent.vocabulary import SandboxKind

_INDENT = "  "


class SessionError(VerifierError):
    """The theorem cannot be opened: its header or statement does not elaborate."""


@dataclass(frozen=True)
class ProofState:
    """The tactics applied so far and the goals Lean shows after them."""

    tactics: tuple[str, ...]
    goals: tuple[str, ...]  # as Lean pretty-prints them, hypotheses and `⊢ target`

    @property
    def solved(self) -> bool:
        return not self.goals

    @property
    def key(self) -> str:
        """The same goals reached by different tactics are one state (for search dedup)."""
        return "\n\n".join(self.goals)

    def pretty(self) -> str:
        """The goals as a prover model is shown them ("no goals" once solved)."""
        return "\n\n".join(self.goals) if self.goals else "no goals"


@dataclass(frozen=True)
class TacticResult:
    """What one tactic did: the new state, or Lean's error (and the state is unchanged)."""

    state: ProofState | None
    error: str = ""
    time_s: float = 0.0
    timed_out: bool = False


@dataclass(frozen=True)
class SessionLimits:
    timeout_s: float = 60.0  # per tactic, as per check
    memory_mb: int | None = 8192


def tactic_lines(tactics: tuple[str, ...]) -> str:
    """The tactics as the body of a `by` block: each on its own lines, indented
    under the block (a command in a tactic's text still ends the block there:
    the session sees it in Lean's list of declarations)."""
    lines = []
    for tactic in tactics:
        lines += [_INDENT + line if line.strip() else "" for line in tactic.strip("\n").splitlines()]
    return "".join(line + "\n" for line in lines)


def proof_text(statement: str, tactics: tuple[str, ...]) -> str:
    """The proof to append to `statement` (which ends in `:=` or `:= by`)."""
    body = tactic_lines(tactics)
    return ("\n" if parse_statement(statement).ends_with_by else " by\n") + body


def opening(header: str, statement: str) -> tuple[str, str]:
    """(the header ending in a newline, the header and `statement` up to its `by`)
    for a session to open; SessionError when `statement` is not one."""
    try:
        parsed = parse_statement(statement)
    except ValueError as exc:
        raise SessionError(str(exc)) from None
    header = header if not header or header.endswith("\n") else header + "\n"
    return header, header + parsed.head + ("" if parsed.ends_with_by else " by")


class TacticSession(Protocol):
    """What a search needs of a session: `ProofSession` here, a node's session on a Ray cluster."""

    async def open(self, header: str, statement: str) -> ProofState: ...

    async def apply(self, state: ProofState, tactic: str) -> TacticResult: ...

    async def aclose(self) -> None: ...

    async def __aenter__(self) -> TacticSession: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class ProofSession(AsyncClosing):
    """One theorem on its own language server. Use as an async context manager."""

    def __init__(self, toolchain: LeanToolchain, limits: SessionLimits, sandbox_kind: SandboxKind) -> None:
        self.toolchain = toolchain
        self.limits = limits
        self.sandbox_kind = sandbox_kind
        self._server: LeanServer | None = None
        self._head = ""  # header + statement up to `by`, then a newline
        self._header = ""
        self._declared: frozenset[str] | None = None  # what the opened document declares, as Lean reported it
        self.applied = 0  # tactics run, for stats

    async def open(self, header: str, statement: str) -> ProofState:
        """Start on `statement` (ending in `:=` or `:= by`) under `header`: its goals."""
        self._header, head = opening(header, statement)
        self._head = head + "\n"
        self._declared = None
        result = await self._run(())
        if result.state is None:
            raise SessionError(f"the statement does not elaborate: {result.error}")
        return result.state

    async def apply(self, state: ProofState, tactic: str) -> TacticResult:
        """Run `tactic` after `state`'s tactics."""
        if not tactic.strip():
            return TacticResult(None, "an empty tactic")
        self.applied += 1
        return await self._run((*state.tactics, tactic))

    async def aclose(self) -> None:
        """Stop the session's server (a later tactic starts a fresh one)."""
        if self._server is not None:
            server, self._server = self._server, None
            await server.close()

    # ---------------------------------------------------------------- one version of the document

    async def _run(self, tactics: tuple[str, ...]) -> TacticResult:
        started = time.monotonic()
        server = await self._ready()
        body = tactic_lines(tactics)
        text = self._head + body
        try:
            outcome = await server.check(text, deadline=started + self.limits.timeout_s, limited=False)
        except WorkerCrashed as exc:
            await self.aclose()
            return TacticResult(None, f"Lean stopped: {exc}", time.monotonic() - started)
        if outcome.timed_out or outcome.memory_exceeded:
            await self.aclose()  # a server stopped in the middle is never reused
            why = "time limit" if outcome.timed_out else "memory limit"
            return TacticResult(None, f"the tactic ran past the {why}", time.monotonic() - started, timed_out=True)
        first_tactic_line = self._head.count("\n") + 1  # 1-based, as Lean's messages count
        after = first_tactic_line + body.count("\n")  # the line after the tactics
        last_start = after - tactic_lines(tactics[-1:]).count("\n") if tactics else after
        failure = _failure(outcome, header_lines=self._header.count("\n"), tactic_from=last_start)
        failure = failure or self._declares_more(outcome)
        if failure:
            return TacticResult(None, failure, time.monotonic() - started)
        goals = await self._goals(server, line=after - 1)  # 0-based: the empty line after the tactics
        if goals is None:
            return TacticResult(None, "Lean shows no goal state after this tactic", time.monotonic() - started)
        if not goals and _has_error(outcome):
            return TacticResult(None, "no goals left, but the proof has errors", time.monotonic() - started)
        return TacticResult(ProofState(tactics, goals), "", time.monotonic() - started)

    def _declares_more(self, outcome: RunOutcome) -> str:
        """A tactic whose text ended the proof and declared something of its own
        (a command at the tactics' column starts after the `by` block), as Lean's
        list of the document's declarations shows; "" if none."""
        if outcome.declarations is None:
            return ""  # Lean sent no list: the verifier's check of the whole proof still stands
        names = frozenset(d.name for d in outcome.declarations)
        if self._declared is None:
            self._declared = names  # the opened document: the header's and the theorem's
            return ""
        extra = sorted(names - self._declared)
        return f"the tactic's text ends the proof and declares {', '.join(extra)}" if extra else ""

    async def _ready(self) -> LeanServer:
        if self._server is None:
            config = WarmConfig(
                workers=1,
                timeout_s=self.limits.timeout_s,
                memory_mb=self.limits.memory_mb,
                sandbox_kind=self.sandbox_kind,
            )
            fast = await supports_fast_report(self.toolchain, config)
            server = LeanServer(self.toolchain, config, self._header, fast)
            try:
                await server.start()
            except BaseException:
                await server.close()
                raise
            self._server = server
        return self._server

    async def _goals(self, server: LeanServer, *, line: int) -> tuple[str, ...] | None:
        params = {"textDocument": {"uri": DOCUMENT_URI}, "position": {"line": line, "character": 0}}
        try:
            answer = await asyncio.wait_for(server.request("$/lean/plainGoal", params), self.limits.timeout_s)
        except (WorkerCrashed, asyncio.TimeoutError):
            await self.aclose()
            return None
        if not isinstance(answer, dict) or not isinstance(answer.get("goals"), list):
            return None
        return tuple(str(g) for g in answer["goals"])


def _errors(outcome: RunOutcome) -> list[LeanMessage]:
    return [m for m in parse_output(outcome.stdout).messages if m.severity == "error"]


def _has_error(outcome: RunOutcome) -> bool:
    return bool(_errors(outcome))


def _failure(outcome: RunOutcome, *, header_lines: int, tactic_from: int) -> str:
    """Lean's error about the last tactic, or about the header or statement; "" if none.

    Errors Lean places on the statement's own lines are the open `by` block's
    ("unsolved goals" spans from `by` to the end): the state, not a failure."""
    for message in _errors(outcome):
        if message.line <= header_lines:
            return f"the header does not elaborate: line {message.line}: {message.text}"
        if message.line >= tactic_from:
            return message.text
    return ""
