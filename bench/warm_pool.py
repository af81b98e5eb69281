"""Warm pool against cold checks, on a header that is expensive to elaborate.

50 tasks share one prelude header that takes >= 2 s to elaborate (it proves
two unary-arithmetic facts by computation). Each is verified with 2 workers:

  cold   a fresh sandboxed `lean` per check: pays the header every time
  warm   language servers keep the header elaborated between checks

and prints the wall times, the speed-up (target >= 10x on 2 cores), the
latency of a warm check once the servers are warm (10 more checks sent one
at a time: in the batch, a check's time counts its wait for a server), and
the floor: the same proof elaborated alone in a fresh process under a
trivial header.

    python bench/warm_pool.py [--tasks 50]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mathagent.config import load_settings  # noqa: E402
from mathagent.verify.tasks import VerifyTask  # noqa: E402
from mathagent.verify.toolchain import find_lean  # noqa: E402
from mathagent.verify.verifier import Verifier, VerifyOptions  # noqa: E402

LIGHT = (ROOT / "examples" / "prelude_header.lean").read_text(encoding="utf-8")
HEAVY = LIGHT + (
    "set_option maxRecDepth 100000\n"
    "theorem heavy_one : Eq (N.mul (N.mul ten ten) (N.mul ten two)) (N.mul (N.mul ten two) (N.mul ten ten)) "
    ":= Eq.refl _\n"
    "theorem heavy_two : Eq (N.mul (N.mul ten ten) (N.add ten ten)) (N.mul (N.add ten ten) (N.mul ten ten)) "
    ":= Eq.refl _\n"
    "theorem heavy_three : Eq (N.mul (N.mul ten ten) (N.add ten four)) (N.mul (N.add ten four) (N.mul ten "
    "ten)) := Eq.refl _\n"
)


def tasks(count: int) -> list[VerifyTask]:
    out = []
    for i in range(count):
        b = ["two", "four", "ten", "N.add ten two"][i % 4]
        statement = f"theorem small_{i} : Eq (N.mul ({b}) (N.add two four)) (N.mul (N.add two four) ({b})) :="
        out.append(VerifyTask(id=f"t{i}", formal_statement=statement, proof=f" Eq.refl _ -- {i}", header=HEAVY))
    return out


async def run(toolchain, pool: str, batch: list[VerifyTask], one_by_one: list[VerifyTask]) -> tuple[float, list[float]]:  # type: ignore[no-untyped-def]
    """The batch's wall time, then the latency of each of `one_by_one` sent alone after it."""
    options = VerifyOptions(workers=2, timeout_s=120, default_header=HEAVY, pool=pool, cache_path=None)
    async with Verifier(toolchain, options) as verifier:
        start = time.perf_counter()
        verdicts = await asyncio.gather(*(verifier.verify(t) for t in batch))
        elapsed = time.perf_counter() - start
        latencies = []
        for task in one_by_one:
            sent = time.perf_counter()
            verdicts.append(await verifier.verify(task))
            latencies.append(time.perf_counter() - sent)
    if not all(v.verified for v in verdicts):
        raise SystemExit(f"{pool}: not all verified: {[(v.id, v.reasons) for v in verdicts if not v.verified][:3]}")
    return elapsed, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=50)
    args = parser.parse_args()
    toolchain = find_lean(load_settings(), None)
    batch = tasks(args.tasks + 10)
    batch, one_by_one = batch[: args.tasks], batch[args.tasks :]

    with tempfile.TemporaryDirectory() as tmp:
        header_file = Path(tmp) / "heavy.lean"
        header_file.write_text(HEAVY)
        started = time.perf_counter()
        subprocess.run([str(toolchain.lean), str(header_file)], check=True, capture_output=True)
        header_s = time.perf_counter() - started
        alone = Path(tmp) / "alone.lean"
        alone.write_text(LIGHT + batch[0].formal_statement + batch[0].proof + "\n")
        floor = []
        for _ in range(5):
            started = time.perf_counter()
            subprocess.run([str(toolchain.lean), str(alone)], check=True, capture_output=True)
            floor.append(time.perf_counter() - started)

    warm_wall, warm_checks = asyncio.run(run(toolchain, "warm", batch, one_by_one))
    cold_wall, cold_checks = asyncio.run(run(toolchain, "cold", batch, one_by_one))
    print(
        f"{args.tasks} tasks, 2 workers, Lean {toolchain.version}; the header alone takes {header_s:.2f}s to elaborate"
    )
    print(f"cold: {cold_wall:7.2f}s wall, {statistics.median(cold_checks):.3f}s per check alone (median)")
    print(f"warm: {warm_wall:7.2f}s wall, {statistics.median(warm_checks):.3f}s per check alone, servers warm (median)")
    print(f"speed-up warm vs cold: {cold_wall / warm_wall:.1f}x")
    print(
        f"floor: the proof alone in a fresh lean under a trivial header: {statistics.median(floor):.3f}s (median of 5)"
    )


if __name__ == "__main__":
    main()
