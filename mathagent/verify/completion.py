"""Run checks concurrently and hand back each result as it is ready."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable

from mathagent.verify.tasks import VerifyTask
from mathagent.verify.verdict import Verdict


async def as_completed(
    verify: Callable[[VerifyTask], Awaitable[Verdict]], tasks: Iterable[VerifyTask]
) -> AsyncGenerator[tuple[int, Verdict], None]:
    """`verify` every task concurrently; yield (index, verdict) as each is ready
    (in linear time: a queue, not a wait over everything pending). Leaving the
    loop early cancels the rest; an exception in one check ends them all."""
    done: asyncio.Queue[asyncio.Task[tuple[int, Verdict]]] = asyncio.Queue()

    async def one(index: int, task: VerifyTask) -> tuple[int, Verdict]:
        return index, await verify(task)

    pending: set[asyncio.Task[tuple[int, Verdict]]] = set()
    for i, t in enumerate(tasks):
        future = asyncio.ensure_future(one(i, t))
        future.add_done_callback(done.put_nowait)
        pending.add(future)
        # Let this check run up to its first wait (a Lean started, or a queue joined) before the
        # next one is prepared: otherwise every check's audit ran before any Lean started.
        await asyncio.sleep(0)
    try:
        while pending:
            finished = await done.get()
            pending.discard(finished)
            yield finished.result()
    finally:
        for p in pending:
            p.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
