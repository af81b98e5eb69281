"""Lean checks through a Ray cluster against the local pool, with the same CPUs.

The same prelude checks (each 0.05-0.5 s of elaboration and kernel work:
unary multiplication commuted) go, in one run, interleaved round by round:

  local   one `Verifier` (warm pool) with N = nodes x cpus workers
  ray     `RayChecker` on a `ray.cluster_utils.Cluster` of `nodes` nodes with
          `cpus` CPUs each (N Lean workers in all), the Ray daemons on the
          same host

and prints the median wall times and the overhead (target: ray <= 1.15x
local). Actor start-up (once per command) is timed apart. Then it measures
what the model below needs: the per-check cost t (local wall x N / checks),
the round trip of one check through Ray (checks the audit rejects, so Lean
never runs: local latency vs Ray latency), and the driver's own CPU per
check d (a burst of such checks), which bounds one driver at 1/d checks/s.

Projection for k nodes of c cores: throughput = min(k * c * e / t, 1/d),
with e the measured Ray efficiency (local / ray wall time at equal CPUs,
at most 1) and t the per-check cost (measured here for the prelude, 3.65 s
for a warm Mathlib check as kimina-lean-server reports it).

    python bench/ray_scale.py [--tasks 200] [--nodes 2] [--cpus 1] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mathagent.cluster.checker import RayChecker  # noqa: E402
from mathagent.config import load_settings  # noqa: E402
from mathagent.verify.checker import Checker  # noqa: E402
from mathagent.verify.tasks import VerifyTask  # noqa: E402
from mathagent.verify.toolchain import LeanToolchain, find_lean  # noqa: E402
from mathagent.verify.verifier import Verifier, VerifyOptions  # noqa: E402

HEADER = (ROOT / "examples" / "prelude_header.lean").read_text(encoding="utf-8")
FACTORS = ["four", "N.mul two four", "ten", "N.add (N.mul two four) (N.s N.z)", "two"]
MATHLIB_CHECK_S = 3.65  # kimina-lean-server's warm check with Mathlib (ENVIRONMENT.md): the per-check cost to project


def make_tasks(count: int) -> list[VerifyTask]:
    tasks = []
    for i in range(count):
        b = FACTORS[i % len(FACTORS)]
        statement = (
            "set_option maxRecDepth 100000 in\n"
            f"theorem mul_comm_{i} : Eq (N.mul (N.mul ten ten) ({b})) (N.mul ({b}) (N.mul ten ten)) :="
        )
        tasks.append(VerifyTask(id=f"mul_comm_{i}", formal_statement=statement, proof=f" Eq.refl _ -- task {i}"))
    return tasks


def trivial_tasks(count: int) -> list[VerifyTask]:
    """Checks the audit rejects before Lean runs (`#exit`): what is left is the cost of getting there and back."""
    statement = "theorem t : Eq two two :="
    return [VerifyTask(id=f"t{i}", formal_statement=statement, proof=f" Eq.refl _\n#exit -- {i}") for i in range(count)]


async def run_all(checker: Checker, tasks: list[VerifyTask], expected: str = "verified") -> float:
    start = time.perf_counter()
    async for _, verdict in checker.verify_many(tasks):
        if verdict.verdict != expected:
            raise SystemExit(f"expected {expected}, got {verdict}")
    return time.perf_counter() - start


async def local(toolchain: LeanToolchain, options: VerifyOptions, tasks: list[VerifyTask]) -> float:
    async with Verifier(toolchain, options) as verifier:
        return await run_all(verifier, tasks)


async def on_ray(options: VerifyOptions, tasks: list[VerifyTask], started: list[float]) -> float:
    t0 = time.perf_counter()
    async with RayChecker(load_settings(), options) as checker:
        started.append(time.perf_counter() - t0)
        return await run_all(checker, tasks)


async def latency(checker: Checker, tasks: list[VerifyTask]) -> float:
    """Median seconds of one check at a time."""
    times = []
    for task in tasks:
        t0 = time.perf_counter()
        await checker.verify(task)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


async def overheads(toolchain: LeanToolchain, options: VerifyOptions) -> tuple[float, float, float, float]:
    """(local latency, Ray latency, driver CPU seconds per check, burst checks/s) on audit-only checks."""
    probe = trivial_tasks(60)
    async with Verifier(toolchain, options) as verifier:
        local_latency = await latency(verifier, probe)
    async with RayChecker(load_settings(), options) as checker:
        ray_latency = await latency(checker, probe)
        burst = trivial_tasks(2000)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await run_all(checker, burst, expected="rejected")
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return local_latency, ray_latency, cpu / len(burst), len(burst) / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=1, help="CPUs (Lean workers) per node")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pool", default="warm", choices=["warm", "cold"])
    args = parser.parse_args()

    import ray
    from ray.cluster_utils import Cluster

    toolchain = find_lean(load_settings(), None)
    workers = args.nodes * args.cpus
    options = VerifyOptions(
        workers=workers, timeout_s=120, memory_mb=4096, default_header=HEADER, pool=args.pool, cache_path=None
    )
    tasks = make_tasks(args.tasks)
    node = {"num_cpus": args.cpus, "object_store_memory": 100 * 1024 * 1024}
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    for _ in range(args.nodes - 1):
        cluster.add_node(**node)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level=logging.ERROR, log_to_driver=False)
    try:
        runs: dict[str, list[float]] = {"local": [], "ray": []}
        started: list[float] = []
        asyncio.run(local(toolchain, options, tasks[:20]))  # warm-up: page cache, launcher
        for r in range(args.rounds):
            runs["local"].append(asyncio.run(local(toolchain, options, tasks)))
            runs["ray"].append(asyncio.run(on_ray(options, tasks, started)))
            print(f"round {r + 1}: local {runs['local'][-1]:.2f}s  ray {runs['ray'][-1]:.2f}s", file=sys.stderr)
        local_latency, ray_latency, driver_cpu, burst = asyncio.run(overheads(toolchain, options))
    finally:
        ray.shutdown()
        cluster.shutdown()

    med = {k: statistics.median(v) for k, v in runs.items()}
    ratio = statistics.median(b / a for a, b in zip(runs["local"], runs["ray"], strict=True))
    per_check = med["local"] * workers / len(tasks)
    efficiency = min(1.0, 1 / ratio)  # Ray measured faster than local counts as equal: no credit
    print(
        f"{len(tasks)} checks, {args.rounds} rounds, {args.pool} pool, Lean {toolchain.version} ({toolchain.origin}), "
        f"{os.cpu_count()} cores on this host; Ray: {args.nodes} nodes x {args.cpus} CPU(s)"
    )
    print(f"{'mode':6} {'median s':>9} {'min s':>7} {'max s':>7}")
    for k, v in runs.items():
        print(f"{k:6} {med[k]:9.2f} {min(v):7.2f} {max(v):7.2f}")
    print(f"ray / local: {ratio:.3f}x (target <= 1.15)")
    print(f"actor start-up (once per command): {statistics.median(started):.2f} s")
    print(f"per-check cost t: {per_check * 1000:.0f} ms of one worker")
    print(
        f"one check at a time (audit only): local {local_latency * 1000:.1f} ms, Ray {ray_latency * 1000:.1f} ms "
        f"(round trip {(ray_latency - local_latency) * 1000:.1f} ms)"
    )
    print(f"driver: {driver_cpu * 1000:.2f} ms CPU per check, burst {burst:.0f} checks/s (1/d = {1 / driver_cpu:.0f})")
    print()
    print(f"projected checks/s = min(k * c * e / t, 1/d), e = {efficiency:.2f}, 1/d = {1 / driver_cpu:.0f}")
    print(f"{'nodes':>5} {'cores':>5} {'workers':>7} {'prelude/s':>10} {'Mathlib/s':>10} {'h per 100k Mathlib':>19}")
    for k, c in ((1, 16), (4, 16), (4, 64), (16, 64), (64, 64), (256, 64)):
        prelude = min(k * c * efficiency / per_check, 1 / driver_cpu)
        mathlib = min(k * c * efficiency / MATHLIB_CHECK_S, 1 / driver_cpu)
        print(f"{k:5} {c:5} {k * c:7} {prelude:10.0f} {mathlib:10.1f} {100_000 / mathlib / 3600:19.2f}")


if __name__ == "__main__":
    main()
