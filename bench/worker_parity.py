"""Adversarial-size inputs: each path mathagent may take against bare Lean on the same file.

Files a model (or an attacker) can write that stress a checker: thousands of
declarations, thousands of commands that each print a message, one command
with a thousand messages on one line. Each is checked, in one run and
interleaved round by round, by

  bare     `lean --json FILE` (the cheapest honest baseline)
  cold     `mathagent verify FILE --pool cold` (one `lean --json` with the checks appended)
  warm     `mathagent verify FILE --pool warm` (a Lean server worker; a check that reports
           too much is handed to `lean --json`)

and the script prints each one's median wall time and Lean's peak memory,
and the ratios: cold and warm against bare, warm against cold (target:
<= 1.5x in time and memory). Whole processes, Python start-up included
(about 0.5 s); the audit's own work (a `#print axioms` per declaration) too.

    python bench/worker_parity.py [--rounds 2] [--lean PATH]
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

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
    # one term of nested applications: Lean's declaration report grows faster than the term
    "2000 nested apps": "theorem deep : Eq two two := " + "(fun x => x) " * 2000 + "(Eq.refl two)\n",
    # past the kernel's recursion limit: an error (a warm check does not wait for the report)
    "8000 nested apps (error)": "theorem deep : Eq two two := " + "(fun x => x) " * 8000 + "(Eq.refl two)\n",
}
EXPECTED = {"8000 nested apps (error)": "rejected"}  # the others verify


def measure(argv: list[str], lean: Path) -> tuple[float, float, str]:
    """(seconds, peak MB of Lean, stdout) of one whole command. Lean's memory is the
    largest sum of the resident sets of the Lean processes among the command's
    descendants, sampled every 20 ms (a sandboxed Lean is a grandchild, which the
    kernel's rusage of children does not count)."""
    started = time.perf_counter()
    proc = psutil.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT, text=True)
    peak = 0.0
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read() if proc.stdout else ""))
    reader.start()
    while proc.poll() is None:
        total = 0
        with contextlib.suppress(psutil.Error):
            family = [proc, *proc.children(recursive=True)]
            for member in family:
                with contextlib.suppress(psutil.Error, IndexError):
                    if member.exe() == str(lean) or member.cmdline()[0] == str(lean):
                        total += member.memory_info().rss
        peak = max(peak, total / 2**20)
        time.sleep(0.02)
    reader.join()
    return time.perf_counter() - started, peak, "".join(chunks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--lean", type=Path, default=None, help="Lean binary (default: discovered)")
    args = parser.parse_args()
    # mathagent's modules byte-compiled, as its first run on a user's machine leaves them: where
    # PYTHONDONTWRITEBYTECODE is set, every measured run would otherwise compile changed modules anew
    compileall.compile_dir(ROOT / "mathagent", quiet=1)
    settings = load_settings()
    if args.lean:
        settings = settings.with_overrides(lean={"path": args.lean}, lean_origin="--lean")
    lean = find_lean(settings, None).lean
    ways = ("bare", "cold", "warm")
    results: dict[str, dict[str, list[tuple[float, float]]]] = {}
    with tempfile.TemporaryDirectory(prefix="parity-bench-") as tmp:
        for name, body in FILES.items():
            path = Path(tmp) / ("".join(c for c in name if c.isalnum() or c == " ").replace(" ", "_") + ".lean")
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
                    seconds, mb, out = measure(argv[way], lean)
                    expected = EXPECTED.get(name, "verified")
                    if way != "bare" and json.loads(out.splitlines()[0])["verdict"] != expected:
                        raise SystemExit(f"{way} did not answer {expected} on {name}: {out[-500:]}")
                    results[name][way].append((seconds, mb))
                print(
                    f"{name} round {r + 1}: "
                    + "  ".join(f"{w} {results[name][w][-1][0]:.2f}s {results[name][w][-1][1]:.0f}MB" for w in ways),
                    file=sys.stderr,
                )

    print(f"{args.rounds} rounds; medians; Lean's peak resident memory")
    columns = ("bare s", "cold s", "warm s", "bare MB", "cold MB", "warm MB", "cold/bare", "warm/bare", "warm/cold")
    print(f"{'file':22}" + "".join(f" {c:>9}" for c in (*columns, "warm/cold MB")))
    for name, by_way in results.items():
        t = {w: statistics.median(s for s, _ in by_way[w]) for w in ways}
        m = {w: statistics.median(mb for _, mb in by_way[w]) for w in ways}
        cells = [f"{t[w]:9.2f}" for w in ways] + [f"{m[w]:9.0f}" for w in ways]
        cells += [f"{t['cold'] / t['bare']:8.2f}x", f"{t['warm'] / t['bare']:8.2f}x", f"{t['warm'] / t['cold']:8.2f}x"]
        cells.append(f"{m['warm'] / max(m['cold'], 1):11.2f}x")
        print(f"{name:22} " + " ".join(cells))
    print(json.dumps({name: {w: by_way[w] for w in ways} for name, by_way in results.items()}), file=sys.stderr)


if __name__ == "__main__":
    main()
