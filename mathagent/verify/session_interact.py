"""A proof session on the Lean REPL's tactic mode: `[verify] session_backend = "leaninteract"`.

The REPL (leanprover-community/repl, in the build LeanInteract makes of it)
answers JSON requests on stdin, one per blank-line-separated block. The
theorem is opened as one `Command`, `header + statement := by sorry`: the
REPL reports the `sorry`'s goal and a proof-state number. Each tactic is then
a `ProofStep` on a state's number; the answer is the new state's number and
goals, or Lean's error. Requests and answers are LeanInteract's own pydantic
types (`lean_interact.interface`), so this speaks exactly the protocol
LeanInteract does; the process is mathagent's own, not LeanInteract's
`LeanServer`: that one starts `lake env repl` with no sandbox, enforces
timeouts from a reader thread and cleans up in `__del__`.

The model's tactics are untrusted code, so the REPL runs only inside
bubblewrap (`sandbox.wrap`: no network, a read-only toolchain, a private
/tmp, a cleared environment), with the checks' time limit per request and
their memory limit on the whole process tree, which is killed on a timeout,
on too much memory and on close. Without bubblewrap this backend refuses to
start (`ToolchainError`) rather than run the REPL with rlimits only.

A mathagent `ProofState` is the list of tactics applied so far; the REPL's
numbers for them live only as long as its process. After a restart (a
timeout, a crash, output nobody asked for) the theorem is opened again and a
state's tactics are replayed one step at a time. As with the language
server, a state with no goals is only a candidate: the search re-checks the
assembled proof with the verifier (tactic modes of REPLs have accepted false
proofs: repl#44).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mathagent.errors import ToolchainError
from mathagent.verify import sandbox
from mathagent.verify.closing import AsyncClosing
from mathagent.verify.process import ProcessTree, StreamTail, kill_tree, reap, spawn_sandboxed, watch
from mathagent.verify.session import ProofState, SessionError, SessionLimits, TacticResult, opening
from mathagent.verify.toolchain import LeanToolchain
from mathagent.vocabulary import SandboxKind

if TYPE_CHECKING:
    from lean_interact.interface import CommandResponse, LeanError, ProofStepResponse

INSTALL_HINT = "pip install 'mathagent[interact]' (or set [verify] session_backend = \"server\")"
SERVER_INSTEAD = '[verify] session_backend = "server" needs none of this'
_LEAN_ERROR = "Lean error:\n"  # how the REPL prefixes an exception a tactic raised
_STDERR_TAIL = 2000


class ReplStopped(Exception):
    """The REPL process was stopped in the middle of a request (it is gone; a later request starts another)."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


# ---------------------------------------------------------------- finding what the backend needs


def require_lean_interact() -> None:
    """Raise a ToolchainError naming the install command when lean-interact cannot be imported."""
    try:
        import lean_interact.interface  # noqa: F401
    except ImportError as exc:
        raise ToolchainError(
            f'session_backend = "leaninteract" needs the lean-interact package, which is not installed ({exc})',
            hint=INSTALL_HINT,
        ) from None
    except OSError as exc:  # it creates its cache folder inside its package when imported
        raise ToolchainError(f"lean-interact cannot be imported here: {exc}", hint=INSTALL_HINT) from None


def lean_interact_cache() -> Path:
    """Where LeanInteract clones and builds REPLs by default (`LeanREPLConfig(cache_dir=...)`'s default)."""
    from lean_interact.utils import DEFAULT_CACHE_DIR

    return Path(DEFAULT_CACHE_DIR)


def build_command(version: str) -> str:
    """The one-off command that makes LeanInteract clone and build the REPL for Lean `version`."""
    return f"python -c \"from lean_interact import LeanREPLConfig; LeanREPLConfig(lean_version='v{version}')\""


def find_repl(toolchain: LeanToolchain, repl: Path | None = None, cache: Path | None = None) -> Path:
    """The REPL executable for `toolchain`'s Lean: `repl` (the `[verify] repl` setting) if given, else the
    one LeanInteract built into its cache for this Lean version. A ToolchainError says how to get one."""
    if repl is not None:
        if not repl.is_file() or not os.access(repl, os.X_OK):
            raise ToolchainError(
                f"the Lean REPL {repl} ([verify] repl / MATHAGENT_REPL) is not an executable file",
                hint="point it at a built REPL: <repl checkout>/.lake/build/bin/repl",
            )
        built_for = _toolchain_of(repl)
        if built_for is not None and built_for.removeprefix("v") != toolchain.version:
            raise ToolchainError(
                f"the Lean REPL {repl} is built for Lean {built_for}, but the Lean in use is {toolchain.version} "
                f"({toolchain.origin}): a REPL reads only its own Lean's .olean files",
                hint=f"build the REPL for v{toolchain.version}: {build_command(toolchain.version)}",
            )
        return repl
    cache = lean_interact_cache() if cache is None else cache
    tag = f"lean-toolchain-v{toolchain.version}"
    found = sorted(p for p in cache.glob(f"*/*/repl_*_{tag}/.lake/build/bin/repl") if os.access(p, os.X_OK))
    if found:
        return found[-1]
    raise ToolchainError(
        f"no Lean REPL is built for Lean {toolchain.version} ({toolchain.origin}) in LeanInteract's cache {cache}. "
        "LeanInteract builds it once, with git, elan's lake and the network; or build "
        'leanprover-community/repl yourself and set [verify] repl = "<checkout>/.lake/build/bin/repl"; '
        + SERVER_INSTEAD,
        hint=build_command(toolchain.version),
    )


def _toolchain_of(repl: Path) -> str | None:
    """The Lean version a REPL checkout pins (`lean-toolchain` beside its `.lake`), if it can be read."""
    root = repl_root(repl)
    try:
        pinned = (root / "lean-toolchain").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return pinned.rpartition(":")[2] or None


def repl_root(repl: Path) -> Path:
    """The folder the sandbox must show for `repl`: its checkout (`<root>/.lake/build/bin/repl`), else its folder."""
    parts = repl.parent.parts
    if len(parts) >= 3 and parts[-3:] == (".lake", "build", "bin"):
        return repl.parents[3]
    return repl.parent


def check_sandbox(kind: SandboxKind) -> None:
    """The REPL runs the model's tactics, so it runs in bubblewrap or not at all."""
    if kind != SandboxKind.BWRAP:
        raise ToolchainError(
            f'session_backend = "leaninteract" runs the Lean REPL only inside bubblewrap, and checks here run in '
            f"{kind}: the model's tactics are untrusted code",
            hint='install bubblewrap (apt-get install bubblewrap) and leave [verify] sandbox = "auto" or "bwrap", '
            'or use session_backend = "server"',
        )


def repl_command(toolchain: LeanToolchain, repl: Path, kind: SandboxKind, scratch: Path) -> sandbox.SandboxedCommand:
    """The sandboxed command line that starts the REPL: the executable itself (no `lake env`: the environment
    `lake env` would set is given here), inside bubblewrap."""
    check_sandbox(kind)
    lib = [toolchain.prefix / "lib" / "lean", toolchain.prefix / "lib"]
    env = {
        "LEAN_SYSROOT": str(toolchain.prefix),  # where the REPL's `findSysroot` looks first
        "LD_LIBRARY_PATH": ":".join(str(p) for p in lib),
        "PATH": f"{toolchain.lean.parent}:/usr/bin:/bin",
    }
    if toolchain.lean_path:
        env["LEAN_PATH"] = ":".join(toolchain.lean_path)
    read_only = [*toolchain.read_only_paths(), repl_root(repl)]
    command = sandbox.wrap(
        [str(repl)],
        kind=kind,
        read_only=read_only,
        env=env,
        cpu_seconds=10**7,  # a long-lived process: each request's deadline is enforced here instead
        scratch=scratch,
    )
    if command.kind != SandboxKind.BWRAP:  # wrap() keeps the kind it is given; never start it otherwise
        raise ToolchainError("the Lean REPL could not be wrapped in bubblewrap", hint=INSTALL_HINT)
    return command


def interact_session(
    toolchain: LeanToolchain, limits: SessionLimits, sandbox_kind: SandboxKind, repl: Path | None = None
) -> ReplSession:
    """A session on the Lean REPL, or a ToolchainError saying what is missing (the package, a built REPL,
    bubblewrap): all checked before anything starts."""
    require_lean_interact()
    check_sandbox(sandbox_kind)
    return ReplSession(toolchain, limits, sandbox_kind, find_repl(toolchain, repl))


# ---------------------------------------------------------------- the REPL's answers, in mathagent's terms


def parse_answer(data: object, *, step: bool) -> CommandResponse | ProofStepResponse | LeanError:
    """One JSON answer of the REPL as LeanInteract's type for it (as `LeanServer.run` reads it).
    Raises ValueError when it is none of them."""
    from lean_interact.interface import CommandResponse, LeanError, ProofStepResponse
    from pydantic import ValidationError

    if not isinstance(data, dict):
        raise ValueError(f"the REPL answered {type(data).__name__}, not a JSON object")
    try:
        if set(data) == {"message"} or not data:
            return LeanError.model_validate(data)
        if step:
            # REPLs older than proof validation (repl#63) send no proofStatus: the verifier still decides
            return ProofStepResponse.model_validate({"proofStatus": "", **data})
        return CommandResponse.model_validate(data)
    except ValidationError as exc:
        raise ValueError(f"the REPL's answer is not one LeanInteract knows: {exc.errors()[0]['msg']}") from None


def opened_goals(
    answer: CommandResponse | ProofStepResponse | LeanError, *, sorry_line: int, header_lines: int
) -> tuple[int, tuple[str, ...]]:
    """The proof-state number and goals of the theorem's `sorry` (on line `sorry_line`, 1-based) in the
    answer to the opening command; a SessionError when the header or statement does not elaborate."""
    from lean_interact.interface import CommandResponse, LeanError

    if isinstance(answer, LeanError):
        raise SessionError(f"the REPL refused the statement: {_lean_error(answer.message)}")
    if not isinstance(answer, CommandResponse):
        raise SessionError(f"the REPL answered the statement with a {type(answer).__name__}")
    for error in answer.get_errors():
        if error.start_pos.line <= header_lines:
            raise SessionError(f"the header does not elaborate: line {error.start_pos.line}: {error.data}")
        raise SessionError(f"the statement does not elaborate: {error.data}")
    ours = [s for s in answer.sorries if s.start_pos is not None and s.start_pos.line == sorry_line]
    if not ours or ours[0].proof_state is None:
        raise SessionError("the REPL reported no proof state for the theorem (a REPL without tactic mode?)")
    return ours[0].proof_state, (ours[0].goal.strip(),)


def step_result(
    answer: CommandResponse | ProofStepResponse | LeanError, tactics: tuple[str, ...], tactic: str
) -> tuple[TacticResult, int | None]:
    """What `tactic` after `tactics` did, as the search reads it, and the REPL's number for the new state
    (None when there is none: an error leaves the state as it was)."""
    from lean_interact.interface import LeanError, ProofStepResponse

    if isinstance(answer, LeanError):
        return TacticResult(None, _lean_error(answer.message) or "the REPL gave no reason"), None
    if not isinstance(answer, ProofStepResponse):
        return TacticResult(None, f"the REPL answered the tactic with a {type(answer).__name__}"), None
    errors = answer.get_errors()
    if errors:
        return TacticResult(None, errors[0].data), None
    status = answer.proof_status
    if status.startswith("Error"):
        return TacticResult(None, f"the REPL rejects the proof so far: {status}"), None
    if answer.sorries or "sorry" in status:
        return TacticResult(None, "the tactic uses sorry"), None
    goals = tuple(answer.goals)
    if not goals and status.startswith("Incomplete"):
        return TacticResult(None, f"no goals left, but the proof is not complete ({status})"), None
    return TacticResult(ProofState((*tactics, tactic), goals)), answer.proof_state


def _lean_error(message: str) -> str:
    return message.removeprefix(_LEAN_ERROR).strip()


# ---------------------------------------------------------------- the session


class ReplSession(AsyncClosing):
    """One theorem on its own sandboxed Lean REPL. Use as an async context manager; build it with
    `interact_session`, which checks the package, the REPL and the sandbox first."""

    def __init__(self, toolchain: LeanToolchain, limits: SessionLimits, sandbox_kind: SandboxKind, repl: Path) -> None:
        self.toolchain = toolchain
        self.limits = limits
        self.sandbox_kind = sandbox_kind
        self.repl = repl
        self.applied = 0  # tactics run, for stats
        self.restarts = 0  # REPL processes started after the first
        self._text = ""  # the opening command: header + statement := by sorry
        self._sorry_line = 0
        self._header_lines = 0
        self._root: ProofState | None = None
        self._ids: dict[tuple[str, ...], int] = {}  # a state's tactics -> the running REPL's number for it
        self._last_id = -1  # the largest proof-state number the running REPL has given
        self._proc: asyncio.subprocess.Process | None = None
        self._tree: ProcessTree | None = None
        self._answers: asyncio.Queue[str | None] = asyncio.Queue()  # blocks of stdout; None: it ended
        self._tasks: list[asyncio.Task[None]] = []
        self._stderr = StreamTail(_STDERR_TAIL)
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self._started = 0
        self._stale = False  # a request was abandoned midway: the process must not be asked again
        self._one_at_a_time = asyncio.Lock()  # one request in flight: the REPL answers in order, on one stream

    async def open(self, header: str, statement: str) -> ProofState:
        """Start on `statement` (ending in `:=` or `:= by`) under `header`: its goals."""
        header, head = opening(header, statement)
        self._text = head + "\n  sorry\n"
        self._sorry_line = head.count("\n") + 2
        self._header_lines = header.count("\n")
        self._root = None
        async with self._one_at_a_time:
            await self._stop()
            try:
                root_id, goals = await self._open(time.monotonic() + self.limits.timeout_s)
            except ReplStopped as exc:
                raise SessionError(f"the statement does not elaborate: {exc}") from None
        self._root = ProofState((), goals)
        self._ids[()] = root_id
        return self._root

    async def apply(self, state: ProofState, tactic: str) -> TacticResult:
        """Run `tactic` on `state` (replaying its tactics first if the REPL was restarted since)."""
        if not tactic.strip():
            return TacticResult(None, "an empty tactic")
        if self._root is None:
            raise SessionError("no theorem is open in this session")
        self.applied += 1
        async with self._one_at_a_time:
            return await self._apply(state, tactic, time.monotonic())

    async def _apply(self, state: ProofState, tactic: str, started: float) -> TacticResult:
        try:
            source = await self._state_id(state.tactics)
            if source is None:
                return TacticResult(None, "this state cannot be reached again (its tactics now fail)", _since(started))
            request = {"tactic": tactic, "proofState": source}
            answer = await self._ask(request, step=True, deadline=time.monotonic() + self.limits.timeout_s)
        except ReplStopped as exc:
            return TacticResult(None, str(exc), _since(started), timed_out=exc.timed_out)
        result, new_id = step_result(answer, state.tactics, tactic)
        if result.state is not None and new_id is not None:
            if new_id <= self._last_id:  # the REPL numbers states in order: this answer is not its own
                await self._stop()
                return TacticResult(None, "the REPL's answer is out of step; it was restarted", _since(started))
            self._last_id = new_id
            self._ids[result.state.tactics] = new_id
        return replace(result, time_s=_since(started))

    async def aclose(self) -> None:
        """Stop the session's REPL (a later tactic starts a fresh one and replays)."""
        await self._stop()

    # ---------------------------------------------------------------- states and replay

    async def _open(self, deadline: float) -> tuple[int, tuple[str, ...]]:
        answer = await self._ask({"cmd": self._text}, step=False, deadline=deadline)
        root_id, goals = opened_goals(answer, sorry_line=self._sorry_line, header_lines=self._header_lines)
        self._last_id = max(self._last_id, root_id)
        return root_id, goals

    async def _state_id(self, tactics: tuple[str, ...]) -> int | None:
        """The running REPL's number for the state after `tactics`, replaying what it does not know; None
        when a replayed tactic no longer gives a state."""
        if self._proc is not None and not self._answers.empty():
            await self._stop()  # it said something nobody asked for (a tactic writing to stdout?): start afresh
        if tactics in self._ids:
            return self._ids[tactics]
        if () not in self._ids:
            root_id, _ = await self._open(time.monotonic() + self.limits.timeout_s)
            self._ids[()] = root_id
        done = max(n for n in range(len(tactics) + 1) if tactics[:n] in self._ids)
        for n in range(done, len(tactics)):
            request = {"tactic": tactics[n], "proofState": self._ids[tactics[:n]]}
            answer = await self._ask(request, step=True, deadline=time.monotonic() + self.limits.timeout_s)
            result, new_id = step_result(answer, tactics[:n], tactics[n])
            if result.state is None or new_id is None:
                return None
            self._last_id = max(self._last_id, new_id)
            self._ids[tactics[: n + 1]] = new_id
        return self._ids[tactics]

    # ---------------------------------------------------------------- the process

    async def _ask(
        self, request: dict[str, Any], *, step: bool, deadline: float
    ) -> CommandResponse | ProofStepResponse | LeanError:
        """Send one request and read its answer, within `deadline` and the memory limit; ReplStopped
        (and the process stopped) when it cannot be had."""
        await self._ready()
        assert self._proc is not None
        try:
            return await self._exchange(request, step=step, deadline=deadline)
        except (asyncio.CancelledError, KeyboardInterrupt):
            # the answer would come to whoever asks next: kill the REPL now (closing reaps it)
            kill_tree(self._proc.pid)
            self._ids.clear()
            self._stale = True
            raise

    async def _exchange(
        self, request: dict[str, Any], *, step: bool, deadline: float
    ) -> CommandResponse | ProofStepResponse | LeanError:
        assert self._proc is not None and self._proc.stdin is not None and self._tree is not None
        try:
            self._proc.stdin.write((json.dumps(request, ensure_ascii=False) + "\n\n").encode("utf-8"))
            await self._proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            await self._stop()
            raise ReplStopped(f"the REPL stopped: {exc}") from None
        while True:
            waiting = asyncio.ensure_future(self._answers.get())
            try:
                timed_out, too_big = await watch(
                    waiting, self._tree, deadline=deadline, memory_mb=self.limits.memory_mb
                )
            finally:
                if not waiting.done():
                    waiting.cancel()
            if timed_out or too_big:
                await self._stop()
                why = "time limit" if timed_out else "memory limit"
                raise ReplStopped(f"the REPL ran past the {why}", timed_out=True)
            block = waiting.result()
            if block is None:
                tail = self._stderr.text()
                await self._stop()
                raise ReplStopped(f"the REPL stopped{': ' + tail if tail else ''}")
            try:
                data = json.loads(block)
            except json.JSONDecodeError:
                continue  # not an answer (some REPL builds print progress lines first)
            try:
                return parse_answer(data, step=step)
            except ValueError as exc:
                await self._stop()
                raise ReplStopped(str(exc)) from None

    async def _ready(self) -> None:
        if self._proc is not None and self._proc.returncode is None and not self._stale:
            return
        await self._stop()
        self._scratch = tempfile.TemporaryDirectory(prefix="mathagent-repl-")
        command = repl_command(self.toolchain, self.repl, self.sandbox_kind, Path(self._scratch.name))
        self._answers = asyncio.Queue()
        self._stderr = StreamTail(_STDERR_TAIL)
        try:
            self._proc = await spawn_sandboxed(command, cwd=self._scratch.name, stream_limit=2**26)
        except OSError as exc:
            await self._stop()
            raise ReplStopped(f"the REPL could not be started: {exc}") from None
        self.restarts += self._started > 0
        self._started += 1
        self._tree = ProcessTree(self._proc.pid)
        drain = self._stderr.drain(self._proc.stderr)
        self._tasks = [asyncio.ensure_future(self._read()), asyncio.ensure_future(drain)]

    async def _read(self) -> None:
        """Blocks of stdout (an answer ends with a blank line) into the queue; None when it ends."""
        assert self._proc is not None and self._proc.stdout is not None
        stdout, block = self._proc.stdout, []
        try:
            while line := (await stdout.readline()).decode("utf-8", "replace"):
                if line.strip():
                    block.append(line)  # joined once at the blank line: linear in a long answer
                elif block:
                    self._answers.put_nowait("".join(block))
                    block = []
        except (ValueError, asyncio.LimitOverrunError):  # a line past the stream's limit
            pass
        if block:
            self._answers.put_nowait("".join(block))
        self._answers.put_nowait(None)

    async def _stop(self) -> None:
        """Kill the REPL and everything it started, reap it, and forget its state numbers."""
        proc, self._proc = self._proc, None
        if proc is not None:
            kill_tree(proc.pid)
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        if proc is not None:
            with contextlib.suppress(BaseException):
                await reap(proc)
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None
        self._tree = None
        self._ids.clear()
        self._last_id = -1
        self._stale = False


def _since(started: float) -> float:
    return time.monotonic() - started
