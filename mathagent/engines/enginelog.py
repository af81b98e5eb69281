"""Where engine and torch chatter goes: a log file, not a person's terminal.

vLLM, torch and their worker processes print warnings ("Triton not
available", "NUMA binding", tracebacks of a worker stopped by Ctrl-C)
straight to file descriptor 2, from C++ and from child processes that
inherit it, where Python's logging cannot catch them. While an engine
starts, descriptor 2 points at `<cache>/logs/engine.log`, so its children
write there for good; mathagent's own messages are printed before and
after. `mathagent --verbose` (or MATHAGENT_VERBOSE=1) leaves the terminal
alone and shows everything.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

VERBOSE_ENV = "MATHAGENT_VERBOSE"
_redirect_lock = threading.Lock()  # descriptor 2 is process-wide: one redirection at a time


def verbose() -> bool:
    return bool(os.environ.get(VERBOSE_ENV) or os.environ.get("MATHAGENT_VLLM_VERBOSE"))


def log_path(cache_dir: Path) -> Path:
    return cache_dir / "logs" / "engine.log"


@contextlib.contextmanager
def stderr_to_log(path: Path | None, what: str) -> Iterator[None]:
    """Descriptor 2 into `path` (appended) for the duration; a no-op when verbose or without a path."""
    if verbose() or path is None:
        yield
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError:
        yield  # no log folder: chatter on the terminal beats failing to start
        return
    with _redirect_lock:
        sys.stderr.flush()
        saved, python_stderr = os.dup(2), sys.stderr
        try:
            os.write(log, f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} {what} (pid {os.getpid()})\n".encode())
            os.dup2(log, 2)
            # Python-level writers too: a rich spinner replaces sys.stderr with a proxy onto the
            # terminal, and logging handlers created now keep whatever sys.stderr is
            sys.stderr = _python_stream(path)
            yield
        finally:
            sys.stderr.flush()
            sys.stderr = python_stderr
            os.dup2(saved, 2)
            os.close(saved)
            os.close(log)


_streams: dict[Path, TextIO] = {}


def _python_stream(path: Path) -> TextIO:
    """One text stream per log file, open for the life of the process: handlers that kept it
    must never write to a closed file (logging would then complain on the terminal)."""
    if path not in _streams:
        _streams[path] = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - lives as long as the process
    return _streams[path]
