"""Lean's output for one check is capped: a 1 kB file that makes Lean print hundreds of
megabytes (`pp.raw` on a deeply nested term) gets its own `too_large` verdict, the
verifier's memory stays small, and every other row is answered, on both pools, in
the CLI and the service."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pytest

from conftest import ROOT
from mathagent.verify.process import OUTPUT_CAP_BYTES
from mathagent.verify.toolchain import LeanToolchain
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
