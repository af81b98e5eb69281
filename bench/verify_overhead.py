"""What mathagent's verifier costs on top of bare Lean.

Verifies the same batch of prelude proofs (each a few hundred milliseconds of
elaboration and kernel work: unary multiplication commuted) four ways, in
one run, interleaved round by round:

  bare-1   `lean --json FILE`, one at a time
  bare-2   `lean --json FILE`, two at a time
  ma-1     task mode: `mathagent verify -i tasks.jsonl -j 1 --no-cache --json` (sandbox + audit);
           whole-file mode: `mathagent verify FILE... -j 1 --no-cache --json` (every declaration audited)
  ma-2     the same with `-j 2`

`--mode task` checks rows with a formal statement (the header is the task's),
`--mode file` whole files with no statement (the header written into each file,
declaring no axiom), `--mode both` runs both, one after the other.

and prints the median wall time of each and the ratios. A ratio is the
median of the per-round ratios (each round runs both sides back to back, so
a machine that drifts between rounds does not skew it). Targets on a 2-core
machine: ma-1 <= 1.10x bare-1, ma-2 <= 1.10x bare-2.

    python bench/verify_overhead.py [--mode task|file|both] [--tasks 40] [--rounds 3] [--lean PATH]
"""

from __future__ import annotations

import argparse
import compileall
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
# A whole file may declare no axiom: the header without them.
AXIOM_FREE = "".join(line for line in HEADER.splitlines(keepends=True) if not line.startswith("axiom "))
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


def mathagent(inputs: list[str], workers: int, lean: Path) -> float:
    argv = [sys.executable, "-m", "mathagent", "verify", *inputs, "-j", str(workers), "--no-cache", "--json"]
    argv += ["--lean", str(lean)]
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
    elapsed = time.perf_counter() - start
    verdicts = [json.loads(line)["verdict"] for line in proc.stdout.splitlines()]
    if proc.returncode != 0 or set(verdicts) != {"verified"}:
        raise SystemExit(
            f"mathagent did not verify the batch (exit {proc.returncode}): {proc.stderr[-800:]}{proc.stdout[-800:]}"
        )
    return elapsed


def measure(mode: str, tasks: list[dict[str, str]], rounds: int, lean: Path, folder: Path) -> dict[str, list[float]]:
    """Wall times per round of the four ways, for task or whole-file mode."""
    files = []
    for t in tasks:
        path = folder / f"{mode}-{t['id']}.lean"
        path.write_text((HEADER if mode == "task" else AXIOM_FREE) + t["formal_statement"] + t["proof"] + "\n")
        files.append(path)
    if mode == "task":
        header = folder / "header.lean"
        header.write_text(HEADER)
        jsonl = folder / "tasks.jsonl"
        jsonl.write_text("".join(json.dumps(t) + "\n" for t in tasks))
        inputs = ["-i", str(jsonl), "--header-file", str(header)]
    else:
        inputs = [str(f) for f in files]
    runs: dict[str, list[float]] = {"bare-1": [], "bare-2": [], "ma-1": [], "ma-2": []}
    mathagent(inputs, 2, lean)  # warm-up: page cache, launcher, imports
    for r in range(rounds):
        runs["bare-1"].append(bare(lean, files, 1))
        runs["ma-1"].append(mathagent(inputs, 1, lean))
        runs["bare-2"].append(bare(lean, files, 2))
        runs["ma-2"].append(mathagent(inputs, 2, lean))
        print(f"{mode} round {r + 1}: " + "  ".join(f"{k} {v[-1]:.2f}s" for k, v in runs.items()), file=sys.stderr)
    return runs


def report(mode: str, runs: dict[str, list[float]], count: int) -> None:
    med = {k: statistics.median(v) for k, v in runs.items()}
    print(f"\n{mode} mode: bare lean, one check: {med['bare-1'] / count * 1000:.0f} ms median")
    print(f"{'way':8} {'median s':>9} {'min s':>7} {'max s':>7}")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["task", "file", "both"], default="both")
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lean", type=Path, default=None, help="Lean binary (default: discovered)")
    args = parser.parse_args()
    # mathagent's modules byte-compiled, as its first run on a user's machine leaves them: where
    # PYTHONDONTWRITEBYTECODE is set, every measured run would otherwise compile changed modules anew
    compileall.compile_dir(ROOT / "mathagent", quiet=1)

    settings = load_settings()
    if args.lean:
        settings = settings.with_overrides(lean={"path": args.lean}, lean_origin="--lean")
    toolchain = find_lean(settings, None)
    tasks = make_tasks(args.tasks)
    modes = ["task", "file"] if args.mode == "both" else [args.mode]
    with tempfile.TemporaryDirectory(prefix="verify-bench-") as tmp:
        results = {mode: measure(mode, tasks, args.rounds, toolchain.lean, Path(tmp)) for mode in modes}
    print(
        f"{len(tasks)} proofs, {args.rounds} rounds, Lean {toolchain.version} ({toolchain.origin}), "
        f"{os.cpu_count()} cores"
    )
    for mode, runs in results.items():
        report(mode, runs, len(tasks))


if __name__ == "__main__":
    main()
