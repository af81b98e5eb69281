"""Throughput and latency of `mathagent serve` against `mathagent verify --input`, on the same tasks.

    python bench/serve_load.py [--tasks 600] [--rounds 3] [--workers N] [--pool warm] [--workload mixed]

Each round runs, in turn: the CLI on a JSONL of the tasks (one whole `mathagent verify` process, start-up
included), then the service (started once, warm, before the first round) with 1, 8 and 64 concurrent
clients, each sending one-check requests until the tasks are done. Both have the verdict cache off, the
same pool and workers, so every check runs Lean. Printed: checks/s and the p50/p99 latency of a request
(median over rounds), and the service's throughput at 64 clients as a ratio of the CLI's (the median of
the per-round ratios). Target: >= 0.9.

The tasks are cheap prelude checks (a few milliseconds of Lean each, warm), a mix of proofs Lean accepts,
type errors, a disallowed axiom and a banned command, plus whole files (`--workload mixed`, the default:
two headers, so two kinds of warm server) or not (`one-header`), so the numbers measure the service's
overhead, not Lean. The clients are a minimal keep-alive HTTP/1.1 client (see `Connection`), so that on
a small machine the load generator does not take the CPU the service is measured on.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
HEADER_FILE = ROOT / "examples" / "prelude_header.lean"
AXIOM_FREE = (
    HEADER_FILE.read_text()
    .replace("axiom cheat : False\n", "")
    .replace("axiom sorryAx", "-- no sorryAx")
    .replace("axiom propext", "-- no propext")
)
CLIENTS = (1, 8, 64)


def tasks(count: int, workload: str = "mixed") -> list[dict[str, Any]]:
    """`mixed`: statements with proofs and whole files (two headers, so two kinds of warm server);
    `one-header`: statements with proofs only."""
    rows: list[dict[str, Any]] = []
    kinds = 6 if workload == "mixed" else 5
    for i in range(count):
        name, kind = f"t{i}", i % kinds
        if kind in (0, 1):
            rows.append(
                {"id": name, "formal_statement": f"theorem {name} : Eq (N.add two two) four :=", "proof": " Eq.refl _"}
            )
        elif kind == 2:
            rows.append(
                {"id": name, "formal_statement": f"theorem {name} : Eq (N.add two two) ten :=", "proof": " Eq.refl _"}
            )
        elif kind == 3:
            rows.append(
                {"id": name, "formal_statement": f"theorem {name} : Eq two four :=", "proof": " False.elim cheat"}
            )
        elif kind == 4:
            rows.append(
                {"id": name, "formal_statement": f"theorem {name} : Eq two two :=", "proof": " Eq.refl _\n#exit"}
            )
        else:
            rows.append(
                {"id": name, "full_code": AXIOM_FREE + f"theorem {name} : Eq (N.add two two) four := Eq.refl _\n"}
            )
    return rows


def run_cli(path: Path, workers: int, pool: str) -> float:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "mathagent", "verify", "-i", str(path), "--json", "--no-cache", "-j", str(workers)]
        + ["--pool", pool, "--header-file", str(HEADER_FILE)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    elapsed = time.monotonic() - started
    if proc.returncode not in (0, 1):
        raise SystemExit(f"the CLI failed: {proc.stderr[-2000:]}")
    return elapsed


def start_server(workers: int, pool: str) -> tuple[subprocess.Popen[str], str]:
    argv = [sys.executable, "-m", "mathagent", "serve", "--port", "0", "--no-cache", "-j", str(workers)]
    argv += ["--pool", pool, "--header-file", str(HEADER_FILE)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or []], daemon=True).start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        if "listening on " in line:
            return proc, line.split("listening on ", 1)[1].split()[0]
    proc.kill()
    raise SystemExit("the server did not start")


class Connection:
    """One keep-alive HTTP/1.1 connection that POSTs JSON: a load generator's client, not a library.

    httpx costs about as much CPU per request as the service spends on it; on a 2-core machine a client
    that heavy would mostly measure itself, as load generators (wrk, hey) are made to avoid."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        data = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n"
        )
        self.writer.write(head.encode() + data)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return int(status_line.split()[1]), await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


async def drive(url: str, rows: list[dict[str, Any]], clients: int) -> tuple[float, list[float]]:
    """Send every row as a one-check request from `clients` concurrent clients: (wall seconds, latencies)."""
    latencies: list[float] = []

    async def client(share: list[dict[str, Any]]) -> None:
        connection = Connection(url)
        try:
            for row in share:
                sent = time.monotonic()
                status, body = await connection.post("/v1/verify", {"tasks": [row]})
                if status != 200 or len(json.loads(body)["results"]) != 1:
                    raise SystemExit(f"the service answered {status}: {body[:300]!r}")
                latencies.append(time.monotonic() - sent)
        finally:
            await connection.close()

    started = time.monotonic()
    await asyncio.gather(*(client(rows[i::clients]) for i in range(clients)))
    return time.monotonic() - started, latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--pool", choices=("warm", "cold"), default="warm")
    parser.add_argument("--workload", choices=("mixed", "one-header"), default="mixed")
    args = parser.parse_args()
    # mathagent's modules byte-compiled, as its first run on a user's machine leaves them: where
    # PYTHONDONTWRITEBYTECODE is set, every measured run would otherwise compile changed modules anew
    compileall.compile_dir(ROOT / "mathagent", quiet=1)
    rows = tasks(args.tasks, args.workload)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tasks.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        proc, url = start_server(args.workers, args.pool)
        try:
            asyncio.run(drive(url, tasks(12), 4))  # start the warm servers before measuring
            cli_rates: list[float] = []
            rates: dict[int, list[float]] = {c: [] for c in CLIENTS}
            p50: dict[int, list[float]] = {c: [] for c in CLIENTS}
            p99: dict[int, list[float]] = {c: [] for c in CLIENTS}
            ratios: list[float] = []
            for round_ in range(1, args.rounds + 1):
                cli_rate = len(rows) / run_cli(path, args.workers, args.pool)
                cli_rates.append(cli_rate)
                line = [f"round {round_}: cli {cli_rate:.1f}/s"]
                for clients in CLIENTS:
                    wall, latencies = asyncio.run(drive(url, rows, clients))
                    rates[clients].append(len(rows) / wall)
                    p50[clients].append(percentile(latencies, 0.5))
                    p99[clients].append(percentile(latencies, 0.99))
                    line.append(f"{clients} clients {len(rows) / wall:.1f}/s")
                ratios.append(rates[64][-1] / cli_rate)
                print(", ".join(line), flush=True)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    median = statistics.median
    print(
        f"\n{len(rows)} checks ({args.workload}), {args.workers} workers, {args.pool} pool, cache off, "
        f"median of {args.rounds} rounds\n"
    )
    print("| | checks/s | p50 latency | p99 latency |")
    print("|---|---|---|---|")
    print(f"| `mathagent verify --input` (one process, start-up included) | {median(cli_rates):.1f} | | |")
    for clients in CLIENTS:
        print(
            f"| `mathagent serve`, {clients} client{'s' if clients > 1 else ''} | {median(rates[clients]):.1f} | "
            f"{median(p50[clients]) * 1000:.0f} ms | {median(p99[clients]) * 1000:.0f} ms |"
        )
    print(f"\nservice at 64 clients / CLI: {median(ratios):.2f}x (target >= 0.9)")


if __name__ == "__main__":
    main()
