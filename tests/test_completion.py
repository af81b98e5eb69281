"""Order of work in a batch: the first Lean starts before the rest is prepared."""

from __future__ import annotations

import asyncio

from mathagent.verify.completion import as_completed
from mathagent.verify.tasks import VerifyTask
from mathagent.verify.verdict import Verdict, VerdictKind


def test_a_check_starts_its_process_before_the_next_check_is_prepared() -> None:
    # A check prepares its text (plain Python), then starts Lean in a task of its own, as
    # `process.spawn` does. Were every check prepared before any process started, a batch of
    # 10,000 rows would keep every core idle for its whole preparation.
    events: list[str] = []

    async def verify(task: VerifyTask) -> Verdict:
        events.append(f"prepare {task.id}")
        started = asyncio.ensure_future(_start(task.id, events))
        await started
        return Verdict(id=task.id, verdict=VerdictKind.VERIFIED)

    async def run() -> list[int]:
        tasks = [VerifyTask(id=str(i), full_code="") for i in range(20)]
        return [i async for i, _ in as_completed(verify, tasks)]

    finished = asyncio.run(run())
    assert sorted(finished) == list(range(20))
    assert events.index("start 0") < events.index("prepare 2"), events[:6]
    assert events.index("start 1") < events.index("prepare 3"), events[:6]


async def _start(name: str, events: list[str]) -> None:
    events.append(f"start {name}")
    await asyncio.sleep(0)
