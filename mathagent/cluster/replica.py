"""What runs on a node for generation: one engine replica.

`EngineReplica` is a Ray actor holding one engine built by the usual
`engines.select.build` on its node: in-process vLLM on the GPU Ray gave it
(or the CPU), the torch engine, or an OpenAI-compatible client for one
endpoint. It serves `generate` exactly like the engine itself; a cancelled
call aborts its requests in the engine.
"""

from __future__ import annotations

import asyncio

from mathagent.cluster.nodes import node_settings
from mathagent.config import Settings
from mathagent.engines import select
from mathagent.engines.base import Chat, Engine, EngineError, EngineInfo, Sample, Sampling
from mathagent.engines.openai import OpenAIEngine


class EngineReplica:
    """The Ray actor. Call `start` first (it loads the model); `close` releases it."""

    def __init__(self) -> None:
        self._engine: Engine | None = None

    async def start(self, choice: select.EngineChoice, settings: Settings) -> tuple[EngineInfo, str]:
        """Load the model; the engine's info and the id of the node it runs on."""
        from mathagent.cluster.errors import import_ray

        here = node_settings(settings)  # the embedded model and engine logs go to this node's cache folder
        # interactive: the engine core runs in this actor's process (no engine processes of its own)
        engine = await asyncio.to_thread(lambda: select.build(choice, here, interactive=True))
        self._engine = engine
        if isinstance(engine, OpenAIEngine):
            await engine.model()  # reach the server now: a wrong URL fails here, named
        return engine.info, import_ray().get_runtime_context().get_node_id()

    async def generate(self, prompts: list[Chat], sampling: Sampling) -> list[list[Sample]]:
        if self._engine is None:
            raise EngineError("this engine replica was not started (or is closed)")
        return await self._engine.generate(prompts, sampling)

    async def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.aclose()
