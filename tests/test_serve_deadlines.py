"""Slow clients (slowloris) against a live `mathagent serve`: they are cut off, and nobody else waits for them.

Raw sockets play the attacker: connections that send their headers and one
byte of a 1000-byte body and then stop, and connections that send their
headers a byte at a time. Deadlines are short here so the test is quick;
the defaults are 10 s and 30 s.
"""

from __future__ import annotations

import contextlib
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from mathagent.verify.toolchain import LeanToolchain
from serve_support import STATEMENT, Server, serving

SLOW_BODY = b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
SLOW_HEADERS = b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 400
HEADER_S, BODY_S = 2.0, 3.0


def _address(server: Server) -> tuple[str, int]:
    parts = urlsplit(server.url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


@contextlib.contextmanager
def _sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    try:
        yield opened
    finally:
        for sock in opened:
            sock.close()


def _open(server: Server, opened: list[socket.socket], count: int, first: bytes) -> list[socket.socket]:
    made = []
    for _ in range(count):
        sock = socket.create_connection(_address(server), timeout=5)
        sock.sendall(first)
        opened.append(sock)
        made.append(sock)
    return made


def _answer(sock: socket.socket, within: float) -> bytes | None:
    """What the server sent before closing (b"" if nothing, or the connection was reset); None if it is still open."""
    sock.settimeout(within)
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except TimeoutError:
        return None
    except ConnectionError:
        pass
    return received


def _check(client: httpx.Client) -> float:
    """One genuine proof through the native API: verified, and how long it took."""
    row = {"id": "ok", "formal_statement": STATEMENT, "proof": " Eq.refl _"}
    started = time.monotonic()
    response = client.post("/v1/verify", json={"tasks": [row]})
    took = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["verdict"] == "verified"
    return took


@pytest.fixture(scope="module")
def server(lean: LeanToolchain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("deadlines-home")
    (home / "mathagent").mkdir()
    # a queue far smaller than the attack: before, slow bodies counted against it and filled it
    (home / "mathagent" / "mathagent.toml").write_text("[serve]\nmax_queue = 8\n")
    env = {"XDG_CONFIG_HOME": str(home)}
    timeouts = ("--header-timeout", str(HEADER_S), "--body-timeout", str(BODY_S), "--max-receiving", "400")
    with serving(lean, home, "--workers", "2", "--no-cache", *timeouts, env=env) as live:
        yield live


@pytest.mark.slow
def test_slow_clients_are_cut_off_and_others_are_served_meanwhile(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client, _sockets() as opened:
        baseline = statistics.median(_check(client) for _ in range(5))
        slow_bodies = _open(server, opened, 250, SLOW_BODY)
        dribblers = _open(server, opened, 50, SLOW_HEADERS)
        stop = threading.Event()

        def dribble() -> None:  # one more header byte to each, every 0.3 s: never a whole header
            while not stop.wait(0.3):
                for sock in dribblers:
                    with contextlib.suppress(OSError):
                        sock.send(b"a")

        thread = threading.Thread(target=dribble, daemon=True)
        thread.start()
        started = time.monotonic()
        try:
            # while 300 requests are stuck arriving (more than the queue's 8 places), checks go through
            latencies = []
            while time.monotonic() - started < HEADER_S + 0.5:
                latencies.append(_check(client))
                time.sleep(0.2)
            assert max(latencies) < max(5 * baseline, 1.0), (baseline, latencies)
            # the stalled bodies: 408 at their deadline, then the connection is closed
            for sock in slow_bodies:
                answer = _answer(sock, within=max(0.1, BODY_S + 5 - (time.monotonic() - started)))
                assert answer is not None, "a stalled body was never cut off"
                assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
                assert b'"limit": "body_timeout"' in answer
            assert time.monotonic() - started < BODY_S + 3
            # the endless headers: 408 (or a reset, when the next byte crossed the close) at their deadline
            for sock in dribblers:
                answer = _answer(sock, within=5)
                assert answer is not None, "headers sent forever were never cut off"
                assert answer == b"" or answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        finally:
            stop.set()
            thread.join()
        _check(client)
        health = client.get("/v1/health").json()
        assert health["limits"]["header_timeout"] == HEADER_S and health["limits"]["body_timeout"] == BODY_S
        assert 'mathagent_http_responses_total{code="408"}' in client.get("/metrics").text


@pytest.mark.slow
def test_a_kept_alive_connection_gets_a_deadline_for_its_next_request(server: Server) -> None:
    with _sockets() as opened:
        [sock] = _open(server, opened, 1, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(10)
        first = b""
        while b'{"status":"ok"}' not in first:  # the whole response, however the segments fall
            chunk = sock.recv(4096)
            assert chunk, first
            first += chunk
        assert first.startswith(b"HTTP/1.1 200 ")
        started = time.monotonic()
        sock.sendall(b"GET /hea")  # the next request starts, then stalls
        answer = _answer(sock, within=HEADER_S + 5)
        assert answer is not None and answer.startswith(b"HTTP/1.1 408 "), answer
        assert HEADER_S - 0.5 < time.monotonic() - started < HEADER_S + 3


@pytest.mark.slow
def test_at_the_cap_the_longest_arriving_request_makes_room(lean: LeanToolchain, tmp_path: Path) -> None:
    """Long deadlines and room for 40 arriving requests: 80 stalled ones cannot keep a real client out."""
    with (
        serving(lean, tmp_path, "--workers", "2", "--max-receiving", "40") as live,
        httpx.Client(base_url=live.url, timeout=30) as client,
        _sockets() as opened,
    ):
        stalled = _open(live, opened, 40, SLOW_BODY)
        time.sleep(0.3)
        late = _open(live, opened, 40, SLOW_BODY)  # the cap is full of requests under a second old: turned away
        for sock in late:
            answer = _answer(sock, within=5)
            assert answer is not None and answer.startswith(b"HTTP/1.1 503 "), answer
            assert b'"limit": "max_receiving"' in answer and b"retry-after: 1" in answer
        time.sleep(1.0)  # now the stalled ones have taken over a second: the longest-arriving makes room
        _check(client)
        answers = [_answer(sock, within=0.05) for sock in stalled]
        [dropped] = [answer for answer in answers if answer is not None]  # the others wait for their deadline
        assert dropped.startswith(b"HTTP/1.1 408 ") and b'"limit": "max_receiving"' in dropped, dropped


@pytest.mark.slow
def test_a_pipelined_request_gets_its_clock_when_its_turn_comes(server: Server) -> None:
    """Sent behind another request, a stalled body is timed from its turn, and the first answer arrives whole."""
    first = b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n"
    with _sockets() as opened:
        [sock] = _open(server, opened, 1, first + SLOW_BODY)
        started = time.monotonic()
        answer = _answer(sock, within=BODY_S + 5)
        assert answer is not None and answer.startswith(b"HTTP/1.1 200 "), answer
        assert answer.count(b"HTTP/1.1 408 ") == 1 and b'"limit": "body_timeout"' in answer, answer
        assert BODY_S - 0.5 < time.monotonic() - started < BODY_S + 3
