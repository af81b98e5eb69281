"""The warm pool: language servers reused across checks, without leaking
anything between checks, and replaced when they die."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import psutil
import pytest

from conftest import PRELUDE_HEADER, lean_processes
from mathagent.verify.tasks import VerifyTask
from mathagent.verify.toolchain import LeanToolchain
from mathagent.verify.verdict import Verdict
from mathagent.verify.verifier import Verifier, VerifyOptions

WARM = VerifyOptions(workers=1, timeout_s=30, memory_mb=4096, default_header=PRELUDE_HEADER, pool="warm")
# about a second of kernel work: long enough to kill the server in the middle
SLOW_PROOF = "theorem slow_comm : Eq (N.mul (N.mul ten ten) (N.mul ten two)) (N.mul (N.mul ten two) (N.mul ten ten)) :="


def run_all(lean: LeanToolchain, options: VerifyOptions, tasks: list[VerifyTask]) -> tuple[list[Verdict], int]:
    """Check `tasks` one after another on one Verifier; (verdicts, servers started)."""

    async def go() -> tuple[list[Verdict], int]:
        async with Verifier(lean, options) as verifier:
            verdicts = [await verifier.verify(t) for t in tasks]
            pool = verifier.warm_pool
            return verdicts, pool.started if pool else 0

    return asyncio.run(go())


def test_a_check_cannot_see_what_an_earlier_check_defined(lean: LeanToolchain, no_leftover_lean: None) -> None:
    defines = VerifyTask(
        id="defines",
        formal_statement="theorem uses_helper : Eq two two :=",
        proof=" Eq.refl two\ntheorem helper_lemma : Eq four four := Eq.refl four",
    )
    uses = VerifyTask(id="uses", formal_statement="theorem needs_helper : Eq four four :=", proof=" helper_lemma")
    (first, second), started = run_all(lean, WARM, [defines, uses])
    assert first.verified
    assert second.verdict == "rejected" and second.reasons == ["lean_error"]
    assert any("helper_lemma" in d.message for d in second.diagnostics)
    assert started == 1  # the same server ran both checks


def test_servers_are_keyed_by_header_and_evicted_least_recently_used(
    lean: LeanToolchain, no_leftover_lean: None
) -> None:
    other_header = PRELUDE_HEADER + "noncomputable def five : N := N.s four\n"
    a = VerifyTask(id="a", formal_statement="theorem a : Eq two two :=", proof=" Eq.refl two")
    b = VerifyTask(id="b", formal_statement="theorem b : Eq five five :=", proof=" Eq.refl five", header=other_header)
    a2 = VerifyTask(id="a2", formal_statement="theorem a2 : Eq four four :=", proof=" Eq.refl four")
    verdicts, started = run_all(lean, WARM, [a, a2, b, a])
    assert all(v.verified for v in verdicts)
    assert started == 3  # a, a2 share one; b needs its own and evicts it (1 worker); a again needs a new one
    _, started_two = run_all(lean, dataclasses.replace(WARM, workers=2), [a, b, a2, a])
    assert started_two == 2  # with room for both headers nothing is evicted


def test_servers_are_recycled_after_their_check_budget(
    lean: LeanToolchain, no_leftover_lean: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mathagent.verify import verifier as verifier_module

    real = verifier_module.WarmConfig
    monkeypatch.setattr(verifier_module, "WarmConfig", lambda **kw: real(**{**kw, "max_checks": 2}))
    tasks = [
        VerifyTask(id=str(i), formal_statement=f"theorem t{i} : Eq two two :=", proof=" Eq.refl two") for i in range(5)
    ]
    verdicts, started = run_all(lean, WARM, tasks)
    assert all(v.verified for v in verdicts)
    assert started == 3


@pytest.mark.slow
def test_a_timed_out_server_is_never_reused(lean: LeanToolchain, no_leftover_lean: None) -> None:
    runaway = VerifyTask(
        id="slow",
        formal_statement="theorem slow : Eq (N.mul (N.mul (N.mul ten ten) ten) (N.mul ten ten)) (N.mul (N.mul \
ten ten) (N.mul (N.mul ten ten) ten)) :=",
        proof=" Eq.refl _",
        header=PRELUDE_HEADER + "set_option maxRecDepth 100000\nset_option maxHeartbeats 0\n",
    )
    quick = dataclasses.replace(runaway, id="quick", formal_statement="theorem q : Eq two two :=", proof=" Eq.refl two")
    (slow, fast), started = run_all(lean, dataclasses.replace(WARM, timeout_s=2), [runaway, quick])
    assert slow.verdict == "timeout" and fast.verified
    assert started == 2


@pytest.mark.slow
def test_a_server_killed_mid_check_is_replaced_and_the_check_retried(
    lean: LeanToolchain, no_leftover_lean: None
) -> None:
    task = VerifyTask(
        id="killed",
        formal_statement=SLOW_PROOF,
        proof=" Eq.refl _",
        header=PRELUDE_HEADER + "set_option maxRecDepth 100000\n",
    )

    async def go() -> tuple[Verdict, int]:
        async with Verifier(lean, WARM) as verifier:
            job = asyncio.ensure_future(verifier.verify(task))
            deadline = time.monotonic() + 30
            while not any("--worker" in " ".join(p.info["cmdline"] or []) for p in _servers(lean)):
                assert time.monotonic() < deadline, "no Lean worker started"
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            for proc in _servers(lean):
                if "--worker" in " ".join(proc.info["cmdline"] or []):
                    proc.kill()  # the file worker dies in the middle of the check
            verdict = await asyncio.wait_for(job, 60)
            pool = verifier.warm_pool
            assert pool is not None
            return verdict, pool.started

    verdict, started = asyncio.run(go())
    assert verdict.verified, verdict
    assert started == 2


def _servers(lean: LeanToolchain) -> list[psutil.Process]:
    return lean_processes(lean)  # `.info["cmdline"]` was read when they were listed


def test_same_verdicts_cold_and_warm_on_the_example_tasks(lean: LeanToolchain) -> None:
    from conftest import ROOT
    from mathagent.verify.tasks import read_jsonl

    tasks = [t for t in read_jsonl(ROOT / "examples" / "tasks.jsonl") if isinstance(t, VerifyTask)]

    def verdicts(pool: str) -> list[tuple[str, list[str]]]:
        options = dataclasses.replace(WARM, pool=pool, workers=2)
        got, _ = run_all(lean, options, tasks)
        return [(v.verdict, v.reasons) for v in got]

    assert verdicts("warm") == verdicts("cold")


def test_cancelling_checks_while_servers_start_leaves_nothing_behind(
    lean: LeanToolchain, no_leftover_lean: None
) -> None:
    # Ctrl-C or a client going away while the pool starts its servers: the processes being
    # created are reaped, nothing hangs, and the next checks run normally
    tasks = [
        VerifyTask(id=str(i), formal_statement=f"theorem t{i} : Eq two two :=", proof=" Eq.refl two") for i in range(4)
    ]

    async def go() -> list[Verdict]:
        async with Verifier(lean, dataclasses.replace(WARM, workers=4)) as verifier:
            for delay in (0.0, 0.001, 0.005, 0.02, 0.05):
                checks = [asyncio.ensure_future(verifier.verify(t)) for t in tasks]
                await asyncio.sleep(delay)
                for check in checks:
                    check.cancel()
                await asyncio.gather(*checks, return_exceptions=True)
            return [await verifier.verify(t) for t in tasks]

    verdicts = asyncio.run(asyncio.wait_for(go(), 120))
    assert all(v.verified for v in verdicts), verdicts
    time.sleep(0.5)  # reapers of cancelled starts finish on the loop's way out


# ---------------------------------------------------------------- scheduling by header

OTHER_HEADER = PRELUDE_HEADER + "noncomputable def five : N := N.s four\n"


def _mixed(count: int) -> list[VerifyTask]:
    """Checks alternating between two headers, as a service sees native rows and whole files."""
    tasks = []
    for i in range(count):
        if i % 2:
            tasks.append(
                VerifyTask(
                    id=f"b{i}",
                    formal_statement=f"theorem b{i} : Eq five five :=",
                    proof=" Eq.refl five",
                    header=OTHER_HEADER,
                )
            )
        else:
            tasks.append(VerifyTask(id=f"a{i}", formal_statement=f"theorem a{i} : Eq two two :=", proof=" Eq.refl two"))
    return tasks


def _all_at_once(lean: LeanToolchain, options: VerifyOptions, tasks: list[VerifyTask]) -> tuple[list[Verdict], Any]:
    async def go() -> tuple[list[Verdict], Any]:
        async with Verifier(lean, options) as verifier:
            verdicts = await asyncio.gather(*(verifier.verify(t) for t in tasks))
            return list(verdicts), verifier.warm_pool

    return asyncio.run(go())


def test_a_mixed_load_keeps_each_server_on_one_header(lean: LeanToolchain, no_leftover_lean: None) -> None:
    verdicts, pool = _all_at_once(lean, dataclasses.replace(WARM, workers=2), _mixed(16))
    assert all(v.verified for v in verdicts), verdicts
    # both headers get a server and keep it: at most one switch, if the first checks to arrive were of one header
    assert pool.switched <= 1 and pool.started == 2 + pool.switched


def test_one_server_serves_a_header_s_queue_before_it_switches(lean: LeanToolchain, no_leftover_lean: None) -> None:
    verdicts, pool = _all_at_once(lean, WARM, _mixed(8))  # one worker, a switch_after_s longer than the run
    assert all(v.verified for v in verdicts), verdicts
    assert pool.started == 2 and pool.switched == 1  # all of the first header, then all of the other


def test_a_header_with_no_server_is_not_starved(
    lean: LeanToolchain, no_leftover_lean: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mathagent.verify import verifier as verifier_module

    real = verifier_module.WarmConfig
    monkeypatch.setattr(verifier_module, "WarmConfig", lambda **kw: real(**{**kw, "switch_after_s": 0.0}))
    verdicts, pool = _all_at_once(lean, WARM, _mixed(8))
    assert all(v.verified for v in verdicts), verdicts
    assert pool.switched >= 3  # the waiting header takes the server at once, back and forth


def test_a_cancelled_waiting_check_leaves_its_place_to_the_next(lean: LeanToolchain, no_leftover_lean: None) -> None:
    async def go() -> list[Verdict]:
        async with Verifier(lean, WARM) as verifier:
            tasks = _mixed(6)
            checks = [asyncio.ensure_future(verifier.verify(t)) for t in tasks]
            await asyncio.sleep(0.05)
            checks[3].cancel()
            checks[4].cancel()
            done = await asyncio.gather(*checks, return_exceptions=True)
            assert verifier.warm_pool is not None and verifier.warm_pool.state()["waiting"] == 0
            return [d for d in done if isinstance(d, Verdict)] + [await verifier.verify(tasks[4])]

    verdicts = asyncio.run(asyncio.wait_for(go(), 120))
    assert len(verdicts) >= 5 and all(v.verified for v in verdicts), verdicts


def test_cancellations_at_any_moment_never_wedge_the_pool(lean: LeanToolchain, no_leftover_lean: None) -> None:
    # clients leaving while their checks wait, start, run or hand their server on: afterwards
    # every new check still gets a server (a lost place in the scheduler would wait for ever)
    import random

    rng = random.Random(7)

    async def go() -> list[Verdict]:
        async with Verifier(lean, dataclasses.replace(WARM, workers=2)) as verifier:
            for _ in range(6):
                checks = [asyncio.ensure_future(verifier.verify(t)) for t in _mixed(10)]
                await asyncio.sleep(rng.uniform(0.0, 0.3))
                for check in rng.sample(checks, 6):
                    check.cancel()
                await asyncio.gather(*checks, return_exceptions=True)
            assert verifier.warm_pool is not None and verifier.warm_pool.state()["waiting"] == 0
            return list(await asyncio.gather(*(verifier.verify(t) for t in _mixed(6))))

    verdicts = asyncio.run(asyncio.wait_for(go(), 120))
    assert all(v.verified for v in verdicts), verdicts


def test_servers_starting_together_share_one_fast_report_probe(
    lean: LeanToolchain, no_leftover_lean: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mathagent.verify import warm

    probes: list[int] = []
    real_probe = warm._probe_fast_report

    async def counted(toolchain: LeanToolchain, config: warm.WarmConfig) -> bool:
        probes.append(1)
        return await real_probe(toolchain, config)

    monkeypatch.setattr(warm, "_probe_fast_report", counted)
    monkeypatch.setattr(warm, "_FAST_REPORT", {})
    config = warm.WarmConfig(workers=2, timeout_s=30, memory_mb=4096, sandbox_kind="none")

    async def go() -> list[bool]:
        callers = [asyncio.ensure_future(warm.supports_fast_report(lean, config)) for _ in range(4)]
        callers[0].cancel()  # one caller going away leaves the probe to the others
        return await asyncio.gather(*callers[1:])

    answers = asyncio.run(go())
    assert len(probes) == 1
    assert len(set(answers)) == 1
