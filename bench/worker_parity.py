"""Adversarial-size inputs: each path mathagent may take against bare Lean on the same file.

Files a model (or an attacker) can write that stress a checker: thousands of
declarations, thousands of commands that each print a message, one command
with a thousand messages on one line. Each is checked, in one run and
interleaved round by round, by

  bare     `lean --json FILE` (the cheapest honest baseline)
  cold     `mathagent verify FILE --pool cold` (one `lean --json` with the checks appended)
  warm     `mathagent verify FILE --pool warm` (a Lean server worker; a check that reports
           too much is handed to `lean --json`)

and the script prints each one's median wall time and peak memory (the
largest resident set of any process of the run: Lean, or mathagent's Python
for the small files) and the ratios against bare and warm against cold
(targets: <= 1.5x in time and memory). Whole processes, Python start-up
included (about 0.5 s).

    python bench/worker_parity.py [--rounds 2] [--lean PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mathagent.config import load_settings  # noqa: E402
from mathagent.verify.toolchain import find_lean  # noqa: E402

HEADER = (ROOT / "examples" / "prelude_header.lean").read_text(encoding="utf-8")
AXIOM_FREE = "".join(line for line in HEADER.splitlines(keepends=True) if not line.startswith("axiom "))

FILES = {
    "2000 defs": "".join(f"noncomputable def d{i} : N := N.s two\n" for i in range(2000)),
    "5000 defs": "".join(f"noncomputable def d{i} : N := N.s two\n" for i in range(5000)),
    "2000 #check": "#check N.s two\n" * 2000,
    "1000 unused binders": "theorem many "
    + " ".join(f"(x{i} : N)" for i in range(1000))
    + " : Eq two two := Eq.refl _\n",
    "one theorem": "theorem t : Eq (N.mul ten ten) (N.mul ten ten) := Eq.refl _\n",
}

# Run a command and print its wall time and the peak resident set of its processes (KiB).
_MEASURE = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, p.returncode)\n"
    "sys.stderr.write(p.stdout[-2000:])\n"
)


def measure(argv: list[str]) -> tuple[float, float, str]:
    """(seconds, peak MB, output tail) of one whole command."""
    proc = subprocess.run([sys.executable, "-c", _MEASURE, *argv], capture_output=True, text=True, cwd=ROOT)
    seconds, kib, _ = proc.stdout.split()
    return float(seconds), int(kib) / 1024, proc.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--lean", type=Path, default=None, help="Lean binary (default: discovered)")
    args = parser.parse_args()
    settings = load_settings()
    if args.lean:
        settings = settings.with_overrides(lean=args.lean, lean_origin="--lean")
    lean = find_lean(settings, None).lean
    ways = ("bare", "cold", "warm")
    results: dict[str, dict[str, list[tuple[float, float]]]] = {}
    with tempfile.TemporaryDirectory(prefix="parity-bench-") as tmp:
        for name, body in FILES.items():
            path = Path(tmp) / (name.replace(" ", "_").replace("#", "") + ".lean")
            path.write_text(AXIOM_FREE + body, encoding="utf-8")
            verify = [
                sys.executable,
                "-m",
                "mathagent",
                "verify",
                str(path),
                "--no-cache",
                "--json",
                "--timeout",
                "300",
            ]
            argv = {
                "bare": [str(lean), "--json", str(path)],
                "cold": [*verify, "--pool", "cold", "--lean", str(lean)],
                "warm": [*verify, "--pool", "warm", "--lean", str(lean)],
            }
            results[name] = {way: [] for way in ways}
            for r in range(args.rounds):
                for way in ways:
                    seconds, mb, out = measure(argv[way])
                    if way != "bare" and '"verified"' not in out:
                        raise SystemExit(f"{way} did not verify {name}: {out[-500:]}")
                    results[name][way].append((seconds, mb))
                print(
                    f"{name} round {r + 1}: "
                    + "  ".join(f"{w} {results[name][w][-1][0]:.2f}s {results[name][w][-1][1]:.0f}MB" for w in ways),
                    file=sys.stderr,
                )

    print(f"{args.rounds} rounds; medians; peak memory of any process of the run")
    print(
        f"{'file':22} {'bare s':>7} {'cold s':>7} {'warm s':>7} {'bare MB':>8} {'cold MB':>8} {'warm MB':>8}"
        f" {'cold/bare':>10} {'warm/cold':>10} {'warm/cold mem':>14}"
    )
    for name, by_way in results.items():
        t = {w: statistics.median(s for s, _ in by_way[w]) for w in ways}
        m = {w: statistics.median(mb for _, mb in by_way[w]) for w in ways}
        print(
            f"{name:22} {t['bare']:7.2f} {t['cold']:7.2f} {t['warm']:7.2f} {m['bare']:8.0f} {m['cold']:8.0f}"
            f" {m['warm']:8.0f} {t['cold'] / t['bare']:9.2f}x {t['warm'] / t['cold']:9.2f}x"
            f" {m['warm'] / m['cold']:13.2f}x"
        )
    print(json.dumps({name: {w: by_way[w] for w in ways} for name, by_way in results.items()}), file=sys.stderr)


if __name__ == "__main__":
    main()
