"""What mathagent's verifier costs on top of bare Lean.

Verifies the same batch of prelude proofs (each a few hundred milliseconds of
elaboration and kernel work: unary multiplication commuted) four ways, in
one run, interleaved round by round:

  bare-1   `lean --json FILE`, one at a time
  bare-2   `lean --json FILE`, two at a time
  ma-1     `mathagent verify -i tasks.jsonl -j 1 --no-cache --json` (sandbox + audit)
  ma-2     the same with `-j 2`

and prints the median wall time of each and the ratios. A ratio is the
median of the per-round ratios (each round runs both sides back to back, so
a machine that drifts between rounds does not skew it). Targets on a 2-core
machine: ma-1 <= 1.10x bare-1, ma-2 <= 1.10x bare-2.

    python bench/verify_overhead.py [--tasks 40] [--rounds 3] [--lean PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mathagent.config import load_settings  # noqa: E402
from mathagent.verify.toolchain import find_lean  # noqa: E402

HEADER = (ROOT / "examples" / "prelude_header.lean").read_text(encoding="utf-8")
# second factor of `N.mul hundred b`: 8..12 give roughly 0.2-0.45 s per check here
FACTORS = ["N.mul two four", "N.add (N.mul two four) (N.s N.z)", "ten", "N.add ten (N.s N.z)", "N.add ten two"]


def make_tasks(count: int) -> list[dict[str, str]]:
    tasks = []
    for i in range(count):
        b = FACTORS[i % len(FACTORS)]
        statement = (
            f"set_option maxRecDepth 100000 in\n"
            f"theorem mul_comm_{i} : Eq (N.mul (N.mul ten ten) ({b})) (N.mul ({b}) (N.mul ten ten)) :="
        )
        tasks.append({"id": f"mul_comm_{i}", "formal_statement": statement, "proof": f" Eq.refl _ -- task {i}"})
    return tasks


def bare(lean: Path, files: list[Path], parallel: int) -> float:
    def one(path: Path) -> None:
        proc = subprocess.run([str(lean), "--json", str(path)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"bare lean failed on {path}: {proc.stdout[:500]}")

    start = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(one, files))
    return time.perf_counter() - start


def mathagent(jsonl: Path, header: Path, workers: int, lean: Path) -> float:
    argv = [
        sys.executable,
        "-m",
        "mathagent",
        "verify",
        "-i",
        str(jsonl),
        "--header-file",
        str(header),
        "-j",
        str(workers),
        "--no-cache",
        "--json",
        "--lean",
        str(lean),
    ]
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
    elapsed = time.perf_counter() - start
    verdicts = [json.loads(line)["verdict"] for line in proc.stdout.splitlines()]
    if proc.returncode != 0 or set(verdicts) != {"verified"}:
        raise SystemExit(
            f"mathagent did not verify the batch (exit {proc.returncode}): {proc.stderr[-800:]}{proc.stdout[-800:]}"
        )
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lean", type=Path, default=None, help="Lean binary (default: discovered)")
    args = parser.parse_args()

    settings = load_settings()
    if args.lean:
        settings = settings.with_overrides(lean=args.lean, lean_origin="--lean")
    toolchain = find_lean(settings, None)
    tasks = make_tasks(args.tasks)
    with tempfile.TemporaryDirectory(prefix="verify-bench-") as tmp:
        folder = Path(tmp)
        header = folder / "header.lean"
        header.write_text(HEADER)
        jsonl = folder / "tasks.jsonl"
        jsonl.write_text("".join(json.dumps(t) + "\n" for t in tasks))
        files = []
        for t in tasks:
            path = folder / f"{t['id']}.lean"
            path.write_text(HEADER + t["formal_statement"] + t["proof"] + "\n")
            files.append(path)

        runs: dict[str, list[float]] = {"bare-1": [], "bare-2": [], "ma-1": [], "ma-2": []}
        mathagent(jsonl, header, 2, toolchain.lean)  # warm-up: page cache, launcher, imports
        for r in range(args.rounds):
            runs["bare-1"].append(bare(toolchain.lean, files, 1))
            runs["ma-1"].append(mathagent(jsonl, header, 1, toolchain.lean))
            runs["bare-2"].append(bare(toolchain.lean, files, 2))
            runs["ma-2"].append(mathagent(jsonl, header, 2, toolchain.lean))
            print(f"round {r + 1}: " + "  ".join(f"{k} {v[-1]:.2f}s" for k, v in runs.items()), file=sys.stderr)

    med = {k: statistics.median(v) for k, v in runs.items()}
    per_check = med["bare-1"] / len(tasks)
    print(
        f"{len(tasks)} proofs, {args.rounds} rounds, Lean {toolchain.version} ({toolchain.origin}), "
        f"{os.cpu_count()} cores"
    )
    print(f"bare lean, one check: {per_check * 1000:.0f} ms median")
    print(f"{'mode':8} {'median s':>9} {'min s':>7} {'max s':>7}")
    for k, v in runs.items():
        print(f"{k:8} {med[k]:9.2f} {min(v):7.2f} {max(v):7.2f}")

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(runs[a], runs[b], strict=True))

    ratios = {
        "ma-1 / bare-1": ratio("ma-1", "bare-1"),
        "ma-2 / bare-2": ratio("ma-2", "bare-2"),
        "bare-1 / bare-2 (parallel speed-up)": ratio("bare-1", "bare-2"),
        "bare-1 / ma-2 (mathagent speed-up)": ratio("bare-1", "ma-2"),
    }
    for name, value in ratios.items():
        print(f"{name:38} {value:.3f}x")


if __name__ == "__main__":
    main()
