"""`RayEngine`: the `Engine` protocol over engine replicas on a Ray cluster.

Which replicas (`plan_replicas`, pure logic):

- `[cluster] base_urls`: one replica per OpenAI-compatible endpoint (a
  `vllm serve` or LMDeploy per GPU node), placed round-robin over the nodes.
- an in-process engine (vLLM): one replica per GPU of the cluster
  (`tensor_parallel_size` GPUs each), or `[cluster] engine_replicas` of
  them (on CPUs where the cluster has no GPU: one CPU each).
- otherwise (a single `--base-url`, or no GPU and no replica count) there
  are none, and the driver generates as it does on one machine.

Each `generate` call goes to the least loaded replica, at most
`engine.concurrency` calls in flight per replica; more wait on the driver,
so neither the model nor Lean is flooded while the loop keeps both busy. A
lost replica's calls run again on another; a call cancelled by the loop is
cancelled on its replica (vLLM aborts the requests).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mathagent.cluster.errors import import_ray
from mathagent.cluster.nodes import NodeSpec
from mathagent.cluster.remote import actor_class, brief, call, close_all, kill, lost_errors, start_all
from mathagent.cluster.replica import EngineReplica
from mathagent.cluster.router import NoMembers, Router
from mathagent.config import EngineSettings, Settings
from mathagent.engines.base import Chat, EngineError, EngineInfo, Sample, Sampling
from mathagent.engines.families import DEFAULT_MODEL, resolve_model
from mathagent.engines.select import EngineChoice
from mathagent.errors import MathAgentError
from mathagent.vocabulary import Device, EngineKind

START_TIMEOUT_S = 3600.0  # a 20B model from the hub onto a fresh node takes a while


@dataclass(frozen=True)
class ReplicaPlan:
    """One replica to start: its engine and what Ray must give it."""

    choice: EngineChoice
    num_gpus: int = 0
    num_cpus: int = 0
    node_id: str | None = None  # the node it must run on (endpoints go round-robin over the nodes); None: Ray places it


def cluster_choice(choice: EngineChoice, engine: EngineSettings, gpus: int) -> EngineChoice:
    """On a cluster with GPUs, the engine `auto` (or `vllm`) picks on a GPU machine,
    even when the driver itself has none."""
    if gpus == 0 or choice.device != Device.CPU or engine.kind not in (EngineKind.AUTO, EngineKind.VLLM):
        return choice
    model = resolve_model(engine.model) if engine.model else DEFAULT_MODEL
    return EngineChoice(EngineKind.VLLM, model, None, Device.GPU, False, "the Ray cluster has GPUs")


def plan_replicas(choice: EngineChoice, settings: Settings, nodes: list[NodeSpec]) -> list[ReplicaPlan]:
    """The engine replicas to start on the cluster; none: generate in the driver."""
    engine, cluster = settings.engine, settings.cluster
    if cluster.base_urls:
        return [
            ReplicaPlan(
                EngineChoice(
                    EngineKind.OPENAI, engine.model, url, Device.SERVER, False, "an endpoint of [cluster] base_urls"
                ),
                node_id=nodes[i % len(nodes)].node_id if nodes else None,
            )
            for i, url in enumerate(cluster.base_urls)
        ]
    if choice.kind == EngineKind.OPENAI:
        return []  # one endpoint: the driver talks to it directly
    gpus = sum(n.gpus for n in nodes)
    choice = cluster_choice(choice, engine, gpus)
    on_gpu = choice.kind == EngineKind.VLLM and choice.device == Device.GPU
    count = cluster.engine_replicas
    if count is None:
        count = gpus // engine.tensor_parallel_size if on_gpu else 0
    if on_gpu:
        return [ReplicaPlan(choice, num_gpus=engine.tensor_parallel_size) for _ in range(count)]
    return [ReplicaPlan(choice, num_cpus=1) for _ in range(count)]


@dataclass(frozen=True)
class _Replica:
    index: int
    node_id: str
    actor: Any


class RayEngine:
    """Generation on engine replicas on the cluster. `start()` loads them (slow)."""

    def __init__(
        self, plans: list[ReplicaPlan], engine: EngineSettings, *, say: Callable[[str], None] = lambda _: None
    ) -> None:
        """`engine`: the `[engine]` settings, all a replica is given besides its plan."""
        if not plans:
            raise ValueError("RayEngine needs at least one replica")
        self.plans = plans
        self.engine = engine
        first = plans[0].choice
        self.info = EngineInfo(kind=first.kind, model=first.model or "(server default)", detail="on Ray")
        self._say = say
        self._router: Router[_Replica] = Router(depth=1)
        self._actors: list[Any] = []
        self._joining: asyncio.Task[None] | None = None  # replicas still loading after the run began
        self._failures: list[str] = []
        self.lost: list[int] = []  # replicas lost during the run
        self.retried = 0  # calls run again because their replica was lost

    async def start(self) -> None:
        """Start every replica; return once one has loaded its model (the others join as they load).
        Raises EngineError when none could."""
        try:
            await self._start()
        except BaseException:  # Ctrl-C while models load: the replicas started so far end too
            await self.aclose()
            raise

    async def _start(self) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        starts = []
        for index, plan in enumerate(self.plans):
            strategy: Any = (
                NodeAffinitySchedulingStrategy(node_id=plan.node_id, soft=False) if plan.node_id else "SPREAD"
            )
            actor = (
                actor_class(EngineReplica)
                .options(
                    num_gpus=plan.num_gpus,
                    num_cpus=plan.num_cpus,
                    max_concurrency=1000,
                    max_restarts=0,
                    scheduling_strategy=strategy,
                )
                .remote()
            )
            self._actors.append(actor)
            starts.append(self._start_one(index, plan, actor))
        # the run starts with the first replica ready; the others join as they finish loading
        self._joining = await start_all(starts, self._joined, grace_s=0.0)
        if not len(self._router) and self._joining is not None:
            await self._joining
            self._joining = None
        if not len(self._router):
            await self.aclose()
            raise EngineError(f"no engine replica started on the Ray cluster: {self._failures[0]}")

    def _joined(self, started: tuple[int, Any, tuple[EngineInfo, str] | str]) -> bool:
        index, actor, outcome = started
        if isinstance(outcome, str):
            self._failures.append(outcome)
            self._say(f"engine replica {index} did not start: {outcome}")
            kill(actor)
            return False
        info, node_id = outcome
        self.info = EngineInfo(kind=info.kind, model=info.model, detail=f"{info.detail}; replicas on Ray")
        self._router.add(f"replica-{index}", _Replica(index, node_id, actor), self.engine.concurrency)
        self._say(f"engine replica {index} on node {node_id[:8]}: {self.plans[index].choice.describe()}")
        return True

    async def _start_one(
        self, index: int, plan: ReplicaPlan, actor: Any
    ) -> tuple[int, Any, tuple[EngineInfo, str] | str]:
        try:
            started = await asyncio.wait_for(call(actor.start.remote(plan.choice, self.engine)), START_TIMEOUT_S)
        except asyncio.TimeoutError:
            return index, actor, f"not loaded within {START_TIMEOUT_S:g} s"
        except MathAgentError as exc:
            return index, actor, exc.message + (f" ({exc.hint})" if exc.hint else "")
        except import_ray().exceptions.RayError as exc:  # its node died, or it could not be placed
            return index, actor, f"its actor failed ({brief(exc)})"
        return index, actor, started

    async def generate(self, prompts: list[Chat], sampling: Sampling) -> list[list[Sample]]:
        while True:
            try:
                async with self._router.lease(None) as (name, replica):
                    try:
                        samples: list[list[Sample]] = await call(replica.actor.generate.remote(prompts, sampling))
                        return samples
                    except lost_errors() as exc:
                        self._lose(name, exc)
            except NoMembers:
                raise EngineError(
                    "every engine replica on the Ray cluster was lost",
                    hint="finished results are kept: run the same command again to resume (problems that failed "
                    "on the model are redone)",
                ) from None
            self.retried += 1

    def _lose(self, name: str, exc: BaseException) -> None:
        replica = self._router.remove(name)
        if replica is None:
            return
        self.lost.append(replica.index)
        kill(replica.actor)
        self._say(
            f"lost engine replica {replica.index} on node {replica.node_id[:8]}: {type(exc).__name__}; "
            f"its requests run again on the {len(self._router)} replica(s) left"
        )

    async def aclose(self) -> None:
        joining, self._joining = self._joining, None
        if joining is not None:
            joining.cancel()
            await asyncio.gather(joining, return_exceptions=True)
        actors, self._actors = self._actors, []
        live = [r.actor for r in self._router.members().values()]
        for name in list(self._router.members()):
            self._router.remove(name)
        await close_all(live, timeout_s=60.0)
        for actor in actors:
            kill(actor)
