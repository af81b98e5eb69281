"""Input that cannot be handled costs its own row, never the run or the request.

Lone surrogates (the JSON escape `\\ud800`: text with no UTF-8 form, so Lean
cannot be given it), bytes that are not UTF-8, and nesting deeper than
Python's JSON reader takes: each such row, line or snippet gets an `error`
verdict of its own with reason `bad_input` and every other one is answered;
a request body that is unusable as a whole is a 400, never a 500.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import ROOT
from mathagent.jsonl import dumps, parse_json
from mathagent.verify.cache import cache_key
from mathagent.verify.tasks import VerifyTask
from mathagent.verify.toolchain import LeanToolchain
from mathagent.verify.verifier import VerifyOptions, verify_tasks
from serve_support import GENUINE_FILE, STATEMENT, TYPE_ERROR_FILE, Server, serving

HEADER_FILE = ROOT / "examples" / "prelude_header.lean"
DEEP = "[" * 200_000 + "]" * 200_000
LONE = "\\ud800"  # as it travels in JSON: a lone surrogate once decoded


def _row(ident: str, proof: str = " Eq.refl _") -> str:
    return json.dumps({"id": ident, "formal_statement": STATEMENT, "proof": proof})


# line by line: (the line, its verdict's id, a phrase its message must have (None: a good row)); an id
# ":N" is the one a row without a usable id gets: `tasks.jsonl:N` from the CLI, `line:N` from the service
LINES: list[tuple[bytes, str, str | None]] = [
    (_row("good").encode(), "good", None),
    (_row("lone_proof", " Eq.refl _ -- PLACE").replace("PLACE", LONE).encode(), "lone_proof", "`proof` has a lone"),
    (_row("PLACE").replace("PLACE", LONE).encode(), ":3", "`id` has a lone surrogate U+D800"),
    (
        json.dumps({"id": "lone_header", "header": "prelude PLACE", "formal_statement": STATEMENT, "proof": " x"})
        .replace("PLACE", LONE)
        .encode(),
        "lone_header",
        "`header` has a lone",
    ),
    (DEEP.encode(), ":5", "nested too deeply"),
    (b'{"id": "x\xff", "code": "theorem a : True := trivial"}', ":6", "not UTF-8: byte 0xff"),
    (b'{"id": ' + b"7" * 5000 + b', "code": "x"}', ":7", "4300 digits"),
    (b'{"id": ' + b"[" * 900 + b"]" * 900 + b', "code": "x"}', ":8", "must be a string or a number"),
    (json.dumps({"id": "whole", "full_code": GENUINE_FILE}).encode(), "whole", None),
]


def _jsonl() -> bytes:
    return b"\n".join(line for line, _, _ in LINES) + b"\n"


def _ids(default: str) -> list[str]:
    return [default + ident[1:] if ident.startswith(":") else ident for _, ident, _ in LINES]


def _expect_answers(verdicts: list[dict[str, Any]], default: str, source: str) -> None:
    """One verdict per line, in order: the good ones verified, each bad one its own bad_input error."""
    assert [v["id"] for v in verdicts] == _ids(default)
    for verdict, (_, _, phrase) in zip(verdicts, LINES, strict=True):
        if phrase is None:
            assert verdict["verdict"] == "verified", verdict
        else:
            assert verdict["verdict"] == "error" and verdict["reasons"] == ["bad_input"], verdict
            assert phrase in verdict["message"] and source in verdict["message"], verdict


# ---------------------------------------------------------------- the pieces


def test_cache_keys_take_lone_surrogates_and_keep_them_apart() -> None:
    lone, other = parse_json('"a\\ud800"'), parse_json('"a\\udc00"')
    assert cache_key("x", lone) != cache_key("x", other) != cache_key("x", "a")
    assert cache_key("x", "théorème") == cache_key("x", "théorème")  # valid text: as before


def test_json_output_writes_lone_surrogates_back_as_escapes() -> None:
    value = {"id": parse_json('"\\ud800x"'), "message": "ok \u2028"}
    text = dumps(value)
    assert "\\ud800x" in text and json.loads(text) == value
    text.encode("utf-8")  # no UnicodeEncodeError: any writer takes it


# ---------------------------------------------------------------- verify --input


@pytest.mark.slow
@pytest.mark.parametrize("pool", ["cold", "warm"])
@pytest.mark.parametrize("cache", [True, False], ids=["cache", "no-cache"])
def test_verify_input_answers_every_row_around_bad_ones(
    lean: LeanToolchain, tmp_path: Path, pool: str, cache: bool
) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_bytes(_jsonl())
    args = ["verify", "-i", str(path), "--header-file", str(HEADER_FILE), "--pool", pool, "--json", "--workers", "2"]
    done = subprocess.run(
        [sys.executable, "-m", "mathagent", *args, *([] if cache else ["--no-cache"])],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    verdicts = [json.loads(line) for line in done.stdout.splitlines()]
    order = _ids("tasks.jsonl:")
    _expect_answers(sorted(verdicts, key=lambda v: order.index(v["id"])), "tasks.jsonl:", f"{path}:")


@pytest.mark.slow
def test_the_table_shows_bad_rows_too(lean: LeanToolchain, tmp_path: Path) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_bytes(_jsonl())
    done = subprocess.run(
        [sys.executable, "-m", "mathagent", "verify", "-i", str(path), "--header-file", str(HEADER_FILE)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "250"},
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "2 verified, 7 errors" in done.stdout, done.stdout[-2000:]


# ---------------------------------------------------------------- the service


@pytest.fixture(scope="module")
def server(lean: LeanToolchain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(lean, tmp_path_factory.mktemp("bad-input"), "--workers", "2") as live:
        yield live


def _post(client: httpx.Client, path: str, body: bytes, kind: str = "application/json") -> httpx.Response:
    return client.post(path, content=body, headers={"content-type": kind})


@pytest.mark.slow
def test_native_api_answers_every_row_around_bad_ones(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=120) as client:
        lines = _post(client, "/v1/verify", _jsonl(), "application/x-ndjson")
        assert lines.status_code == 200, lines.text
        _expect_answers([json.loads(line) for line in lines.text.splitlines()], "line:", "request line ")
        # the JSON form: a row with a lone surrogate is its own error, the rows around it run
        rows = [_row("a"), _row("b", " Eq.refl _ -- PLACE").replace("PLACE", LONE), _row("c")]
        body = '{"tasks": [' + ", ".join(rows) + "]}"
        document = _post(client, "/v1/verify", body.encode())
        assert document.status_code == 200, document.text
        a, b, c = document.json()["results"]
        assert a["verdict"] == c["verdict"] == "verified"
        assert b["verdict"] == "error" and b["reasons"] == ["bad_input"] and "request row 2" in b["message"]


@pytest.mark.slow
def test_kimina_batch_answers_every_snippet_around_a_bad_one(server: Server) -> None:
    snippets = [
        {"id": "genuine", "code": GENUINE_FILE},
        {"id": "lone", "code": GENUINE_FILE + "-- PLACE\n"},
        {"id": "type_error", "code": TYPE_ERROR_FILE},
        {"id": "PLACE", "code": GENUINE_FILE},  # an id is the client's: echoed as it came, and checked
    ]
    body = json.dumps({"snippets": snippets, "timeout": 60}).replace("PLACE", LONE)
    with httpx.Client(base_url=server.url, timeout=120) as client:
        response = _post(client, "/api/check", body.encode())
        assert response.status_code == 200, response.text
        assert '"id": "\\ud800"' in response.text  # the same escape back
        genuine, lone, type_error, odd_id = response.json()["results"]
        assert genuine["response"] == {"messages": []} and odd_id["response"] == {"messages": []}
        assert lone["id"] == "lone" and "response" not in lone
        assert lone["error"].startswith("mathagent could not check this proof (bad_input)"), lone
        assert "lone surrogate U+D800" in lone["error"] and lone["mathagent"]["verdict"] == "error"
        assert any(m["severity"] == "error" for m in type_error["response"]["messages"])
        codes = [{"custom_id": "ok", "proof": GENUINE_FILE}, {"custom_id": "lone", "proof": "PLACE"}]
        legacy = _post(client, "/verify", json.dumps({"codes": codes}).replace("PLACE", LONE).encode())
        assert legacy.status_code == 200, legacy.text
        ok, bad = legacy.json()["results"]
        assert ok["response"]["messages"] == [] and "bad_input" in bad["error"]


@pytest.mark.slow
@pytest.mark.parametrize("path", ["/v1/verify", "/api/check", "/verify"])
def test_bodies_that_are_not_json_are_400_on_every_api(server: Server, path: str) -> None:
    bodies = {
        "nested 200,000 deep": (DEEP.encode(), "nested too deeply"),
        "nested inside a field": (b'{"snippets": ' + DEEP.encode() + b"}", "nested too deeply"),
        "not UTF-8": (b'{"snippets": [{"id": "a\xff\xfe", "code": "x"}]}', "not UTF-8: byte 0xff"),
        "a 5000-digit number": (b'{"timeout": ' + b"9" * 5000 + b"}", "4300 digits"),
    }
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for what, (body, phrase) in bodies.items():
            response = _post(client, path, body)
            assert response.status_code == 400, (what, response.status_code, response.text[:300])
            answer = response.json()
            assert answer["error"] == "invalid_json" and phrase in answer["detail"], (what, answer)
        assert client.get("/v1/health").json()["status"] == "ok"  # and the server goes on


def test_the_python_api_answers_a_task_lean_cannot_read(lean: LeanToolchain, options: VerifyOptions) -> None:
    # callers of the verifier itself (batch, the loop, user code) get the same per-task error
    good = VerifyTask(id="good", formal_statement="theorem g : Eq two two :=", proof=" Eq.refl two")
    bad = VerifyTask(id="bad", formal_statement="theorem b : Eq two two :=", proof=" Eq.refl two -- \ud800")
    bad_header = VerifyTask(
        id="bad_header", header="prelude\n-- \udfff\n", formal_statement=good.formal_statement, proof=good.proof
    )
    verdicts = {v.id: v for v in verify_tasks(lean, options, [good, bad, bad_header])}
    assert verdicts["good"].verified, verdicts["good"]
    for ident in ("bad", "bad_header"):
        assert verdicts[ident].verdict == "error" and verdicts[ident].reasons == ["bad_input"], verdicts[ident]
        assert "surrogate" in verdicts[ident].message
