"""Warm verification: Lean language servers that keep the header elaborated.

With Mathlib, every fresh `lean` pays the import (seconds to a minute, GBs)
before it reads a proof. Lean's own language server elaborates
incrementally: when a new version of a document changes only text after the
header, it reuses the snapshot of the unchanged prefix (the imports, and
every unchanged command). So a worker keeps one document open, and each
check replaces its whole text: the header costs nothing after the first
check, and nothing a previous check declared survives into the next (the
text that declared it is gone).

The server is Lean's file worker itself (`lean --worker`, the process the
`lean --server` watchdog starts for each open file), spoken to directly: one
process instead of two, and it reports to us what it reports to the
watchdog, notably `$/lean/ileanInfoFinal`: every declaration the document
made, which is how the verifier learns a file's declarations from Lean.

Each server runs in the same sandbox as a cold check, under the same
deadline and memory cap; a server whose check timed out, ran out of memory
or crashed is killed, never reused. Servers are recycled after a number of
checks and when their memory grows past a cap. Diagnostics come back as LSP
`publishDiagnostics`; they are converted to the `--json` message format, so
the very same judge decides the verdict.

`server.reportDelayMs` (200 ms by default in recent Lean) is what made every
warm check take at least 0.2 s: the worker waits that long before reporting
anything, to spare editors flicker. It is set to 0 where the toolchain knows
the option.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import json
import re
import tempfile
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mathagent.verify import sandbox
from mathagent.verify.assemble import CANONICAL_AXIOMS
from mathagent.verify.declarations import FileReport, read_report
from mathagent.verify.judge import RunOutcome
from mathagent.verify.process import (
    OUTPUT_CAP_BYTES,
    ProcessTree,
    StreamTail,
    kill_tree,
    reap,
    spawn_sandboxed,
    watch,
)
from mathagent.verify.toolchain import LeanToolchain
from mathagent.vocabulary import SandboxKind

# Given the outcome of a first check, the text of a second one on the same
# server (or None): how a whole file is checked again with its declarations' checks.
FollowUp = Callable[[RunOutcome], "str | None"]

DOCUMENT_URI = "file:///tmp/mathagent/Check.lean"
_SEVERITY = {1: "error", 2: "warning", 3: "information", 4: "information"}
_START_TIMEOUT_S = 120.0
_RESET_TIMEOUT_S = 10.0  # to stop a check handed to the cold path; a server slower than this is closed
_INLINE_REPORT_BYTES = 8192  # a check's report this short is converted on the event loop


class WorkerCrashed(Exception):
    """The language server died or stopped answering."""


class TooBigForWarm(Exception):
    """A check reported more than a server should take (thousands of commands or
    messages): the worker's cost grows faster than the input there, `lean --json`'s
    does not. The check is handed to the cold path, under the same `deadline`, and
    the server keeps its header."""

    deadline: float | None = None


_HEAD = 64
_PUBLISH = b'{"jsonrpc":"2.0","method":"textDocument/publishDiagnostics",'
_PROGRESS = b'{"jsonrpc":"2.0","method":"$/lean/fileProgress",'
_REPORTS = (_PUBLISH, _PROGRESS, b'{"jsonrpc":"2.0","method":"$/lean/ileanInfoUpdate",')
_TRAILING_VERSION = re.compile(rb'"version":(\d+)\}\}\s*$')
_ERROR_KEY = b'"severity":1'
# A check with an error that Lean is still working on this long after the error
# (at least, and at least this fraction of the time the error took) is answered
# with the messages so far: see `LeanServer._cut_short`.
ERROR_GRACE_S = 1.0
ERROR_GRACE_FRACTION = 0.5


@dataclass(frozen=True)
class WarmConfig:
    workers: int
    timeout_s: float
    memory_mb: int | None
    sandbox_kind: SandboxKind
    max_checks: int = 200  # recycle after this many checks
    max_reports: int = 512  # reports (commands, diagnostics) one check may cause before it goes cold
    # seconds a header with no server waits before it takes a busy header's only server (fairness);
    # also what a server start is taken to cost until one is measured
    switch_after_s: float = 1.0
    recycle_mb: int | None = None  # recycle when idle memory exceeds this (default: 3/4 of memory_mb)


class LeanServer:
    """One sandboxed `lean --worker` with one open document."""

    def __init__(self, toolchain: LeanToolchain, config: WarmConfig, key: str, fast_report: bool) -> None:
        self.toolchain = toolchain
        self.config = config
        self.key = key
        self.fast_report = fast_report
        self.checks = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._tree: ProcessTree | None = None
        self._reader: asyncio.Task[None] | None = None
        self._stderr_task: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._diagnostics: dict[int, bytes] = {}  # version -> its latest publishDiagnostics, undecoded
        self._reports: dict[int, int] = {}  # version -> reports so far (diagnostics and declaration updates)
        self._flooded: dict[int, asyncio.Event] = {}  # version -> set once its reports pass `max_reports`
        self._errored: dict[int, asyncio.Event] = {}  # version -> set once its messages hold an error
        self.behind = False  # Lean did not catch up after a check was cut short: not to be reused
        self._ilean: dict[int, FileReport] = {}  # version -> what its `$/lean/ileanInfoFinal` said
        self._version = 0
        self._stderr = StreamTail()
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self.kind = config.sandbox_kind

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Start the worker. Its first check opens the document: a worker
        cannot change a document's imports afterwards (it exits, and Lean's
        watchdog would start a new one), so it is never opened empty."""
        self._scratch = tempfile.TemporaryDirectory(prefix="mathagent-warm-")
        argv = [str(self.toolchain.lean), "--worker"]
        if self.fast_report:
            argv.append("-Dserver.reportDelayMs=0")
        env = {"LEAN_PATH": ":".join(self.toolchain.lean_path)} if self.toolchain.lean_path else {}
        command = sandbox.wrap(
            argv,
            kind=self.kind,
            read_only=self.toolchain.read_only_paths(),
            env=env,
            cpu_seconds=10**7,  # a long-lived server: the per-check deadline is enforced here instead
            scratch=Path(self._scratch.name),
        )
        self._proc = await spawn_sandboxed(command, cwd=self._scratch.name, stream_limit=2**26)
        # The server's tree is settled by now: no first-scan delay needed.
        self._tree = ProcessTree(self._proc.pid, first_scan_s=0.0)
        self._reader = asyncio.ensure_future(self._read())
        self._stderr_task = asyncio.ensure_future(self._stderr.drain(self._proc.stderr))
        params = {"processId": None, "rootUri": None, "capabilities": {}, "initializationOptions": {"editDelay": 0}}
        # A file worker takes `initialize` and then the document; it answers
        # neither (the watchdog would), so nothing is awaited here.
        self._send({"jsonrpc": "2.0", "id": next(self._ids), "method": "initialize", "params": params})

    @property
    def fresh(self) -> bool:
        """No document opened yet."""
        return self._version == 0

    def stderr_tail(self) -> str:
        return self._stderr.text()

    @property
    def alive(self) -> bool:
        reader_running = self._reader is None or not self._reader.done()
        return self._proc is not None and self._proc.returncode is None and reader_running

    def rss_mb(self) -> float:
        return self._tree.rss_mb() if self._tree is not None else 0.0

    async def close(self) -> None:
        """Kill the server and everything it started, and reap it."""
        if self._proc is not None:
            kill_tree(self._proc.pid)
        for task in (self._reader, self._stderr_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        if self._proc is not None:
            with contextlib.suppress(BaseException):
                await reap(self._proc)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(WorkerCrashed("the language server was closed"))
        self._waiting.clear()
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    # ---------------------------------------------------------------- a check

    async def check(self, text: str, *, deadline: float | None = None, limited: bool = True) -> RunOutcome:
        """Elaborate `text` as the document's next version; messages as `--json`
        lines, and the document's declarations as Lean reported them.

        Raises WorkerCrashed when the server dies, and (when `limited`)
        TooBigForWarm when the check reports more than `max_reports` times or
        sends one report over `OUTPUT_CAP_BYTES`;
        returns a timed-out or over-memory outcome (after which the caller must
        close this server).
        `deadline` (monotonic) defaults to the configured timeout from now.
        """
        if self._tree is None:
            raise WorkerCrashed("the language server was never started")
        started = time.monotonic()
        deadline = started + self.config.timeout_s if deadline is None else deadline
        self.checks += limited  # the header alone (`reset`) is not a check
        self._version += 1
        version = self._version
        if version == 1:
            self._notify(
                "textDocument/didOpen",
                {"textDocument": {"uri": DOCUMENT_URI, "languageId": "lean4", "version": 1, "text": text}},
            )
        else:
            self._notify(
                "textDocument/didChange",
                {"textDocument": {"uri": DOCUMENT_URI, "version": version}, "contentChanges": [{"text": text}]},
            )
        flooded, errored = asyncio.Event(), asyncio.Event()
        if limited:
            self._flooded[version] = flooded
            self._errored[version] = errored
        waited = asyncio.ensure_future(
            self.request("textDocument/waitForDiagnostics", {"uri": DOCUMENT_URI, "version": version})
        )
        flood = asyncio.ensure_future(flooded.wait())
        stall = asyncio.ensure_future(_stalled_after(errored, started))
        pending = {waited, flood, stall}
        try:
            while True:
                done = asyncio.ensure_future(asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED))
                try:
                    timed_out, memory_exceeded = await watch(
                        done, self._tree, deadline=deadline, memory_mb=self.config.memory_mb
                    )
                finally:
                    done.cancel()
                if timed_out or memory_exceeded:
                    break
                # Flooding first: the reader may have skipped an oversized report and then
                # read the answer before this wakes, and that answer's diagnostics lack it.
                if flooded.is_set():
                    raise TooBigForWarm(
                        f"more than {self.config.max_reports} reports, or one over {OUTPUT_CAP_BYTES} bytes, "
                        "from one check"
                    )
                if waited.done():
                    waited.result()  # re-raises WorkerCrashed
                    break
                pending.discard(stall)  # an error came, and Lean is still busy long after it
                cut = await self._cut_short(version, text, started)
                if cut is not None:
                    return cut
        finally:
            for future in (waited, flood, stall):
                if not future.done():
                    future.cancel()
            self._flooded.pop(version, None)
            self._errored.pop(version, None)
        elapsed = time.monotonic() - started
        if timed_out or memory_exceeded:
            return RunOutcome(
                stdout="",
                stderr="",
                returncode=None,
                time_s=elapsed,
                sandbox=self.kind,
                timed_out=timed_out,
                memory_exceeded=memory_exceeded,
                memory_mb=self.config.memory_mb,
            )
        if version not in self._diagnostics or version not in self._ilean:
            await asyncio.sleep(0.05)  # a notification racing the response; anything missing only ever rejects
        published = self._diagnostics.pop(version, None)
        report = self._ilean.pop(version, FileReport())
        self._forget_before(version)
        stdout, has_error = await _converted(published, text)
        return RunOutcome(
            stdout=stdout,
            stderr="",
            returncode=1 if has_error else 0,
            time_s=elapsed,
            sandbox=self.kind,
            report=report,
        )

    async def _cut_short(self, version: int, text: str, started: float) -> RunOutcome | None:
        """The check has an error and Lean is still at work on it: the verdict is a
        reject whatever else comes, so answer with the messages so far and stop Lean
        (the header alone again, which cancels the rest of the version's work).

        What keeps Lean busy there is mostly its declaration report, which a reject
        does not need, and which on one deeply nested term grows faster than the
        term: `lean --json` writes none for a file with an error. None (wait on)
        when the messages hold no error after all."""
        stdout, has_error = await _converted(self._diagnostics.get(version), text)
        if not has_error:
            return None
        elapsed = time.monotonic() - started
        self.behind = not await self.reset(deadline=time.monotonic() + _RESET_TIMEOUT_S)
        return RunOutcome(stdout=stdout, stderr="", returncode=1, time_s=elapsed, sandbox=self.kind)

    async def reset(self, *, deadline: float) -> bool:
        """Make the document its header (the key) alone: the first version a server
        gets, so that a check's reports are its own (the reused header reports
        nothing again), and the way to stop a check's elaboration. True once Lean
        has caught up."""
        try:
            outcome = await self.check(self.key, deadline=deadline, limited=False)
        except WorkerCrashed:
            return False
        return not (outcome.timed_out or outcome.memory_exceeded) and self.alive

    def _forget_before(self, version: int) -> None:
        for table in (self._diagnostics, self._reports, self._ilean):
            for old in [v for v in table if v <= version]:
                del table[old]

    # ---------------------------------------------------------------- JSON-RPC

    def _send(self, message: dict[str, Any]) -> None:
        if not self.alive or self._proc is None or self._proc.stdin is None or self._proc.stdin.is_closing():
            raise WorkerCrashed(f"the language server is not running: {self.stderr_tail()}")
        body = json.dumps(message).encode("utf-8")
        self._proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def _notify(self, method: str, params: dict[str, Any]) -> None:
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    async def request(self, method: str, params: dict[str, Any]) -> Any:
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        try:
            self._send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
            return await future
        finally:
            self._waiting.pop(request_id, None)

    async def _read(self) -> None:
        if self._proc is None or self._proc.stdout is None:
            return
        stream = self._proc.stdout
        try:
            while True:
                length = None
                while True:
                    line = await stream.readline()
                    if not line:
                        raise WorkerCrashed("the language server exited")
                    line = line.strip()
                    if not line:
                        break
                    name, _, value = line.decode("ascii", "replace").partition(":")
                    if name.lower() == "content-length":
                        length = int(value.strip())
                if length is None:
                    continue
                if length > OUTPUT_CAP_BYTES:
                    # Never held in memory: the check in flight goes cold, where the cap decides it.
                    await _skip(stream, length)
                    self._overflow(self._version)
                    continue
                self._receive(await stream.readexactly(length))
        except (WorkerCrashed, asyncio.IncompleteReadError, ValueError, ConnectionError) as exc:
            crash = exc if isinstance(exc, WorkerCrashed) else WorkerCrashed(f"the language server stream broke: {exc}")
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(crash)

    def _receive(self, body: bytes) -> None:
        """One message from Lean. The worker sends a report per command, and each
        `publishDiagnostics` repeats every message of the document so far: decoding
        them all would be quadratic in the messages. So reports are recognised from
        their first and last bytes (Lean writes object keys in order: `jsonrpc`,
        `method`, `params`; `version` last within `params`), counted, and only a
        version's last diagnostics are kept, undecoded."""
        head = body[:_HEAD]
        method = next((m for m in _REPORTS if head.startswith(m)), None)
        version = _TRAILING_VERSION.search(body, max(0, len(body) - 32)) if method is not None else None
        if method is None or version is None:
            self._dispatch(json.loads(body))
            return
        number = int(version.group(1))
        if method == _PUBLISH:
            self._published(number, body)
        if method != _PROGRESS:
            self._count_report(number)

    def _published(self, version: int, body: bytes) -> None:
        """A version's latest diagnostics (compact JSON), kept undecoded; noted when they hold an error."""
        self._diagnostics[version] = body
        errored = self._errored.get(version)
        # (the key cannot occur inside a JSON string, where its quotes would be escaped)
        if errored is not None and not errored.is_set() and _ERROR_KEY in body:
            errored.set()

    def _count_report(self, version: int) -> None:
        count = self._reports.get(version, 0) + 1
        self._reports[version] = count
        if count > self.config.max_reports:
            self._overflow(version)

    def _overflow(self, version: int) -> None:
        flooded = self._flooded.get(version)
        if flooded is not None:
            flooded.set()

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "method" not in message:  # a response
            future = self._waiting.get(message.get("id"))  # type: ignore[arg-type]
            if future is not None and not future.done():
                if "error" in message:
                    future.set_exception(WorkerCrashed(f"the language server refused a request: {message['error']}"))
                else:
                    future.set_result(message.get("result"))
            return
        if "id" in message:  # the server asks us something (capabilities, refreshes): say yes
            with contextlib.suppress(WorkerCrashed):
                self._send({"jsonrpc": "2.0", "id": message["id"], "result": None})
            return
        params = message.get("params") or {}
        version = params.get("version") if isinstance(params, dict) else None
        if not isinstance(version, int):
            return
        if message["method"] == "textDocument/publishDiagnostics":  # (a shape `_receive` did not expect)
            self._published(version, json.dumps(message, separators=(",", ":")).encode("utf-8"))
        elif message["method"] == "$/lean/ileanInfoFinal":
            self._ilean[version] = read_report(params, CANONICAL_AXIOMS)


async def _stalled_after(errored: asyncio.Event, started: float) -> None:
    """Return once `errored` is set and a grace period has passed after it."""
    await errored.wait()
    await asyncio.sleep(max(ERROR_GRACE_S, ERROR_GRACE_FRACTION * (time.monotonic() - started)))


async def _converted(published: bytes | None, text: str) -> tuple[str, bool]:
    """`as_json_lines`, off the event loop for a long report."""
    if published is None or len(published) <= _INLINE_REPORT_BYTES:
        return as_json_lines(published, text)  # a few messages: quicker than a thread hop
    # Decoding and converting thousands of messages is plain CPU work: off the event loop.
    return await asyncio.to_thread(as_json_lines, published, text)


async def _skip(stream: asyncio.StreamReader, length: int) -> None:
    """Read past `length` bytes of `stream`, a megabyte at a time."""
    while length > 0:
        length -= len(await stream.readexactly(min(length, 2**20)))


def as_json_lines(published: bytes | None, text: str) -> tuple[str, bool]:
    """A `publishDiagnostics` message as `lean --json` lines (1-based lines, code-point
    columns), and whether any is an error. Linear in the messages and the text."""
    if published is None:
        return "", False
    params = json.loads(published).get("params") or {}
    lines = text.split("\n")
    columns: dict[int, _Columns] = {}
    converted = []
    has_error = False
    for diagnostic in params.get("diagnostics") or []:
        span = diagnostic.get("range") or diagnostic.get("fullRange") or {}
        start, end = span.get("start", {}), span.get("end", {})
        severity = _SEVERITY.get(diagnostic.get("severity", 1), "error")
        has_error = has_error or severity == "error"
        message = {
            "severity": severity,
            "pos": _position(start, lines, columns),
            "endPos": _position(end, lines, columns) if end else None,
            "data": diagnostic.get("message", ""),
        }
        converted.append(json.dumps(message))
    return "\n".join(converted), has_error


class _Columns:
    """UTF-16 offsets (LSP's columns) to code points (Lean's) on one line. Only
    characters outside the BMP count twice, so most lines need no table; a line
    that has them is indexed once, however many messages point into it."""

    def __init__(self, line: str) -> None:
        self.length = len(line)
        self.units: list[int] | None = None  # units before each code point, where they differ
        if any(ord(ch) > 0xFFFF for ch in line):
            self.units = list(itertools.accumulate((2 if ord(ch) > 0xFFFF else 1 for ch in line), initial=0))

    def column(self, units: int) -> int:
        if self.units is None:
            return min(units, self.length)
        return min(bisect.bisect_left(self.units, units), self.length)


def _position(pos: dict[str, Any], lines: list[str], columns: dict[int, _Columns]) -> dict[str, int]:
    line = pos.get("line", 0)
    table = columns.get(line)
    if table is None:
        table = columns[line] = _Columns(lines[line] if 0 <= line < len(lines) else "")
    return {"line": line + 1, "column": table.column(pos.get("character", 0))}


async def run_checks(server: LeanServer, text: str, follow_up: FollowUp | None, deadline: float) -> RunOutcome:
    """Check `text`, then the follow-up text (if any) on the same server: the
    second version re-elaborates only what changed after the first."""
    outcome = await server.check(text, deadline=deadline)
    if follow_up is None or outcome.timed_out or outcome.memory_exceeded or server.behind:
        return outcome
    second_text = follow_up(outcome)
    if second_text is None:
        return outcome
    second = await server.check(second_text, deadline=deadline)
    return replace(second, time_s=outcome.time_s + second.time_s)


_FAST_REPORT: dict[str, bool] = {}
_FAST_REPORT_PROBES: dict[tuple[str, int], asyncio.Task[bool]] = {}


async def supports_fast_report(toolchain: LeanToolchain, config: WarmConfig) -> bool:
    """Does this Lean accept `-Dserver.reportDelayMs=0`? (older ones lack the option)

    Servers started at the same moment share one probe: each starting its own
    would put extra Lean processes beside the pool's `workers`."""
    key = str(toolchain.lean)
    if key in _FAST_REPORT:
        return _FAST_REPORT[key]
    slot = (key, id(asyncio.get_running_loop()))
    probe = _FAST_REPORT_PROBES.get(slot)
    if probe is None or (probe.done() and probe.cancelled()):
        probe = asyncio.ensure_future(_probe_fast_report(toolchain, config))
        _FAST_REPORT_PROBES[slot] = probe
        probe.add_done_callback(lambda _: _FAST_REPORT_PROBES.pop(slot, None))
    # shielded: one caller cancelled must not cancel the probe the others wait on
    return await asyncio.shield(probe)


async def _probe_fast_report(toolchain: LeanToolchain, config: WarmConfig) -> bool:
    probe = LeanServer(toolchain, config, "", True)
    try:
        await probe.start()
        await probe.check("prelude\n", deadline=time.monotonic() + _START_TIMEOUT_S, limited=False)
        _FAST_REPORT[str(toolchain.lean)] = probe.alive
    except (WorkerCrashed, asyncio.TimeoutError, OSError):
        _FAST_REPORT[str(toolchain.lean)] = False
    finally:
        await probe.close()
    return _FAST_REPORT[str(toolchain.lean)]


@dataclass(eq=False)
class _Waiter:
    """A check waiting for a server warm for its header."""

    key: str
    since: float
    granted: asyncio.Future[LeanServer | None]  # a server of its own, or None: start one (room is kept)


class WarmPool:
    """At most `workers` language servers, each keyed by the header it has warm,
    and the checks waiting for them, scheduled by header.

    A check takes an idle server with its header, or starts one while there is
    room, or (when its header has no server at all) takes the place of the
    least recently used idle one, or waits in its header's queue. A server that
    finishes a check goes to the next check of its own header; it changes
    header (closed, and a server for the other header started in its place)
    only for a header with no server, or when nobody of its own waits and the
    other header's check has waited longer than a server start costs (measured
    per header). So a load that mixes headers keeps each server on one header
    instead of restarting servers at every switch, and no header starves.
    """

    def __init__(self, toolchain: LeanToolchain, config: WarmConfig) -> None:
        self.toolchain = toolchain
        self.config = config
        self._idle: OrderedDict[int, LeanServer] = OrderedDict()  # LRU order
        self._busy: set[LeanServer] = set()
        self._starting: dict[str, int] = {}  # header -> servers being started (room granted)
        self._waiting: dict[str, deque[_Waiter]] = {}  # header -> its checks, oldest first
        self._restart: dict[str, float] = {}  # header -> seconds its last server took to start and open it
        self._wake: asyncio.TimerHandle | None = None
        self._closing: set[asyncio.Future[None]] = set()
        self.started = 0  # servers started, for tests and stats
        self.switched = 0  # servers closed to make room for another header

    async def run(
        self,
        key: str,
        text: str,
        *,
        follow_up: FollowUp | None = None,
        budget_s: float | None = None,
    ) -> RunOutcome:
        """Check `text` (and its follow-up) on a server warm for `key`, within
        `budget_s` from the moment it has a server (waiting is not the check's
        time); a crashed server is replaced and the check retried once on a
        fresh one. Raises TooBigForWarm (with the check's deadline) for a check
        that reports too much."""
        budget_s = self.config.timeout_s if budget_s is None else budget_s
        deadline: float | None = None
        for attempt in (1, 2):
            server = await self._acquire(key)
            deadline = time.monotonic() + budget_s if deadline is None else deadline
            try:
                if server is None:
                    starting = time.monotonic()
                    server = await self._start(key)
                    # a fresh server's first version is its header alone: then a check's
                    # reports are its own (see `LeanServer.reset`)
                    opened = await server.check(key, deadline=deadline, limited=False)
                    if opened.timed_out or opened.memory_exceeded:
                        await self._retire(server)
                        return opened
                    self._restart[key] = time.monotonic() - starting
                outcome = await run_checks(server, text, follow_up, deadline)
            except TooBigForWarm as exc:
                assert server is not None
                exc.deadline = deadline
                if await server.reset(deadline=time.monotonic() + _RESET_TIMEOUT_S):
                    await self._release(server, None)
                else:
                    await self._retire(server)
                raise
            except WorkerCrashed as exc:
                stderr = server.stderr_tail() if server is not None else ""
                if server is not None:
                    await self._retire(server)
                if attempt == 2:
                    kind = self.config.sandbox_kind
                    return RunOutcome(stdout="", stderr=f"{exc}; {stderr}", returncode=-1, time_s=0.0, sandbox=kind)
                continue
            except BaseException:
                if server is not None:  # (a server that failed to start has given its room back)
                    await self._retire(server)  # cancelled mid-check: never reuse
                raise
            await self._release(server, outcome)
            return outcome
        raise AssertionError("unreachable")  # pragma: no cover

    def state(self) -> dict[str, int]:
        """Servers idle and busy now, started so far, and checks waiting (for a service's health and metrics)."""
        waiting = sum(len(q) for q in self._waiting.values())
        return {"idle": len(self._idle), "busy": len(self._busy), "started": self.started, "waiting": waiting}

    # ---------------------------------------------------------------- scheduling

    async def _acquire(self, key: str) -> LeanServer | None:
        """A server warm for `key` (now busy), or None: room to start one for it."""
        server = self._take(key)
        if server is not None:
            return server
        if self._servers() < max(1, self.config.workers):
            self._grant_room(key)
            return None
        if self._idle and self._servers(key) == 0:
            # an idle server's header has no check waiting (it would have got it), and this
            # header has no server at all: it takes the least recently used one's place
            _, oldest = self._idle.popitem(last=False)
            self._grant_room(key)
            self.switched += 1
            try:
                await oldest.close()
            except BaseException:
                self._room_freed(key)
                raise
            return None
        waiter = _Waiter(key, time.monotonic(), asyncio.get_running_loop().create_future())
        self._waiting.setdefault(key, deque()).append(waiter)
        if self._idle:  # this header's own server is busy: wait for it, unless that gets dearer than a restart
            self._wake_later(self._restart_s(key))
        try:
            return await waiter.granted
        except asyncio.CancelledError:
            queue = self._waiting.get(key)
            if queue is not None and waiter in queue:
                queue.remove(waiter)
                if not queue:
                    del self._waiting[key]
            if waiter.granted.done() and not waiter.granted.cancelled():
                granted = waiter.granted.result()  # granted just before the cancellation arrived: pass it on
                if granted is None:
                    self._room_freed(key)
                else:
                    self._busy.discard(granted)
                    replaced = self._hand_on(granted)
                    if replaced is not None:
                        self._close_later(replaced)
            raise

    def _take(self, key: str) -> LeanServer | None:
        for ident, server in list(self._idle.items()):
            if server.key == key and server.alive:
                del self._idle[ident]
                self._busy.add(server)
                return server
        return None

    def _servers(self, key: str | None = None) -> int:
        """Servers alive or being started (for `key` only, if given)."""
        if key is None:
            return len(self._idle) + len(self._busy) + sum(self._starting.values())
        alive = [s for s in (*self._idle.values(), *self._busy) if s.key == key]
        return len(alive) + self._starting.get(key, 0)

    def _restart_s(self, key: str) -> float:
        """What starting a server for `key` costs (measured once one has started), in seconds."""
        return self._restart.get(key, self.config.switch_after_s)

    def _heads(self) -> list[_Waiter]:
        """The longest-waiting check of each header (checks cancelled while queued wait for no one)."""
        for waiting_key in list(self._waiting):
            queue = self._waiting[waiting_key]
            while queue and queue[0].granted.done():
                queue.popleft()
            if not queue:
                del self._waiting[waiting_key]
        return [q[0] for q in self._waiting.values()]

    def _next(self, key: str | None) -> _Waiter | None:
        """Who gets a freed server of header `key` (or freed room, for None), still on their queue.

        Room goes to the longest-waiting check. A server goes to its own header's next
        check; another header takes it only where that header has no server at all
        (and this one keeps another, or its check has waited longer than a server
        start costs and `switch_after_s`), or where nobody of its own waits and the
        other header's check has no server or has waited longer than a start costs.
        Otherwise it stays idle.
        Switching between two busy headers would only add restarts.
        """
        heads = self._heads()
        if key is None or not heads:
            return min(heads, key=lambda w: w.since, default=None)
        now = time.monotonic()
        own = self._waiting.get(key)
        others = [w for w in heads if w.key != key]
        if own:
            # taking a busy header's only server is for fairness, not speed: only after `switch_after_s`
            patience = self.config.switch_after_s
            keeps_another = self._servers(key) > 1
            takers = [
                w
                for w in others
                if self._servers(w.key) == 0 and (keeps_another or self._overdue(w, now, at_least=patience))
            ]
        else:
            takers = [w for w in others if self._servers(w.key) == 0 or self._overdue(w, now)]
        if takers:
            return min(takers, key=lambda w: w.since)
        return own[0] if own else None

    def _overdue(self, waiter: _Waiter, now: float, at_least: float = 0.0) -> bool:
        """Has this check waited longer than starting a server of its own would take (and `at_least`)?"""
        return now - waiter.since > max(at_least, self._restart_s(waiter.key))

    def _pop(self, waiter: _Waiter) -> None:
        queue = self._waiting[waiter.key]
        queue.popleft()
        if not queue:
            del self._waiting[waiter.key]

    def _grant_room(self, key: str) -> None:
        self._starting[key] = self._starting.get(key, 0) + 1

    def _wake_later(self, delay_s: float) -> None:
        """Look again at the idle servers once the longest wait may have outgrown a restart."""
        if self._wake is None or self._wake.cancelled():
            self._wake = asyncio.get_running_loop().call_later(max(0.0, delay_s), self._rebalance)

    def _rebalance(self) -> None:
        """Idle servers go to checks of other headers that have waited longer than a restart costs."""
        self._wake = None
        while self._idle:
            ident, server = next(iter(self._idle.items()))
            waiter = self._next(server.key)
            if waiter is None or waiter.key == server.key:
                break
            del self._idle[ident]
            self.switched += 1
            self._grant(waiter, None)
            self._close_later(server)
        heads = self._heads()
        if self._idle and heads:
            now = time.monotonic()
            self._wake_later(min(w.since + self._restart_s(w.key) - now for w in heads) + 0.01)

    def _close_later(self, server: LeanServer) -> None:
        closing = asyncio.ensure_future(server.close())
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    def _hand_on(self, server: LeanServer) -> LeanServer | None:
        """A server free for another check: to the next waiting check of its header, or,
        when the next one has another header, made room for it (the server is returned
        to be closed); idle when nobody waits."""
        waiter = self._next(server.key)
        if waiter is None:
            self._idle[id(server)] = server
            if self._heads():
                self._rebalance()  # (schedules a look for when a wait outgrows a restart)
            return None
        if waiter.key == server.key:
            self._busy.add(server)
            self._grant(waiter, server)
            return None
        self.switched += 1
        self._grant(waiter, None)
        return server

    def _room_freed(self, key: str) -> None:
        """Room that was kept for starting a server for `key` is not used: to the next waiting check."""
        self._drop_room(key)
        self._room_to_next()

    def _drop_room(self, key: str) -> None:
        self._starting[key] -= 1
        if not self._starting[key]:
            del self._starting[key]

    def _room_to_next(self) -> None:
        """Room for one more server: to the longest-waiting check, if any."""
        waiter = self._next(None)
        if waiter is not None:
            self._grant(waiter, None)

    def _grant(self, waiter: _Waiter, server: LeanServer | None) -> None:
        """Take `waiter` off its queue and give it `server`, or (None) room to start one."""
        self._pop(waiter)
        if server is None:
            self._grant_room(waiter.key)
        waiter.granted.set_result(server)

    async def _start(self, key: str) -> LeanServer:
        """Start a server for `key` in the room kept for it."""
        try:
            fast = await supports_fast_report(self.toolchain, self.config)
            server = LeanServer(self.toolchain, self.config, key, fast)
            try:
                await server.start()
            except BaseException:
                await server.close()
                raise
        except BaseException:
            self._room_freed(key)
            raise
        self._drop_room(key)
        self._busy.add(server)
        self.started += 1
        return server

    async def _release(self, server: LeanServer, outcome: RunOutcome | None) -> None:
        """After a check: the server goes on to the next check, or is closed when spent."""
        limit = self.config.recycle_mb or (int(self.config.memory_mb * 0.75) if self.config.memory_mb else None)
        stopped = outcome is not None and (outcome.timed_out or outcome.memory_exceeded)
        spent = stopped or server.behind or server.checks >= self.config.max_checks
        if spent or not server.alive or (limit is not None and server.rss_mb() > limit):
            await self._retire(server)
            return
        self._busy.discard(server)
        replaced = self._hand_on(server)
        if replaced is not None:
            await replaced.close()

    async def _retire(self, server: LeanServer) -> None:
        """Close a server that must not be reused; its room goes to the next waiting check."""
        self._busy.discard(server)
        self._idle.pop(id(server), None)
        self._room_to_next()
        await server.close()

    async def close_when_idle(self) -> None:
        """Close once no check is running or waiting (new checks go to another pool)."""
        try:
            while self._busy or self._starting or self._heads():
                await asyncio.sleep(0.1)
        finally:
            await self.close()

    async def close(self) -> None:
        if self._wake is not None:
            self._wake.cancel()
        for queue in self._waiting.values():
            for waiter in queue:
                if not waiter.granted.done():
                    waiter.granted.set_exception(WorkerCrashed("the pool was closed"))
        self._waiting.clear()
        servers = [*self._idle.values(), *self._busy]
        self._idle.clear()
        self._busy.clear()
        await asyncio.gather(*(s.close() for s in servers), *self._closing, return_exceptions=True)
