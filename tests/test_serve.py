"""`mathagent serve`: its own API against the CLI, and what it refuses, over real HTTP and real Lean."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import PRELUDE_HEADER, ROOT
from mathagent.verify.toolchain import LeanToolchain
from serve_support import (
    AXIOM_FREE,
    GENUINE_FILE,
    HEADER_FILE,
    RUNAWAY_FILE,
    STATEMENT,
    Server,
    serving,
)

DOC_TRICK = '/--/ " -/\naxiom propext : False -- "\ntheorem t : False := propext\n'
ROWS: list[dict[str, Any]] = [
    {"id": "genuine", "formal_statement": STATEMENT, "proof": " Eq.refl _"},
    {"id": "type_error", "formal_statement": "theorem w : Eq (N.add two two) ten :=", "proof": "\n  Eq.refl _"},
    {"id": "sorry", "formal_statement": "theorem s : Eq two four :=", "proof": " sorryAx _ Bool.false"},
    {"id": "cheat", "formal_statement": "theorem c : Eq two four :=", "proof": " False.elim cheat"},
    {"id": "exit", "formal_statement": STATEMENT, "proof": " Eq.refl _\n#exit"},
    {"id": "smuggled", "formal_statement": "theorem a : Eq two four :=", "proof": " ax\naxiom ax : Eq two four"},
    {"id": "full_code", "formal_statement": STATEMENT, "full_code": PRELUDE_HEADER + STATEMENT + " Eq.refl _\n"},
    {
        "id": "renamed",
        "formal_statement": STATEMENT,
        "full_code": PRELUDE_HEADER + STATEMENT.replace("two_add_two", "other") + " Eq.refl _\n",
    },
    {
        "id": "continued",
        "formal_statement": STATEMENT,
        "full_code": PRELUDE_HEADER.rstrip("\n") + " namespace M noncomputable def four : N := two\n" + STATEMENT,
    },
    {"id": "whole_file", "full_code": GENUINE_FILE},
    {"id": "doc_trick", "full_code": AXIOM_FREE + DOC_TRICK},
    {"id": "bad_statement", "formal_statement": "def x : N := two", "proof": " two"},
    {"id": "too_large", "formal_statement": STATEMENT, "proof": " Eq.refl _" + " " * 1_100_000},
    {"id": "no_proof", "formal_statement": STATEMENT},
    {"formal_statement": STATEMENT, "proof": " Eq.refl _", "full_code": "x"},
]


def _lines(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows) + '{"id": "broken json", "formal_statement": \n'


def _comparable(verdict: dict[str, Any]) -> dict[str, Any]:
    """What must be equal between the CLI and the service: all but timing and cache flag; a bad row's
    message without its source (a file and line there, a request line here)."""
    kept = {k: v for k, v in verdict.items() if k not in ("time_s", "cached")}
    if kept["reasons"] == ["bad_input"]:
        kept["message"] = kept["message"].split(": ", 1)[1]
        kept["id"] = kept["id"].split(":")[-1]  # the default id names the line
    return kept


@pytest.mark.slow
@pytest.mark.parametrize("pool", ["cold", "warm"])
def test_the_native_api_gives_the_verdicts_of_verify_json(lean: LeanToolchain, tmp_path: Path, pool: str) -> None:
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(_lines(ROWS))
    cli = subprocess.run(
        [sys.executable, "-m", "mathagent", "verify", "-i", str(tasks), "--json", "--no-cache", "-j", "2"]
        + ["--pool", pool, "--header-file", str(HEADER_FILE), "--lean", str(lean.lean)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert cli.returncode == 1, cli.stderr
    by_cli = [json.loads(line) for line in cli.stdout.splitlines() if line.strip()]
    with serving(lean, tmp_path, "--pool", pool, "--workers", "2", "--no-cache") as server:
        lines = httpx.post(
            server.url + "/v1/verify",
            content=tasks.read_bytes(),
            headers={"content-type": "application/x-ndjson"},
            timeout=300,
        )
        document = httpx.post(server.url + "/v1/verify", json={"tasks": ROWS}, timeout=300)
    assert lines.status_code == 200 and lines.headers["content-type"].startswith("application/x-ndjson")
    by_server = [json.loads(line) for line in lines.text.splitlines()]
    # the CLI prints verdicts as they finish, the service in input order: compare by position in the file
    assert len(by_cli) == len(by_server) == len(ROWS) + 1
    cli_by_id = {v["id"].split(":")[-1]: _comparable(v) for v in by_cli}
    server_by_id = {v["id"].split(":")[-1]: _comparable(v) for v in by_server}
    assert cli_by_id == server_by_id
    expected = {
        "genuine": "verified",
        "type_error": "rejected",
        "sorry": "rejected",
        "cheat": "rejected",
        "exit": "rejected",
        "smuggled": "rejected",
        "full_code": "verified",
        "renamed": "rejected",
        "continued": "rejected",
        "whole_file": "verified",
        "doc_trick": "rejected",
        "bad_statement": "error",
        "too_large": "rejected",
    }
    assert {k: server_by_id[k]["verdict"] for k in expected} == expected
    assert [v["id"] for v in by_server][: len(expected)] == list(expected)  # input order
    # the JSON form gives the same, as one document
    assert document.status_code == 200
    rows = document.json()["results"]
    assert [_comparable(v) for v in rows] == [_comparable(v) for v in by_server[: len(ROWS)]]


# ---------------------------------------------------------------- refusals

KEY = "s3cret-key"
LIMITS = """[serve]
max_body_bytes = 12_000_000
max_snippets = 8
max_timeout = 20
max_queue = 4
"""


@pytest.fixture(scope="module")
def guarded(lean: LeanToolchain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with an API key (from the environment) and small limits (from mathagent.toml's [serve])."""
    home = tmp_path_factory.mktemp("serve-home")
    (home / "mathagent").mkdir()
    (home / "mathagent" / "mathagent.toml").write_text(LIMITS)
    env = {"XDG_CONFIG_HOME": str(home), "MATHAGENT_SERVE_API_KEY": KEY}
    with serving(lean, home, "--workers", "2", "--no-cache", env=env) as server:
        yield server


def _client(server: Server, key: str | None = KEY, timeout: float = 120) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=timeout)


def _snippets(*codes: str) -> dict[str, Any]:
    return {"snippets": [{"id": f"s{i}", "code": code} for i, code in enumerate(codes)], "timeout": 10}


def _refused(response: httpx.Response, status: int, error: str, limit: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert body["error"] == error and body["detail"], body
    if limit is not None:
        assert body["limit"] == limit and body["got"] > body["allowed"], body
    return body


@pytest.mark.slow
def test_a_key_is_required_and_compared(guarded: Server) -> None:
    with _client(guarded, key=None) as anonymous:
        _refused(anonymous.post("/api/check", json=_snippets(GENUINE_FILE)), 401, "unauthorized")
        missing = anonymous.get("/v1/health")
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert "missing" in missing.json()["detail"]
        assert anonymous.get("/docs").status_code == 200  # the docs hold no data
        assert anonymous.get("/openapi.json").json()["info"]["title"] == "mathagent"
    for wrong in ("s3cret-kez", "s3cret-key-and-more", ""):
        with _client(guarded, key=wrong) as client:
            _refused(client.get("/metrics"), 401, "unauthorized")
    with _client(guarded) as client:
        response = client.post("/api/check", json=_snippets(GENUINE_FILE))
        assert response.status_code == 200 and response.json()["results"][0]["response"] == {"messages": []}


@pytest.mark.slow
def test_every_limit_is_a_clear_4xx_and_the_server_keeps_answering(guarded: Server) -> None:
    with _client(guarded) as client:
        # the body: announced too large (refused unread), or sent without a length and cut off
        _refused(client.post("/api/check", content=b"x" * 13_000_000), 413, "limit_exceeded", "max_body_bytes")
        chunks = (b'{"snippets": [{"id": "a", "code": "' + b"x" * 1_000_000 for _ in range(13))
        _refused(client.post("/v1/verify", content=chunks), 413, "limit_exceeded", "max_body_bytes")
        # malformed JSON
        for path in ("/api/check", "/verify", "/v1/verify"):
            _refused(
                client.post(path, content=b'{"snippets": [', headers={"content-type": "application/json"}),
                400,
                "invalid_json",
            )
        # shapes kimina's own models refuse
        _refused(client.post("/api/check", json={"snippets": []}), 422, "invalid_request")
        _refused(client.post("/api/check", json={"snippets": [{"id": "a"}]}), 422, "invalid_request")
        dup = {"snippets": [{"id": "a", "code": GENUINE_FILE}, {"id": "a", "code": GENUINE_FILE}]}
        assert "unique" in _refused(client.post("/api/check", json=dup), 422, "invalid_request")["detail"]
        _refused(client.post("/verify", json={"codes": [{"custom_id": 1}]}), 422, "invalid_request")
        _refused(client.post("/v1/verify", json={"tasks": []}), 422, "invalid_request")
        _refused(client.post("/v1/verify", json={"tasks": "x"}), 422, "invalid_request")
        bare = _refused(client.post("/v1/verify", json={"id": "a", "full_code": GENUINE_FILE}), 422, "invalid_request")
        assert "this looks like one task" in bare["detail"] and "{'tasks': [TASK]}" in bare["detail"]
        other = _refused(client.post("/v1/verify", json={"task": []}), 422, "invalid_request")["detail"]
        assert "unknown field(s) task" in other and "looks like one task" not in other
        # sizes and counts
        _refused(client.post("/api/check", json=_snippets(*[GENUINE_FILE] * 9)), 413, "limit_exceeded", "max_snippets")
        big = client.post("/api/check", json=_snippets("-- " + "x" * 10_000_000))  # a 10 MB snippet
        assert _refused(big, 413, "limit_exceeded", "max_bytes")["allowed"] == 1024 * 1024
        # time limits: above the cap, or not a time
        over = {**_snippets(GENUINE_FILE), "timeout": 21}
        _refused(client.post("/api/check", json=over), 422, "limit_exceeded", "max_timeout")
        _refused(
            client.post("/verify", json={"codes": [{"custom_id": 1, "code": "x"}], "timeout": 600}),
            422,
            "limit_exceeded",
            "max_timeout",
        )
        _refused(client.post("/api/check", json={**_snippets(GENUINE_FILE), "timeout": 0}), 422, "invalid_request")
        # more checks than the queue holds at all: waiting would not help
        _refused(client.post("/api/check", json=_snippets(*[GENUINE_FILE] * 5)), 413, "limit_exceeded", "max_queue")
        # and after all that, the server answers as before
        ok = client.post("/api/check", json=_snippets(GENUINE_FILE))
        assert ok.status_code == 200 and ok.json()["results"][0]["mathagent"]["verdict"] == "verified"
        assert client.get("/v1/health").json()["status"] == "ok"
        with _client(guarded, key="wrong") as stranger:  # a 401 of this test's own: it may run alone
            _refused(stranger.get("/metrics"), 401, "unauthorized")
        codes = client.get("/metrics").text
        assert 'mathagent_http_responses_total{code="413"}' in codes and 'code="401"' in codes


@pytest.mark.slow
def test_a_full_queue_is_429_with_retry_after_and_a_gone_client_frees_it(guarded: Server) -> None:
    """Four runaway checks fill the queue; the client leaves; its checks and their Lean processes go."""
    started = threading.Event()

    def hog() -> None:
        with _client(guarded, timeout=4) as client:
            started.set()
            with pytest.raises(httpx.ReadTimeout):  # the client gives up and closes its connection
                client.post(
                    "/api/check", json={**_snippets(*[RUNAWAY_FILE + f"-- {i}\n" for i in range(4)]), "timeout": 20}
                )

    thread = threading.Thread(target=hog)
    thread.start()
    started.wait()
    with _client(guarded) as client:
        deadline = time.monotonic() + 10
        while client.get("/v1/health").json()["queue"]["depth"] < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        full = client.post("/api/check", json=_snippets(GENUINE_FILE))
        body = _refused(full, 429, "queue_full", "max_queue")
        assert 1 <= int(full.headers["retry-after"]) <= 60, body
        # two workers on the runaways (the second may still be starting: servers share one start-up probe)
        deadline = time.monotonic() + 10
        while len(guarded.watch.current()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        busy = len(guarded.watch.current())
        assert busy >= 2  # two workers on the runaways
        thread.join()
        # the client is gone: within a few seconds its checks are cancelled and their Lean killed
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            health = client.get("/v1/health").json()
            if health["queue"]["depth"] == 0 and health["pool"]["busy"] == 0:
                break
            time.sleep(0.1)
        assert health["queue"]["depth"] == 0 and health["pool"]["busy"] == 0, health
        assert health["lean_processes"] <= 2  # idle warm servers only
        ok = client.post("/api/check", json=_snippets(GENUINE_FILE))
        assert ok.status_code == 200 and ok.json()["results"][0]["mathagent"]["verdict"] == "verified"


# ---------------------------------------------------------------- sharing between requests


@pytest.mark.slow
def test_verdicts_are_shared_between_requests(lean: LeanToolchain, tmp_path: Path) -> None:
    """The cache spans requests; and a client that leaves does not cancel another client's identical check."""
    with serving(lean, tmp_path, "--workers", "2") as server, httpx.Client(base_url=server.url, timeout=60) as client:
        row = {"id": "t", "formal_statement": STATEMENT, "proof": f" Eq.refl _ -- {time.time_ns()}"}
        first = client.post("/v1/verify", json={"tasks": [row]}).json()["results"][0]
        again = client.post("/v1/verify", json={"tasks": [{**row, "id": "u"}]}).json()["results"][0]
        assert first["verdict"] == again["verdict"] == "verified"
        assert not first["cached"] and again["cached"] and again["id"] == "u"

        runaway = {"snippets": [{"id": "r", "code": RUNAWAY_FILE + f"-- {time.time_ns()}\n"}], "timeout": 3}
        leaver = threading.Thread(target=_leave_after, args=(server.url, runaway, 0.5))
        leaver.start()
        time.sleep(0.2)
        stayed = client.post("/api/check", json=runaway)  # joins the leaver's check, in flight
        leaver.join()
        result = stayed.json()["results"][0]
        assert stayed.status_code == 200 and "timed out" in result["error"], result


def _leave_after(url: str, body: dict[str, Any], seconds: float) -> None:
    with httpx.Client(base_url=url, timeout=seconds) as client, pytest.raises(httpx.ReadTimeout):
        client.post("/api/check", json=body)
