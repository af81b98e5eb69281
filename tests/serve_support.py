"""What the `mathagent serve` tests share: a live server in a subprocess, a watch on its Lean
processes, and a Python that can run the published kimina-client."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import platformdirs
import psutil
import pytest

from conftest import PRELUDE_HEADER, ROOT
from mathagent.verify.toolchain import LeanToolchain

HEADER_FILE = ROOT / "examples" / "prelude_header.lean"
# A whole-file fixture: the prelude header without its axioms (a whole file may not declare any).
AXIOM_FREE = (
    PRELUDE_HEADER.replace("axiom cheat : False\n", "")
    .replace("axiom sorryAx", "-- no sorryAx")
    .replace("axiom propext", "-- no propext")
)
STATEMENT = "theorem two_add_two : Eq (N.add two two) four :="
GENUINE_FILE = AXIOM_FREE + STATEMENT + " Eq.refl _\n"
TYPE_ERROR_FILE = AXIOM_FREE + "theorem two_add_two : Eq (N.add two two) ten := Eq.refl _\n"
# Lean works on this for minutes (10^5-sized unary numbers): only a time limit stops it.
RUNAWAY = (
    "set_option maxRecDepth 100000 in\nset_option maxHeartbeats 0 in\n"
    "theorem slow : Eq (N.mul (N.mul (N.mul ten ten) ten) (N.mul ten ten)) (N.mul (N.mul ten ten) (N.mul "
    "(N.mul ten ten) ten)) := Eq.refl _\n"
)
RUNAWAY_FILE = AXIOM_FREE + RUNAWAY


class LeanWatch:
    """Every Lean process a server starts, seen by sampling its descendants until it exits."""

    def __init__(self, server_pid: int, lean: LeanToolchain) -> None:
        self.server_pid = server_pid
        self.lean = str(lean.lean)
        self.seen: dict[int, float] = {}  # pid -> create time
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.current()
            time.sleep(0.05)

    def current(self) -> list[psutil.Process]:
        """The server's live Lean descendants (and remember them)."""
        found = []
        try:
            children = psutil.Process(self.server_pid).children(recursive=True)
        except psutil.Error:
            return []
        for child in children:
            with contextlib.suppress(psutil.Error, IndexError):
                if child.exe() == self.lean or child.cmdline()[0] == self.lean:
                    self.seen.setdefault(child.pid, child.create_time())
                    found.append(child)
        return found

    def leftover(self) -> list[int]:
        """Lean processes this server started that are still alive."""
        self._stop.set()
        self._thread.join(5)
        alive = []
        for pid, created in self.seen.items():
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                if proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
        return alive


class Server:
    """A `mathagent serve` subprocess."""

    def __init__(self, proc: subprocess.Popen[str], url: str, lean: LeanToolchain, stderr: Path) -> None:
        self.proc = proc
        self.url = url
        self.stderr_path = stderr
        self.watch = LeanWatch(proc.pid, lean)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Send `sig`; wait for the exit (SIGKILL after `timeout`); the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            return self.wait(timeout, f"signal {sig}")
        return self.proc.returncode

    def wait(self, timeout: float, after: str = "its stop signal") -> int:
        """Wait for an exit already asked for, sending nothing more (SIGKILL after `timeout`)."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"the server did not stop within {timeout} s of {after}") from None


@contextlib.contextmanager
def serving(
    lean: LeanToolchain, tmp: Path, *args: str, env: dict[str, str] | None = None, check_leftovers: bool = True
) -> Iterator[Server]:
    """A live server on a free loopback port; stopped (SIGTERM) on the way out, then checked for leftover Lean."""
    argv = [sys.executable, "-m", "mathagent", "serve", "--port", "0", "--lean", str(lean.lean)]
    if "--header-file" not in args:
        argv += ["--header-file", str(HEADER_FILE)]
    stderr_path = tmp / f"serve-{time.monotonic_ns()}.stderr"
    with stderr_path.open("w") as stderr:
        proc = subprocess.Popen(
            [*argv, *args],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            cwd=ROOT,
            env={**os.environ, "COLUMNS": "200", **(env or {})},
        )
    assert proc.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or []], daemon=True).start()
    url = ""
    deadline = time.monotonic() + 90
    while not url and time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(queue.Empty):
            line = lines.get(timeout=0.2)
            if "listening on " in line:
                url = line.split("listening on ", 1)[1].split()[0]
    if not url:
        proc.kill()
        proc.wait()
        raise AssertionError(f"the server did not start: {stderr_path.read_text()}")
    server = Server(proc, url, lean, stderr_path)
    try:
        yield server
    finally:
        try:
            server.stop()
        finally:
            leftover = server.watch.leftover()
            for pid in leftover:
                with contextlib.suppress(psutil.Error):
                    psutil.Process(pid).kill()
        if check_leftovers:
            assert not leftover, f"the server left Lean processes behind: {leftover}"


# ---------------------------------------------------------------- the published kimina client

KIMINA_CLIENT = "kimina-client==0.2.1"
# kimina-client's own dependencies, less `datasets` (only its benchmark helper imports it), plus the two it
# uses without declaring (pygments, tqdm)
KIMINA_DEPENDENCIES = [
    "httpx",
    "pydantic",
    "pydantic-settings",
    "tenacity",
    "colorama",
    "tabulate",
    "loguru",
    "python-dotenv",
    "requests",
    "pygments",
    "tqdm",
]


def _imports_kimina(python: str) -> bool:
    probe = subprocess.run([python, "-c", "import kimina_client"], capture_output=True, timeout=120)
    return probe.returncode == 0


def _python_312() -> str | None:
    """An interpreter new enough for kimina-client (pydantic rejects its TypedDicts before Python 3.12)."""
    candidates = [shutil.which("python3.13"), shutil.which("python3.12")]
    for pattern in (
        "~/.pyenv/versions/3.1[2-9]*/bin/python3",
        "/usr/bin/python3.1[2-9]",
        "/usr/local/bin/python3.1[2-9]",
    ):
        candidates += sorted(glob.glob(os.path.expanduser(pattern)), reverse=True)
    for candidate in filter(None, candidates):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            probe = subprocess.run(
                [candidate, "-c", "import sys, venv; assert sys.version_info >= (3, 12)"], capture_output=True
            )
            if probe.returncode == 0:
                return candidate
    return None


def kimina_python() -> str:
    """A Python that imports the published kimina-client: this one, $MATHAGENT_KIMINA_PYTHON, or a
    virtual environment made once from PyPI in the user cache folder."""
    for candidate in filter(None, [os.environ.get("MATHAGENT_KIMINA_PYTHON"), sys.executable]):
        if _imports_kimina(candidate):
            return candidate
    folder = Path(platformdirs.user_cache_dir("mathagent-tests")) / KIMINA_CLIENT.replace("==", "-")
    python = folder / "bin" / "python"
    if python.exists() and _imports_kimina(str(python)):
        return str(python)
    base = _python_312()
    if base is None:
        pytest.skip("kimina-client needs Python >= 3.12 (its models fail on 3.11); no such interpreter here")
    steps = [
        [base, "-m", "venv", "--clear", str(folder)],
        [str(python), "-m", "pip", "install", "-q", "--no-deps", KIMINA_CLIENT],
        [str(python), "-m", "pip", "install", "-q", *KIMINA_DEPENDENCIES],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            pytest.skip(f"could not install {KIMINA_CLIENT} from PyPI: {done.stderr.strip()[-400:]}")
    assert _imports_kimina(str(python)), "kimina-client installed but does not import"
    return str(python)


# The client side, run by that Python: the job on stdin, one RESULT line on stdout (the client logs to stdout too).
KIMINA_SCRIPT = r"""
import asyncio, json, sys
import httpx
from kimina_client import AsyncKiminaClient, KiminaClient, Snippet
from kimina_client.models import VerifyResponse, is_valid

job = json.load(sys.stdin)
out = {}
client = KiminaClient(api_url=job["url"], api_key=job.get("key"), n_retries=1, http_timeout=300)
if job.get("health"):
    out["health"] = client.health()

def read(results):
    found = {}
    for r in results:
        response = r.response if isinstance(r.response, dict) else None
        command = response is not None and "message" not in response
        found[r.id] = {
            "status": r.analyze().status.value,
            "valid": bool(command and is_valid(response)),
            "error": r.error,
            "messages": [m["data"] for m in (response or {}).get("messages") or []],
            "severities": [m["severity"] for m in (response or {}).get("messages") or []],
            "sorries": len((response or {}).get("sorries") or []),
        }
    return found

snippets = [Snippet(id=s["id"], code=s["code"]) for s in job.get("snippets", [])]
if snippets:
    checked = client.check(snippets, timeout=job["timeout"], show_progress=False, batch_size=job.get("batch", 8))
    out["results"] = read(checked.results)
if job.get("async_snippets"):
    async def go():
        aclient = AsyncKiminaClient(api_url=job["url"], api_key=job.get("key"), n_retries=1, http_timeout=300)
        try:
            more = [Snippet(id=s["id"], code=s["code"]) for s in job["async_snippets"]]
            return await aclient.check(more, timeout=job["timeout"], show_progress=False)
        finally:
            await aclient.close()
    out["async_results"] = read(asyncio.run(go()).results)
if job.get("legacy"):
    headers = {"Authorization": f"Bearer {job['key']}"} if job.get("key") else {}
    body = {"codes": job["legacy"], "timeout": job["timeout"]}
    answer = httpx.post(job["url"] + "/verify", json=body, headers=headers, timeout=300)
    answer.raise_for_status()
    parsed = VerifyResponse.model_validate(answer.json())
    out["legacy"] = {
        str(r["custom_id"]): {
            "error": r.get("error"),
            "valid": r.get("response") is not None and "message" not in r["response"] and is_valid(r["response"]),
            "time": (r.get("response") or {}).get("time"),
        }
        for r in parsed.results
    }
print("RESULT " + json.dumps(out))
"""


def run_kimina(python: str, job: dict[str, Any], timeout: float = 600) -> dict[str, Any]:
    """Run the published client against a server; what it made of the answers."""
    done = subprocess.run(
        [python, "-c", KIMINA_SCRIPT], input=json.dumps(job), capture_output=True, text=True, timeout=timeout
    )
    results = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and results, f"the client failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return json.loads(results[-1].removeprefix("RESULT "))
