"""The service's app in process (no uvicorn, no subprocess), on real Lean: the quick suite's view of `serve`.

The same app is what `mathagent serve` runs; tests/test_serve*.py drive it over real HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from conftest import PRELUDE_HEADER
from mathagent.serve import CheckService, ServeLimits, ServiceConfig, create_app
from mathagent.verify.toolchain import LeanToolchain
from mathagent.verify.verifier import VerifyOptions
from serve_support import AXIOM_FREE, GENUINE_FILE, STATEMENT, TYPE_ERROR_FILE

KEY = "k3y"
LIMITS = ServeLimits(max_body_bytes=200_000, max_snippets=4, max_code_bytes=50_000, max_timeout_s=30, max_queue=8)
Test = Callable[[httpx.AsyncClient, CheckService], Awaitable[None]]


def run_app(
    lean: LeanToolchain,
    test: Test,
    *,
    key: str | None = KEY,
    pool: str = "warm",
    workers: int = 2,
    limits: ServeLimits = LIMITS,
) -> None:
    options = VerifyOptions(workers=workers, timeout_s=30, memory_mb=4096, default_header=PRELUDE_HEADER, pool=pool)
    service = CheckService(ServiceConfig(lean, options, limits))
    app = create_app(service, api_key=key)

    async def go() -> None:
        async with service:  # what the app's lifespan does under uvicorn
            transport = httpx.ASGITransport(app=app)
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            async with httpx.AsyncClient(transport=transport, base_url="http://serve", headers=headers) as client:
                await test(client, service)

    asyncio.run(go())


def _check(*codes: str, **extra: Any) -> dict[str, Any]:
    return {"snippets": [{"id": f"s{i}", "code": c} for i, c in enumerate(codes)], **extra}


def test_kimina_answers_say_what_the_verifier_found(lean: LeanToolchain) -> None:
    async def test(client: httpx.AsyncClient, service: CheckService) -> None:
        exit_trick = AXIOM_FREE + "theorem ok : Eq two two := Eq.refl _\n#exit\n"
        response = await client.post("/api/check", json=_check(GENUINE_FILE, TYPE_ERROR_FILE, exit_trick))
        assert response.status_code == 200
        genuine, type_error, cheat = response.json()["results"]
        assert genuine["response"] == {"messages": []} and genuine["mathagent"]["verdict"] == "verified"
        # Lean's error as Lean's message (kimina's severity words), nothing added
        [message] = [m for m in type_error["response"]["messages"] if "Type mismatch" in m["data"]]
        assert message["severity"] == "error" and message["pos"]["line"] == AXIOM_FREE.count("\n") + 1
        assert not any(m["data"].startswith("mathagent") for m in type_error["response"]["messages"])
        # an audited rejection: an error message naming the reason
        [note] = cheat["response"]["messages"]
        assert note["severity"] == "error" and note["data"].startswith("mathagent rejected this proof (banned:#exit)")
        legacy = await client.post("/verify", json={"codes": [{"custom_id": 7, "proof": GENUINE_FILE}]})
        [result] = legacy.json()["results"]
        assert result["custom_id"] == "7" and result["response"]["messages"] == [] and "time" in result["response"]

    run_app(lean, test)


def test_native_rows_and_health(lean: LeanToolchain) -> None:
    async def test(client: httpx.AsyncClient, service: CheckService) -> None:
        rows = [
            {"id": "ok", "formal_statement": STATEMENT, "proof": " Eq.refl _"},
            {"id": "cheat", "formal_statement": "theorem c : Eq two four :=", "proof": " False.elim cheat"},
            {"id": "half"},
        ]
        response = await client.post("/v1/verify", json={"tasks": rows})
        ok, cheat, half = response.json()["results"]
        assert ok["verdict"] == "verified" and set(ok) >= {"diagnostics", "axioms", "time_s", "sandbox", "cached"}
        assert cheat["reasons"] == ["axiom:cheat"]
        assert half["reasons"] == ["bad_input"] and half["message"].startswith("request row 3: missing field")
        health = (await client.get("/v1/health")).json()
        assert health["lean"]["library"] == "prelude-only" and health["queue"] == {"depth": 0, "capacity": 8}
        assert health["pool"]["kind"] == "warm" and health["limits"]["max_snippets"] == 4
        metrics = (await client.get("/metrics")).text
        assert 'mathagent_checks_total{verdict="verified"} 1' in metrics
        assert "mathagent_check_seconds_count 2" in metrics and "mathagent_queue_depth 0" in metrics

    run_app(lean, test)


def test_refusals_in_process(lean: LeanToolchain) -> None:
    async def test(client: httpx.AsyncClient, service: CheckService) -> None:
        async def refused(response: httpx.Response, status: int, error: str, limit: str | None = None) -> None:
            assert response.status_code == status, response.text
            assert response.json()["error"] == error and response.json().get("limit") == limit, response.text

        await refused(await client.get("/health", headers={"Authorization": "Bearer nope"}), 401, "unauthorized")
        await refused(await client.get("/health", headers={"Authorization": f"Basic {KEY}"}), 401, "unauthorized")
        await refused(await client.post("/api/check", content=b"x" * 300_000), 413, "limit_exceeded", "max_body_bytes")

        async def stream() -> AsyncIterator[bytes]:
            for _ in range(30):
                yield b" " * 10_000

        await refused(await client.post("/api/check", content=stream()), 413, "limit_exceeded", "max_body_bytes")
        await refused(await client.post("/api/check", content=b"{"), 400, "invalid_json")
        await refused(await client.post("/v1/verify", content=b"{"), 400, "invalid_json")
        await refused(await client.post("/api/check", json=_check(*["x"] * 5)), 413, "limit_exceeded", "max_snippets")
        await refused(await client.post("/api/check", json=_check("x" * 60_000)), 413, "limit_exceeded", "max_bytes")
        over = _check(GENUINE_FILE, timeout=31)
        await refused(await client.post("/api/check", json=over), 422, "limit_exceeded", "max_timeout")
        ok = await client.post("/api/check", json=_check(GENUINE_FILE, timeout=30))
        assert ok.status_code == 200 and ok.json()["results"][0]["mathagent"]["verdict"] == "verified"
        assert service.depth == 0

    run_app(lean, test)


def test_no_key_means_no_check_of_it(lean: LeanToolchain) -> None:
    async def test(client: httpx.AsyncClient, service: CheckService) -> None:
        assert (await client.get("/health")).json() == {"status": "ok"}

    run_app(lean, test, key=None)


@pytest.mark.parametrize("pool", ["cold", "warm"])
def test_a_timeout_is_the_clients_timeout(lean: LeanToolchain, pool: str) -> None:
    from serve_support import RUNAWAY_FILE

    async def test(client: httpx.AsyncClient, service: CheckService) -> None:
        response = await client.post("/api/check", json=_check(RUNAWAY_FILE, timeout=1))
        [result] = response.json()["results"]
        assert "timed out" in result["error"] and "response" not in result, result
        assert result["mathagent"]["verdict"] == "timeout"

    run_app(lean, test, pool=pool)


def test_waiting_for_a_worker_is_not_the_proofs_time(lean: LeanToolchain) -> None:
    """Thirty cold checks (a fresh Lean each, about 0.1 s) on one worker with a 1 s limit each: together
    they take longer than that, but each one's clock starts when it gets the worker, so none times out
    while it waits."""

    async def test(client: httpx.AsyncClient, service: CheckService) -> None:
        rows = [
            {"id": f"q{i}", "formal_statement": f"theorem q{i} : Eq (N.add two two) four :=", "proof": " Eq.refl _"}
            for i in range(30)
        ]
        started = asyncio.get_running_loop().time()
        response = await client.post("/v1/verify", json={"tasks": rows, "timeout": 1})
        took = asyncio.get_running_loop().time() - started
        verdicts = [v["verdict"] for v in response.json()["results"]]
        assert verdicts == ["verified"] * 30, (took, verdicts)
        assert took > 1  # they did wait for each other

    run_app(lean, test, pool="cold", workers=1, limits=ServeLimits())


@pytest.mark.timeout(20)
def test_snippet_ids_map_to_tasks_and_a_1mb_id_of_separators_is_one_pass() -> None:
    # snippet ids are untrusted: trying every `#` of a long id as a task id would be quadratic
    from mathagent.serve.statements import KnownStatement, Statements

    tasks = Statements(
        {"a": KnownStatement("x", None), "a#b": KnownStatement("y", None), "long_id": KnownStatement("z", None)}
    )
    found = {i: (tasks.find(i) or ("-",))[0] for i in ["a", "a#3", "a#b#4", "long_id#1#2", "zz#1", "a" * 100]}
    assert found == {"a": "a", "a#3": "a", "a#b#4": "a#b", "long_id#1#2": "long_id", "zz#1": "-", "a" * 100: "-"}
    for _ in range(50):  # 50 MB of adversarial ids: seconds if quadratic per id would be hours
        assert tasks.find("#" * 1_000_000) is None
        assert tasks.find("a" + "#" * 1_000_000) == ("a", tasks.by_id["a"])
