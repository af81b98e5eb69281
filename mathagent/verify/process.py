"""Run one sandboxed Lean process to completion, a deadline, or a memory cap.

Whatever happens (normal exit, timeout, memory, the caller being cancelled
by Ctrl-C or a pool shutting down), the whole process tree is killed and
reaped before this returns or re-raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from dataclasses import dataclass
from typing import Any

import psutil

from mathagent.verify.sandbox import SandboxedCommand

_POLL_S = 0.1  # memory and deadline checks; the finished process itself is seen at once
# Lean's output for one check, at most: a 2 kB file with `pp.raw` and nested `#check`s makes
# Lean print hundreds of megabytes, which must not become the verifier's memory. Honest
# output is far smaller (a `#print axioms` report per declaration: 5000 of them are 1.5 MB).
OUTPUT_CAP_BYTES = 32 * 2**20
_READ_CHUNK = 2**16
REAP_S = 10.0  # the longest wait for a killed process's pipes to close
_FIRST_SCAN_S = 0.1
_RESCAN_S = 0.5


@dataclass(frozen=True)
class ProcessResult:
    stdout: str
    stderr: str  # its last few kilobytes
    returncode: int | None
    time_s: float
    timed_out: bool
    memory_exceeded: bool
    peak_rss_mb: float
    output_exceeded: bool = False  # stdout passed the cap: killed, and `stdout` holds what came before


async def run_process(
    command: SandboxedCommand,
    stdin: str,
    *,
    timeout_s: float,
    memory_mb: int | None,
    cwd: str | None = None,
) -> ProcessResult:
    """Run `command` with `stdin`, enforcing the wall clock, memory and output caps."""
    start = time.monotonic()
    proc = await spawn_sandboxed(command, cwd=cwd)
    talk = asyncio.ensure_future(_communicate(proc, stdin.encode("utf-8"), OUTPUT_CAP_BYTES))
    tree = ProcessTree(proc.pid)
    try:
        timed_out, memory_exceeded = await watch(talk, tree, deadline=start + timeout_s, memory_mb=memory_mb)
        if not talk.done():
            kill_tree(proc.pid)
        stdout, stderr, output_exceeded = await _settled(talk, proc)
    except BaseException:
        # cancelled (Ctrl-C, shutdown) or failed: never leave the process behind
        kill_tree(proc.pid)
        talk.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.shield(_reap_after(talk, proc))
        raise
    stopped = timed_out or memory_exceeded or output_exceeded
    return ProcessResult(
        stdout=stdout.decode("utf-8", errors="replace"),
        stderr=stderr.decode("utf-8", errors="replace"),
        returncode=None if stopped else proc.returncode,
        time_s=time.monotonic() - start,
        timed_out=timed_out,
        memory_exceeded=memory_exceeded,
        peak_rss_mb=tree.peak_mb,
        output_exceeded=output_exceeded and not (timed_out or memory_exceeded),
    )


async def _communicate(proc: asyncio.subprocess.Process, stdin: bytes, cap: int) -> tuple[bytes, bytes, bool]:
    """Feed `stdin`, read stdout until the process closes it or it passes `cap` bytes
    (then kill the process), keep stderr's tail; (stdout, stderr tail, over the cap).
    Returns once the process has exited."""
    assert proc.stdin is not None and proc.stdout is not None
    errors = StreamTail()
    feeding = asyncio.ensure_future(_feed(proc.stdin, stdin))
    draining = asyncio.ensure_future(errors.drain(proc.stderr))
    try:
        chunks: list[bytes] = []
        size = 0
        over = False
        while chunk := await proc.stdout.read(_READ_CHUNK):
            size += len(chunk)
            if size > cap:
                over = True
                kill_tree(proc.pid)
                break
            chunks.append(chunk)
        if over:
            await _drop(proc.stdout)  # see `reap`: stderr is still being drained
        await proc.wait()
        await asyncio.gather(feeding, draining)
    finally:
        for task in (feeding, draining):
            task.cancel()
        # so that, cancelled, it leaves the pipes to `reap` with no read waiting on them
        await asyncio.gather(feeding, draining, return_exceptions=True)
    return b"".join(chunks), errors.data, over


async def _settled(
    talk: asyncio.Future[tuple[bytes, bytes, bool]], proc: asyncio.subprocess.Process
) -> tuple[bytes, bytes, bool]:
    """What `_communicate` read. A killed process's talk gets `REAP_S` to end; past
    that, something outside its tree (only possible without bubblewrap: a double
    fork) holds its pipes, and the talk is dropped, so a check that is over anyway
    (timed out, over memory) never waits on it."""
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.shield(talk), REAP_S)
    if talk.done():
        return talk.result()
    talk.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await talk
    _let_go(proc)
    return b"", b"", False


def _let_go(proc: asyncio.subprocess.Process) -> None:
    """Close a killed process's pipes that something outside its tree still holds."""
    transport = getattr(proc, "_transport", None)  # asyncio has no public way to do it
    if transport is not None:
        transport.close()


async def reap(proc: asyncio.subprocess.Process) -> None:
    """Wait, at most `REAP_S`, for a killed process whose pipes nobody reads any
    more, reading them to their end (and dropping what is left).

    asyncio's `wait()` also waits for the process's pipes to close, and a pipe whose
    reader stopped on a full buffer is never seen to close: waiting on a killed Lean
    whose output had backed up hung for good (seen on a loaded machine)."""

    async def drained() -> None:
        await asyncio.gather(_drop(proc.stdout), _drop(proc.stderr))
        await proc.wait()

    try:
        await asyncio.wait_for(drained(), REAP_S)
    except asyncio.TimeoutError:
        _let_go(proc)


async def _reap_after(talk: asyncio.Future[Any], proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(BaseException):
        await talk  # cancelled: its readers have let go of the pipes
    await reap(proc)


async def _drop(stream: asyncio.StreamReader | None) -> None:
    """Read `stream` to its end, keeping nothing."""
    if stream is None:
        return
    with contextlib.suppress(Exception):  # a broken pipe is an end too
        while await stream.read(_READ_CHUNK):
            pass


async def _feed(stream: asyncio.StreamWriter, data: bytes) -> None:
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # Lean exited before reading it all
        stream.write(data)
        await stream.drain()
        stream.close()


async def spawn_sandboxed(
    command: SandboxedCommand, *, cwd: str | None, stream_limit: int | None = None
) -> asyncio.subprocess.Process:
    """Start `command` with a pipe on each stream, leading a session of its own
    (so `kill_tree` reaches its whole group). `stream_limit`: the longest line
    its stdout may write, for readers of lines."""
    limit = {} if stream_limit is None else {"limit": stream_limit}
    return await spawn(
        *command.argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=command.env,
        cwd=cwd,
        start_new_session=True,
        preexec_fn=command.preexec,
        **limit,
    )


async def spawn(*argv: str, **options: Any) -> asyncio.subprocess.Process:
    """`asyncio.create_subprocess_exec`, safe to cancel.

    Cancelled while the process is being created, asyncio kills it and waits for
    it inside the cancelled call, which was seen to hang a sandboxed Lean's start
    for good (and leave bubblewrap behind). So creation runs to its end, shielded,
    and a process whose caller is gone is killed and reaped afterwards.
    """
    creating = asyncio.ensure_future(asyncio.create_subprocess_exec(*argv, **options))
    try:
        return await asyncio.shield(creating)
    except asyncio.CancelledError:
        creating.add_done_callback(_reap_unwanted)
        raise


_UNWANTED: set[asyncio.Task[Any]] = set()  # reapers still running (kept referenced until done)


def _reap_unwanted(creating: asyncio.Future[asyncio.subprocess.Process]) -> None:
    if creating.cancelled() or creating.exception() is not None:
        return
    proc = creating.result()
    kill_tree(proc.pid)
    reaper = asyncio.ensure_future(reap(proc))
    _UNWANTED.add(reaper)
    reaper.add_done_callback(_UNWANTED.discard)


async def watch(
    task: asyncio.Future[Any], tree: ProcessTree, *, deadline: float, memory_mb: int | None
) -> tuple[bool, bool]:
    """Wait for `task` until it is done, the deadline passes or `tree` grows
    past `memory_mb`; (timed_out, memory_exceeded). Never cancels `task`."""
    while not task.done():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return True, False
        await asyncio.wait({task}, timeout=min(_POLL_S, remaining))
        if memory_mb is not None and not task.done() and tree.rss_mb() > memory_mb:
            return False, True
    return False, False


class StreamTail:
    """The last bytes a process wrote to a stream (its stderr), for error messages:
    drained as it comes, so a chatty process never fills the pipe and stalls."""

    def __init__(self, keep: int = 4000) -> None:
        self.keep = keep
        self.data = b""

    async def drain(self, stream: asyncio.StreamReader | None) -> None:
        """Read `stream` to its end, keeping its last `keep` bytes."""
        if stream is None:
            return
        with contextlib.suppress(Exception):  # a broken pipe ends the tail, not the caller
            while chunk := await stream.read(65536):
                self.data = (self.data + chunk)[-self.keep :]

    def text(self, chars: int = 300) -> str:
        return self.data.decode("utf-8", "replace").strip()[-chars:]


class ProcessTree:
    """Resident memory of a process and its descendants.

    Listing descendants scans all of /proc, so the list is refreshed only
    every `_RESCAN_S`; reading each member's memory is cheap and done on
    every poll.
    """

    def __init__(self, pid: int, *, first_scan_s: float = _FIRST_SCAN_S) -> None:
        self.pid = pid
        self.members: list[psutil.Process] = []
        self.next_scan = time.monotonic() + first_scan_s  # by default once the sandbox has started Lean
        self.peak_mb = 0.0

    def rss_mb(self) -> float:
        now = time.monotonic()
        if now >= self.next_scan:
            self.next_scan = now + _RESCAN_S
            try:
                self.members = [psutil.Process(self.pid), *descendants(self.pid)]
            except psutil.Error:
                self.members = []
        total = 0
        for member in self.members:
            with contextlib.suppress(psutil.Error):
                total += member.memory_info().rss
        mb = total / (1024 * 1024)
        self.peak_mb = max(self.peak_mb, mb)
        return mb


def kill_tree(pid: int) -> None:
    """SIGKILL `pid`, its process group and every descendant still alive."""
    try:
        tree = descendants(pid)
    except psutil.Error:
        tree = []
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    for p in tree:
        with contextlib.suppress(psutil.Error):
            p.kill()


def descendants(pid: int) -> list[psutil.Process]:
    """Every live descendant of `pid`.

    Read from each process's own list of children in /proc, which costs one
    small read per process of the tree; psutil's `children(recursive=True)`
    reads the status of every process on the machine instead, milliseconds of
    the event loop per call on a busy machine. Kernels without those lists
    fall back to psutil.
    """
    if not _HAS_CHILDREN_LISTS:
        return psutil.Process(pid).children(recursive=True)
    found: list[psutil.Process] = []
    queue = [pid]
    while queue:
        for child in _children(queue.pop()):
            with contextlib.suppress(psutil.Error):
                found.append(psutil.Process(child))
                queue.append(child)
    return found


def _children(pid: int) -> list[int]:
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    children: list[int] = []
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as listing:
                children += [int(c) for c in listing.read().split()]
        except OSError:
            continue  # the thread or the process ended meanwhile
    return children


_HAS_CHILDREN_LISTS = os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
