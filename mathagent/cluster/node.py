"""What runs on each node: its own Lean, behind its own Verifier.

`LeanNode` is a Ray actor (one per node, pinned to it). It finds the node's
Lean by the usual rules (see `nodes.node_search`), runs a `Verifier` with
the driver's limits and policy and one worker per CPU, and keeps its warm
pool between checks. Checks are the Verifier's own: the same audit, judge
and sandbox as on one machine, so the verdicts are the same.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, replace
from pathlib import Path

from mathagent.cluster.nodes import node_search
from mathagent.errors import MathAgentError
from mathagent.verify.session import ProofState, TacticResult, TacticSession
from mathagent.verify.tasks import VerifyTask
from mathagent.verify.toolchain import LeanToolchain, find_lean
from mathagent.verify.verdict import Verdict
from mathagent.verify.verifier import StatementCheck, Verifier, VerifyOptions


@dataclass(frozen=True)
class NodeInfo:
    """A node as the checker uses it: its Lean, or why it gets no checks."""

    node_id: str
    host: str
    workers: int = 0
    toolchain: LeanToolchain | None = None
    problem: str | None = None  # why it gets no checks
    sandbox: str = ""

    @property
    def short(self) -> str:
        return self.node_id[:8]

    def describe(self) -> str:
        where = f"node {self.short} ({self.host})"
        if self.toolchain is None:
            return f"{where}: it gets no checks: {self.problem}"
        tc = self.toolchain
        lean = f"Lean {tc.version} from {tc.origin}"
        if tc.prelude_only and "prelude-only" not in tc.origin:
            lean += " (prelude-only)"
        return f"{where}: {lean}, {self.workers} Lean worker(s), sandbox {self.sandbox}"


def one_line(message: str) -> str:
    """A multi-line error (`no Lean toolchain found. Tried:` and a list) on one line."""
    lines = [line.strip(" -") for line in message.splitlines() if line.strip()]
    return "; ".join(lines)


class LeanNode:
    """The Ray actor: one per node. Call `start` first; `close` stops its Lean."""

    def __init__(self) -> None:
        self._verifier: Verifier | None = None
        self._sessions: dict[str, TacticSession] = {}  # a driver's search -> its session on this node

    async def start(self, lean: Path | None, project: str | None, options: VerifyOptions, workers: int) -> NodeInfo:
        """Find this node's Lean (`lean`: the one named on the driver's command line) and open a Verifier on it;
        a node without one says why."""
        from mathagent.cluster.errors import import_ray

        node_id = import_ray().get_runtime_context().get_node_id()
        host = socket.gethostname()
        try:
            search = node_search(lean, project)
            toolchain = await asyncio.to_thread(find_lean, search)
            cache = cache_path_for(options, search.cache_dir)
            self._verifier = Verifier(toolchain, replace(options, workers=workers, cache_path=cache))
        except MathAgentError as exc:
            return NodeInfo(node_id, host, problem=f"no usable Lean ({one_line(exc.message)})")
        return NodeInfo(node_id, host, workers, toolchain, sandbox=self._verifier.sandbox_kind)

    async def verify(self, task: VerifyTask) -> Verdict:
        return await self._ready().verify(task)

    async def check_statement(self, formal_statement: str, header: str | None) -> StatementCheck:
        return await self._ready().check_statement(formal_statement, header)

    async def open_session(self, session_id: str, header: str, statement: str) -> ProofState:
        """Open a proof session on this node's Lean; it lives here until `close_session`."""
        session = self._ready().session()
        self._sessions[session_id] = session
        return await session.open(header, statement)

    async def session_apply(self, session_id: str, state: ProofState, tactic: str) -> TacticResult:
        session = self._sessions.get(session_id)
        if session is None:
            return TacticResult(None, "this node has no such proof session (it was closed)")
        return await session.apply(state, tactic)

    async def close_session(self, session_id: str) -> None:
        session = self._sessions.pop(session_id, None)
        if session is not None:
            await session.aclose()

    async def close(self) -> None:
        for session_id in list(self._sessions):
            await self.close_session(session_id)
        verifier, self._verifier = self._verifier, None
        if verifier is not None:
            await verifier.aclose()

    def _ready(self) -> Verifier:
        if self._verifier is None:
            raise MathAgentError("this node's verifier was not started (or is closed)")
        return self._verifier


def cache_path_for(options: VerifyOptions, cache_dir: Path) -> Path | None:
    """Where a node keeps its verdict cache (each node its own), if the driver wants one."""
    return cache_dir / "verdicts.sqlite3" if options.cache_path is not None else None
