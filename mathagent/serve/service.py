"""The service's core: one verifier shared by every request, behind a bounded queue.

Every request's checks go to the same `Verifier`, so identical checks in
flight run once and the verdict cache spans requests. A request is admitted
whole or not at all: when its checks would take the queue past its
capacity it is refused at once (429, with a `Retry-After` estimated from
the rate checks have been finishing at), so memory stays bounded however many
clients push. A cancelled request (its client went away) cancels its
checks, which kills their Lean processes. Draining (SIGTERM) stops
admitting, and after the grace period cancels what is still running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from mathagent import __version__
from mathagent.serve.limits import Refused, ServeLimits
from mathagent.serve.metrics import ServiceCounters
from mathagent.serve.statements import Statements
from mathagent.verify import verdict as codes
from mathagent.verify.tasks import VerifyTask
from mathagent.verify.toolchain import LeanToolchain
from mathagent.verify.verdict import Verdict, VerdictKind
from mathagent.verify.verifier import Verifier, VerifyOptions
from mathagent.vocabulary import Pool, SandboxKind

log = logging.getLogger("mathagent.serve")


class ShuttingDown(Exception):
    """The server stopped the request's checks because it is shutting down."""


@dataclass(frozen=True)
class ServiceConfig:
    toolchain: LeanToolchain
    options: VerifyOptions
    limits: ServeLimits
    statements: Statements | None = None  # --tasks: what kimina snippet ids must prove


class CheckService:
    """Admit, run and account for checks. Enter it (async with) before use."""

    def __init__(self, config: ServiceConfig, metrics: ServiceCounters | None = None) -> None:
        self.config = config
        self.limits = config.limits
        self.metrics = metrics or ServiceCounters()
        self.verifier = Verifier(config.toolchain, config.options)
        self.depth = 0  # checks admitted and not finished
        self.draining = False
        self._running: set[asyncio.Task[Verdict]] = set()
        self._finish_times: deque[float] = deque(maxlen=200)  # when recent checks finished, for Retry-After
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_timer: asyncio.TimerHandle | None = None

    async def __aenter__(self) -> CheckService:
        self._loop = asyncio.get_running_loop()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Cancel whatever still runs, then stop every warm Lean server."""
        if self._stop_timer is not None:
            self._stop_timer.cancel()
        await self._cancel_running()
        await self.verifier.aclose()

    # ---------------------------------------------------------------- checks

    async def check(self, tasks: Sequence[VerifyTask], timeout_s: float) -> list[Verdict]:
        """Every task's verdict, in order. Raises Refused (queue full, draining) before
        anything runs, ShuttingDown when the server called the checks off."""
        self._admit(len(tasks))
        running = [asyncio.ensure_future(self._one(task, timeout_s)) for task in tasks]
        for future in running:
            future.add_done_callback(self._finished)  # also when cancelled before it started
        self._running.update(running)
        try:
            # if this request is cancelled, gather cancels every check and waits for it (Lean is killed)
            results = await asyncio.gather(*running, return_exceptions=True)
        finally:
            self._running.difference_update(running)
        verdicts: list[Verdict] = []
        for result in results:
            if isinstance(result, asyncio.CancelledError):
                raise ShuttingDown("the server is shutting down; the check was cancelled")
            if isinstance(result, BaseException):
                raise result
            verdicts.append(result)
        return verdicts

    def _admit(self, count: int) -> None:
        if self.draining:
            raise Refused(503, "shutting_down", "the server is shutting down", headers={"Retry-After": "5"})
        capacity = self.limits.max_queue
        if count > capacity:  # waiting would not help
            detail = f"the request has {count} checks, more than the queue holds ({capacity}): split it"
            raise Refused(413, "limit_exceeded", detail, "max_queue", capacity, count)
        if self.depth + count > capacity:
            retry = self.retry_after(count)
            detail = f"the queue is full ({self.depth} of {capacity} checks waiting or running); retry in {retry} s"
            raise Refused(
                429, "queue_full", detail, "max_queue", capacity, self.depth + count, {"Retry-After": str(retry)}
            )
        self.depth += count

    def retry_after(self, count: int = 1) -> int:
        """Seconds until the queue has room for `count` more checks, at the recent rate of finishing (1 to 60)."""
        excess = self.depth + count - self.limits.max_queue
        now = time.monotonic()
        recent = [t for t in self._finish_times if now - t < 60]
        if len(recent) < 2:
            return 5
        rate = len(recent) / max(now - recent[0], 1e-3)  # checks finished per second lately
        return max(1, min(60, math.ceil(excess / rate)))

    async def _one(self, task: VerifyTask, timeout_s: float) -> Verdict:
        started = time.monotonic()
        try:
            verdict = await self.verifier.verify(task, timeout_s=timeout_s)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every request gets an answer; the traceback goes to the log
            log.exception("the verifier failed on %r", task.id)
            verdict = Verdict(
                id=task.id,
                verdict=VerdictKind.ERROR,
                reasons=[codes.CRASH],
                message=f"the verifier failed: {type(exc).__name__}: {exc}",
                sandbox=SandboxKind.NOT_RUN,
            )
        finished = time.monotonic()
        self._finish_times.append(finished)
        self.metrics.check_done(str(verdict.verdict), finished - started)
        return verdict

    def _finished(self, _: asyncio.Future[Verdict]) -> None:
        self.depth -= 1

    # ---------------------------------------------------------------- shutdown

    def begin_drain(self, grace_s: float) -> None:
        """Stop admitting; cancel what still runs after `grace_s` seconds. Call on the event loop."""
        if self.draining:
            return
        self.draining = True
        log.warning("shutting down: %d checks in flight, %g s to finish", self.depth, grace_s)
        loop = asyncio.get_running_loop()
        self._stop_timer = loop.call_later(grace_s, lambda: asyncio.ensure_future(self._cancel_running()))

    def drain_soon(self, grace_s: float) -> None:
        """`begin_drain` from a signal handler or another thread."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.begin_drain, grace_s)

    async def _cancel_running(self) -> None:
        running = list(self._running)
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)

    # ---------------------------------------------------------------- state

    def lean_processes(self) -> int:
        """Live Lean processes this server started (warm servers and running checks)."""
        lean = str(self.config.toolchain.lean)
        count = 0
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process().children(recursive=True):
                with contextlib.suppress(psutil.Error, IndexError):
                    if child.exe() == lean or child.cmdline()[0] == lean:
                        count += 1
        return count

    def library(self) -> str:
        """What the Lean can import: prelude-only, Mathlib, or Init only."""
        toolchain = self.config.toolchain
        if toolchain.prelude_only:
            return "prelude-only"
        if any((Path(p) / "Mathlib.olean").is_file() for p in toolchain.lean_path):
            return "Mathlib"
        return "Init (no Mathlib)"

    def pool_state(self) -> dict[str, Any]:
        options = self.config.options
        state: dict[str, Any] = {"kind": options.pool, "workers": options.workers}
        warm = self.verifier.warm_pool
        if options.pool == Pool.WARM:
            state.update(warm.state() if warm is not None else {"idle": 0, "busy": 0, "started": 0})
        return state

    def health(self) -> dict[str, Any]:
        toolchain = self.config.toolchain
        statements = self.config.statements
        return {
            "status": "draining" if self.draining else "ok",
            "mathagent": __version__,
            "lean": {"version": toolchain.version, "version_line": toolchain.version_line, "library": self.library()},
            "sandbox": self.verifier.sandbox_kind,
            "pool": self.pool_state(),
            "queue": {"depth": self.depth, "capacity": self.limits.max_queue},
            "lean_processes": self.lean_processes(),
            "tasks": len(statements) if statements is not None else None,
            "limits": {
                "max_body_bytes": self.limits.max_body_bytes,
                "max_snippets": self.limits.max_snippets,
                "max_bytes": self.limits.max_code_bytes,
                "timeout": self.limits.default_timeout_s,
                "max_timeout": self.limits.max_timeout_s,
                "max_queue": self.limits.max_queue,
                "header_timeout": self.limits.header_timeout_s,
                "body_timeout": self.limits.body_timeout_s,
                "max_receiving": self.limits.max_receiving,
            },
        }

    def gauges(self) -> dict[str, tuple[str, float]]:
        gauges: dict[str, tuple[str, float]] = {
            "mathagent_queue_depth": ("Checks admitted and not yet finished.", self.depth),
            "mathagent_queue_capacity": ("Checks the queue holds before answering 429.", self.limits.max_queue),
            "mathagent_lean_processes": ("Live Lean processes started by this server.", self.lean_processes()),
            "mathagent_draining": ("1 while the server is shutting down.", int(self.draining)),
        }
        pool = self.pool_state()
        if "idle" in pool:
            gauges["mathagent_warm_servers_idle"] = ("Warm Lean servers waiting for a check.", pool["idle"])
            gauges["mathagent_warm_servers_busy"] = ("Warm Lean servers checking.", pool["busy"])
        return gauges
