"""What runs on a node for generation: one engine replica.

`EngineReplica` is a Ray actor holding one engine built by the usual
`engines.select.build` on its node: in-process vLLM on the GPU Ray gave it
(or the CPU), the torch engine, or an OpenAI-compatible client for one
endpoint. It serves `generate` exactly like the engine itself; a cancelled
call aborts its requests in the engine.
"""

from __future__ import annotations

import asyncio

from mathagent.config import EngineSettings, load_settings
from mathagent.engines import select
from mathagent.engines.base import Chat, Engine, EngineError, EngineInfo, Sample, Sampling
from mathagent.engines.openai import OpenAIEngine


class EngineReplica:
    """The Ray actor. Call `start` first (it loads the model); `close` releases it."""

    def __init__(self) -> None:
        self._engine: Engine | None = None

    async def start(self, choice: select.EngineChoice, engine: EngineSettings) -> tuple[EngineInfo, str]:
        """Load the model (`engine`: the driver's `[engine]` settings); the engine's info and the id of
        the node it runs on."""
        from mathagent.cluster.errors import import_ray

        cache_dir = load_settings().cache_dir  # the embedded model and engine logs go to this node's cache folder
        # interactive: the engine core runs in this actor's process (no engine processes of its own)
        built = await asyncio.to_thread(lambda: select.build(choice, engine, cache_dir, interactive=True))
        self._engine = built
        if isinstance(built, OpenAIEngine):
            await built.model()  # reach the server now: a wrong URL fails here, named
        return built.info, import_ray().get_runtime_context().get_node_id()

    async def generate(self, prompts: list[Chat], sampling: Sampling) -> list[list[Sample]]:
        if self._engine is None:
            raise EngineError("this engine replica was not started (or is closed)")
        return await self._engine.generate(prompts, sampling)

    async def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.aclose()
