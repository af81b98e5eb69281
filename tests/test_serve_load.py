"""`mathagent serve` under load and faults: many clients, a killed Lean, SIGTERM mid-check."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from mathagent.verify.toolchain import LeanToolchain
from serve_support import AXIOM_FREE, RUNAWAY_FILE, Server, serving

pytestmark = pytest.mark.slow

# Lean needs about 2 s of kernel work for this one (2000-sized unary numbers)
SLOW_FILE = (
    AXIOM_FREE
    + "set_option maxRecDepth 100000 in\nset_option maxHeartbeats 0 in\n"
    + "theorem slow : Eq (N.mul (N.mul ten ten) (N.mul ten two)) (N.mul (N.mul ten two) (N.mul ten ten)) := Eq.refl _\n"
)


def _work(count: int) -> list[tuple[str, dict[str, Any], str]]:
    """`count` one-check requests (path, body, expected verdict), cheap prelude checks of every kind:
    different on purpose (the cache answers only the repeats), with one in ten an exact repeat."""
    work: list[tuple[str, dict[str, Any], str]] = []
    for i in range(count):
        if i % 10 == 9:  # a repeat of an earlier check under a new id: the cache or the check in flight answers
            path, body, expected = work[i // 2]
            body = _renamed(body, f"again{i}")
            work.append((path, body, expected))
            continue
        kind = i % 9
        name = f"t{i}"
        if kind in (0, 1, 2):
            row = {
                "id": name,
                "formal_statement": f"theorem {name} : Eq (N.add two two) four :=",
                "proof": " Eq.refl _",
            }
            work.append(("/v1/verify", {"tasks": [row]}, "verified"))
        elif kind == 3:
            row = {"id": name, "formal_statement": f"theorem {name} : Eq (N.add two two) ten :=", "proof": " Eq.refl _"}
            work.append(("/v1/verify", {"tasks": [row]}, "rejected"))
        elif kind == 4:
            row = {"id": name, "formal_statement": f"theorem {name} : Eq two four :=", "proof": " False.elim cheat"}
            work.append(("/v1/verify", {"tasks": [row]}, "rejected"))
        elif kind == 5:
            row = {"id": name, "formal_statement": f"theorem {name} : Eq two two :=", "proof": " Eq.refl _\n#exit"}
            work.append(("/v1/verify", {"tasks": [row]}, "rejected"))
        elif kind in (6, 7):
            code = AXIOM_FREE + f"theorem {name} : Eq (N.add two two) four := Eq.refl _\n"
            work.append(("/api/check", {"snippets": [{"id": name, "code": code}], "timeout": 60}, "verified"))
        else:
            code = AXIOM_FREE + f"theorem {name} : Eq two ten := Eq.refl _\n"
            work.append(("/api/check", {"snippets": [{"id": name, "code": code}], "timeout": 60}, "rejected"))
    return work


def _renamed(body: dict[str, Any], ident: str) -> dict[str, Any]:
    if "tasks" in body:
        return {"tasks": [{**body["tasks"][0], "id": ident}]}
    return {**body, "snippets": [{**body["snippets"][0], "id": ident}]}


def _vary(body: dict[str, Any]) -> dict[str, Any]:
    """The same check with other theorem names (so it is not one of the measured run's)."""
    varied: dict[str, Any] = json.loads(json.dumps(body).replace("theorem t", "theorem warm_t"))
    return varied


def _ident(body: dict[str, Any]) -> str:
    return str(body["tasks"][0]["id"] if "tasks" in body else body["snippets"][0]["id"])


def _verdict_of(path: str, answer: dict[str, Any]) -> tuple[str, str]:
    """(id, verdict) from a one-check response of either API."""
    [result] = answer["results"]
    if path == "/v1/verify":
        return result["id"], result["verdict"]
    return result["id"], result["mathagent"]["verdict"]


class RssWatch:
    """The server process's resident memory, sampled while it works."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self.process.memory_info().rss / 2**20)
            time.sleep(0.25)

    def stop(self) -> list[float]:
        self._stop.set()
        self._thread.join(5)
        return self.samples


def test_2000_checks_from_64_clients_each_answered_once(lean: LeanToolchain, tmp_path: Path) -> None:
    work = _work(2000)
    clients = 64
    with serving(lean, tmp_path, "--workers", "2") as server:
        answers: list[tuple[str, str, str]] = []  # (sent id, answered id, verdict)
        statuses: Counter[int] = Counter()
        # warm up (the first checks start the warm Lean servers), then measure memory under load
        warm_up = [(p, _renamed(b, f"warm{i}"), v) for i, (p, b, v) in enumerate(_work(9))]
        warm_up = [(p, _vary(b), v) for p, b, v in warm_up]
        asyncio.run(_drive(server.url, warm_up, 4, answers, statuses))
        answers.clear()
        statuses.clear()
        baseline = psutil.Process(server.pid).memory_info().rss / 2**20
        rss = RssWatch(server.pid)
        started = time.monotonic()
        asyncio.run(_drive(server.url, work, clients, answers, statuses))
        elapsed = time.monotonic() - started
        samples = rss.stop()
        health = httpx.get(server.url + "/v1/health").json()
        metrics = httpx.get(server.url + "/metrics").text
        status = server.stop(signal.SIGTERM, timeout=60)
    # every request answered exactly once, with the verdict its content deserves
    assert statuses == Counter({200: len(work)}), statuses
    sent = [_ident(body) for _, body, _ in work]
    assert sorted(a[0] for a in answers) == sorted(sent)
    assert all(sent_id == answered_id for sent_id, answered_id, _ in answers)
    expected = {_ident(body): verdict for _, body, verdict in work}
    wrong = [(i, v, expected[i]) for i, _, v in answers if v != expected[i]]
    assert not wrong, wrong[:10]
    assert health["queue"]["depth"] == 0 and health["status"] == "ok"
    assert f"mathagent_check_seconds_count {len(work) + len(warm_up)}" in metrics
    # memory stays bounded: no growth with the number of requests served
    peak = max(samples)
    assert peak < baseline + 300, (baseline, peak)
    late = samples[len(samples) // 2 :]
    assert max(late) < max(samples[: len(samples) // 2]) + 100, samples
    assert status == 0, server.stderr()
    print(
        f"\n2000 checks from {clients} clients in {elapsed:.1f} s ({len(work) / elapsed:.0f}/s), RSS {baseline:.0f} -> "
        f"peak {peak:.0f} MB"
    )


async def _drive(
    url: str, work: list[tuple[str, dict[str, Any], str]], clients: int, answers: list[Any], statuses: Counter[int]
) -> None:
    async def client(share: list[tuple[str, dict[str, Any], str]]) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=300) as http:
            for path, body, _ in share:
                response = await http.post(path, json=body)
                statuses[response.status_code] += 1
                if response.status_code == 200:
                    answers.append((_ident(body), *_verdict_of(path, response.json())))

    await asyncio.gather(*(client(work[i::clients]) for i in range(clients)))


# ---------------------------------------------------------------- faults


@pytest.mark.parametrize(("pool", "expected"), [("warm", "verified"), ("cold", "error")])
def test_a_lean_killed_mid_request_still_answers(lean: LeanToolchain, tmp_path: Path, pool: str, expected: str) -> None:
    """Warm: the check is retried once on a fresh server and passes; cold: the check is a `crash` error.
    Either way the request is answered and the server goes on."""
    with serving(lean, tmp_path, "--pool", pool, "--workers", "1", "--no-cache") as server:
        result: dict[str, Any] = {}

        def ask() -> None:
            body = {"snippets": [{"id": "slow", "code": SLOW_FILE}], "timeout": 60}
            result["response"] = httpx.post(server.url + "/api/check", json=body, timeout=120)

        asker = threading.Thread(target=ask)
        asker.start()
        victim = _first_lean(server, after=0.5)
        victim.kill()
        asker.join(120)
        response = result["response"]
        assert response.status_code == 200, response.text
        [answer] = response.json()["results"]
        assert answer["mathagent"]["verdict"] == expected, answer
        if expected == "error":
            assert answer["mathagent"]["reasons"] == ["crash"] and "could not check" in answer["error"]
        assert not psutil.pid_exists(victim.pid) or victim.status() == psutil.STATUS_ZOMBIE
        again = httpx.post(
            server.url + "/api/check",
            json={"snippets": [{"id": "g", "code": AXIOM_FREE + "theorem g : Eq two two := Eq.refl _\n"}]},
            timeout=60,
        )
        assert again.json()["results"][0]["mathagent"]["verdict"] == "verified"


def _first_lean(server: Server, after: float) -> psutil.Process:
    """The first Lean process the server runs, once it has run for `after` seconds."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for proc in server.watch.current():
            if time.time() - proc.create_time() >= after:
                return proc
        time.sleep(0.05)
    raise AssertionError("the server never ran Lean")


def test_sigterm_finishes_short_checks_cancels_long_ones_and_leaves_no_lean(
    lean: LeanToolchain, tmp_path: Path
) -> None:
    with serving(lean, tmp_path, "--workers", "2", "--no-cache", "--grace", "10") as server:
        results: dict[str, httpx.Response | Exception] = {}

        def ask(name: str, code: str) -> None:
            body = {"snippets": [{"id": name, "code": code}], "timeout": 120}
            try:
                results[name] = httpx.post(server.url + "/api/check", json=body, timeout=120)
            except httpx.HTTPError as exc:
                results[name] = exc

        askers = [threading.Thread(target=ask, args=a) for a in (("slow", SLOW_FILE), ("runaway", RUNAWAY_FILE))]
        for thread in askers:
            thread.start()
        deadline = time.monotonic() + 30
        while len(server.watch.current()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        running = server.watch.current()
        assert len(running) >= 2, f"both checks should be running: {running}; {server.stderr()[-2000:]}"
        stopped_at = time.monotonic()
        os.kill(server.pid, signal.SIGTERM)
        # new connections are refused at once (the listening socket is closed, not left to a Lean process)
        refused = False
        while not refused and time.monotonic() < stopped_at + 5:
            try:
                httpx.get(server.url + "/health", timeout=1)
            except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError):
                # refused, or reset or closed unanswered: a probe that reached the backlog just
                # before the socket closed
                refused = True
            except httpx.TimeoutException:
                pass
        assert refused, "the server still accepts connections after SIGTERM"
        for thread in askers:
            thread.join(60)
        # wait, sending nothing more: a second SIGTERM could land after serve restored the default handler
        status = server.wait(timeout=30)
        took = time.monotonic() - stopped_at
    slow, runaway = results["slow"], results["runaway"]
    assert isinstance(slow, httpx.Response) and slow.status_code == 200, slow
    assert slow.json()["results"][0]["mathagent"]["verdict"] == "verified"  # finished within the grace period
    assert isinstance(runaway, httpx.Response) and runaway.status_code == 503, runaway
    assert runaway.json()["error"] == "shutting_down"  # cancelled at the end of it, and told so
    assert status == 0 and 10 <= took < 30, (status, took, server.stderr())
    # (serving() asserts that no Lean process of this server is left)
