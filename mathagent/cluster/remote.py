"""Calling actors: awaiting a call, cancelling it, and telling a lost node from a failed call."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from mathagent.cluster.errors import import_ray
from mathagent.errors import MathAgentError

T = TypeVar("T")


@functools.cache
def actor_class(cls: type) -> Any:
    """`cls` as a Ray actor class (made once per class)."""
    return import_ray().remote(cls)


@functools.lru_cache(maxsize=1)
def lost_errors() -> tuple[type[BaseException], ...]:
    """What awaiting a call raises when the actor, its worker or its node is gone."""
    rx = import_ray().exceptions
    return (
        rx.RayActorError,  # ActorDiedError, ActorUnavailableError
        rx.WorkerCrashedError,
        rx.NodeDiedError,
        rx.ObjectLostError,
        rx.LocalRayletDiedError,
    )


async def call(ref: Any) -> Any:
    """The result of an actor call. If the caller is cancelled, so is the call,
    on its node (an async actor's coroutine gets CancelledError, and the Lean
    it runs is killed). An error mathagent raised there is raised here as itself."""
    ray = import_ray()
    try:
        return await ref
    except asyncio.CancelledError:
        ray.cancel(ref)
        raise
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, MathAgentError):
            raise cause from None
        raise


def brief(exc: BaseException) -> str:
    """A Ray error in one line: its kind and the first line of what it says."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return type(exc).__name__ + (f": {lines[0][:200]}" if lines else "")


def kill(actor: Any) -> None:
    """End an actor now (its process, and with it every Lean it started)."""
    ray = import_ray()
    gone: tuple[type[BaseException], ...] = (ValueError, *lost_errors())
    try:
        ray.kill(actor, no_restart=True)
    except gone:
        pass  # already gone


async def close_all(actors: list[Any], timeout_s: float = 30.0) -> None:
    """Ask each actor to close what it started (its `close` method), then end it."""
    if not actors:
        return
    closing = [asyncio.ensure_future(call(a.close.remote())) for a in actors]
    try:
        await asyncio.wait(closing, timeout=timeout_s)
    finally:
        for c in closing:
            if not c.done():
                c.cancel()
            elif not c.cancelled():
                c.exception()  # retrieved: a node lost on the way out is no news
        for actor in actors:
            kill(actor)


async def start_all(
    starts: Sequence[Awaitable[T]], joined: Callable[[T], bool], *, grace_s: float
) -> asyncio.Task[None] | None:
    """Run the start-ups of many actors; hand each result to `joined` as it comes
    (it says whether that member is usable). Return once one member is usable
    and `grace_s` more seconds have passed, or all are done: a node that died
    a moment ago (and that Ray still lists as alive) must not hold the run up.
    The rest go on in the returned task, joining as they finish."""
    loop = asyncio.get_running_loop()
    pending = {asyncio.ensure_future(s) for s in starts}
    deadline: float | None = None
    try:
        while pending:
            timeout = None if deadline is None else max(0.0, deadline - loop.time())
            done, pending = await asyncio.wait(pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if not done:
                break
            for task in done:
                if joined(task.result()) and deadline is None:
                    deadline = loop.time() + grace_s
    except BaseException:
        for task in pending:
            task.cancel()
        raise
    if not pending:
        return None
    later = pending

    async def rest() -> None:
        try:
            for next_done in asyncio.as_completed(later):
                joined(await next_done)
        finally:
            for task in later:
                task.cancel()

    return asyncio.ensure_future(rest())
