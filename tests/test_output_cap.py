"""Lean's output for one check is capped: a 1 kB file that makes Lean print hundreds of
megabytes (`pp.raw` on a deeply nested term) gets its own `too_large` verdict, the
verifier's memory stays small, and every other row is answered, on both pools, in
the CLI and the service."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from conftest import ROOT
from mathagent.verify import process as process_module
from mathagent.verify import warm as warm_module
from mathagent.verify.process import OUTPUT_CAP_BYTES
from mathagent.verify.tasks import VerifyTask
from mathagent.verify.toolchain import LeanToolchain
from mathagent.verify.verifier import Verifier, VerifyOptions
from serve_support import GENUINE_FILE, serving

DEPTH = 18  # Lean prints about 185 MB for this one `#check` (5 s uncapped)
BOMB = (
    "prelude\nuniverse u\ninductive Eq {α : Sort u} : α → α → Prop where\n  | refl (a : α) : Eq a a\n"
    "inductive N where\n  | z : N\ntheorem ok : Eq N.z N.z := Eq.refl _\nset_option pp.raw true\n"
    "#check " + "(Eq.refl " * DEPTH + "N.z" + ")" * DEPTH + "\n"
)
# The verifier's own memory (not Lean's) while it checks the bomb: an uncapped read held
# the output several times over (bytes, text, parsed messages, the verdict's JSON).
PEAK_MB = 400


@contextmanager
def peak_rss(pid: int) -> Iterator[list[float]]:
    """The largest resident memory of process `pid` (alone) while the block runs, in MB."""
    peak = [0.0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], psutil.Process(pid).memory_info().rss / 2**20)
            except psutil.Error:
                return
            time.sleep(0.02)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        stop.set()
        thread.join()


def _assert_capped(row: dict[str, object]) -> None:
    assert row["verdict"] == "rejected" and row["reasons"] == ["too_large"], row
    assert "output went over the cap" in str(row["message"]), row


def test_the_bomb_really_prints_more_than_the_cap(lean: LeanToolchain, tmp_path: Path) -> None:
    source = tmp_path / "bomb.lean"
    source.write_text(BOMB, encoding="utf-8")
    with subprocess.Popen([str(lean.lean), "--json", str(source)], stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        seen = 0
        while seen <= OUTPUT_CAP_BYTES and (chunk := proc.stdout.read(2**20)):
            seen += len(chunk)
        proc.kill()
    assert seen > OUTPUT_CAP_BYTES


@pytest.mark.slow
@pytest.mark.parametrize("pool", ["cold", "warm"])
def test_an_output_bomb_is_too_large_and_costs_no_memory(lean: LeanToolchain, tmp_path: Path, pool: str) -> None:
    rows = tmp_path / "rows.jsonl"
    lines = [{"id": "bomb", "full_code": BOMB}, {"id": "honest", "full_code": GENUINE_FILE}]
    rows.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    command = [sys.executable, "-m", "mathagent", "verify", "-i", str(rows), "--json", "--no-cache", "--pool", pool]
    with subprocess.Popen(
        [*command, "--lean", str(lean.lean), "--timeout", "120"], stdout=subprocess.PIPE, text=True, cwd=ROOT
    ) as proc:
        with peak_rss(proc.pid) as peak:
            out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1  # one rejected
    verdicts = {row["id"]: row for row in map(json.loads, out.splitlines())}
    _assert_capped(verdicts["bomb"])
    assert verdicts["honest"]["verdict"] == "verified", verdicts
    assert len(out) < 100_000  # no megabytes of term in the verdict
    assert peak[0] < PEAK_MB, f"the verifier peaked at {peak[0]:.0f} MB"


@pytest.mark.slow
def test_the_service_answers_the_rest_of_a_request_with_a_bomb_in_it(lean: LeanToolchain, tmp_path: Path) -> None:
    snippets = [{"id": "bomb", "code": BOMB}, {"id": "honest", "code": GENUINE_FILE}]
    with serving(lean, tmp_path, "--workers", "2", "--no-cache") as server:
        with peak_rss(server.pid) as peak:
            kimina = httpx.post(server.url + "/api/check", json={"snippets": snippets, "timeout": 120}, timeout=300)
            native = httpx.post(
                server.url + "/v1/verify",
                json={"tasks": [{"id": s["id"], "full_code": s["code"]} for s in snippets]},
                timeout=300,
            )
    assert kimina.status_code == 200, kimina.text
    results = {r["id"]: r for r in kimina.json()["results"]}
    _assert_capped(results["bomb"]["mathagent"])
    assert results["honest"]["mathagent"]["verdict"] == "verified", results
    assert native.status_code == 200, native.text
    verdicts = {r["id"]: r for r in native.json()["results"]}
    _assert_capped(verdicts["bomb"])
    assert verdicts["honest"]["verdict"] == "verified", verdicts
    assert peak[0] < PEAK_MB, f"the service peaked at {peak[0]:.0f} MB"


async def _backed_up() -> asyncio.subprocess.Process:
    """A process whose output fills its pipe and asyncio's buffer, so that asyncio stops reading it."""
    proc = await process_module.spawn(
        "cat",
        "/dev/zero",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    await asyncio.sleep(0.3)
    return proc


def test_stopping_at_the_cap_waits_for_the_process_even_with_its_output_backed_up() -> None:
    # On a loaded machine the reader can fall behind: asyncio then stops reading the pipe
    # (its buffer is full), never sees it close once Lean is killed, and `wait()` waited
    # for that for good. Here the buffer is full before the first read, as it was then.
    async def go() -> tuple[bytes, bool, int | None]:
        proc = await _backed_up()
        out, _, over = await asyncio.wait_for(process_module._communicate(proc, b"", 1000), 20)
        return out, over, proc.returncode

    out, over, returncode = asyncio.run(go())
    assert over and len(out) <= 1000 and returncode is not None


def test_reaping_a_killed_process_whose_output_backed_up_ends_at_once() -> None:
    # what closing a server, a cancelled check or a REPL's stop do with a Lean nobody reads any more
    async def go() -> tuple[float, int | None]:
        proc = await _backed_up()
        process_module.kill_tree(proc.pid)
        started = time.monotonic()
        await process_module.reap(proc)
        return time.monotonic() - started, proc.returncode

    took, returncode = asyncio.run(go())
    assert returncode is not None and took < 5


@pytest.mark.slow
def test_an_oversized_report_read_together_with_the_answer_is_still_too_large(
    lean: LeanToolchain, monkeypatch: pytest.MonkeyPatch, no_leftover_lean: None
) -> None:
    # The server's reader skips the oversized report and then reads Lean's answer; when
    # both are in before the check looks (a loaded machine, seen in CI), the answer's
    # diagnostics lack everything after the bomb and once read "checks missing".
    # Here the check always looks late.
    real_watch = warm_module.watch

    async def late(*args: Any, **kwargs: Any) -> tuple[bool, bool]:
        stopped = await real_watch(*args, **kwargs)
        await asyncio.sleep(5.0)
        return stopped

    monkeypatch.setattr(warm_module, "watch", late)
    options = VerifyOptions(workers=1, timeout_s=120, memory_mb=4096, pool="warm")

    async def go() -> list[Any]:
        async with Verifier(lean, options) as verifier:
            return [
                await verifier.verify(VerifyTask(id=i, full_code=c)) for i, c in (("bomb", BOMB), ("ok", GENUINE_FILE))
            ]

    bomb, honest = asyncio.run(go())
    _assert_capped(bomb.to_dict())
    assert honest.verified, honest
