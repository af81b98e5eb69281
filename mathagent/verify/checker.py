"""What the agent loop and the commands need from a verifier.

`Verifier` (this machine's pool) is one; `mathagent.cluster.RayChecker`
(Lean on every node of a Ray cluster) is the other. Both give the same
verdicts for the same tasks: the checks themselves are the Verifier's
wherever they run.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable
from typing import Protocol

from mathagent.verify.completion import as_completed
from mathagent.verify.session import TacticSession
from mathagent.verify.tasks import VerifyTask
from mathagent.verify.toolchain import LeanToolchain
from mathagent.verify.verdict import Verdict
from mathagent.verify.verifier import StatementCheck, VerifyOptions


class Checker(Protocol):
    """Checks Lean tasks; an async context manager like `Verifier`."""

    @property
    def toolchain(self) -> LeanToolchain:
        """The Lean the checks run on (on a cluster: the one a node with Mathlib, else the first node, has)."""
        ...

    @property
    def options(self) -> VerifyOptions:
        """Limits and policy of every check, and the default header."""
        ...

    async def verify(self, task: VerifyTask) -> Verdict:
        """One task's verdict; a bad proof is a verdict, never an exception."""
        ...

    async def check_statement(self, formal_statement: str, header: str | None = None) -> StatementCheck:
        """Does the statement elaborate under the header?"""
        ...

    def verify_many(self, tasks: Iterable[VerifyTask]) -> AsyncGenerator[tuple[int, Verdict], None]:
        """(index in `tasks`, verdict) as each is ready; leaving early cancels the rest."""
        ...

    def session(self) -> TacticSession:
        """A proof session for one theorem (on a cluster: on one node for its whole life)."""
        ...

    async def aclose(self) -> None:
        """Stop every Lean process the checker started."""
        ...


__all__ = ["Checker", "as_completed"]
