"""How long the text audit takes on adversarial input, and that it grows linearly.

The audit (assembling the file and scanning the submission for banned
commands, before Lean runs) reads untrusted text. For each adversarial
pattern (the shapes that made the old regex audit quadratic or exponential,
and worst cases for the lexer) and for a genuine proof-like text of the same
size, it times the audit at 0.25, 0.5 and 1 MB, in one run, best of
`--rounds`, and prints:

  seconds at 1 MB
  growth: time(1 MB) / time(0.5 MB)   (2.0 is linear; quadratic would be 4)
  vs genuine: time(pattern, 1 MB) / time(genuine text, 1 MB)

    python bench/audit_scan.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mathagent.verify.tasks import VerifyTask  # noqa: E402
from mathagent.verify.verifier import _prepare  # noqa: E402

HEADER = (ROOT / "examples" / "prelude_header.lean").read_text(encoding="utf-8")
STATEMENT = "theorem two_add_two : Eq (N.add two two) four :="
GENUINE = "  have h : Eq (N.add two two) four := Eq.refl _ -- a step\n"
PATTERNS = {
    "genuine proof text": GENUINE,
    "@[ (old attribute regex)": "@[",
    "/- -/ after imports": "/- -/ ",
    "/- nesting": "/-",
    "«": "«",
    "a.«b»": "a.«b» ",
    '"\\': '"\\',
    "'\"'": "'\"",
    "/--/": "/--/",
    "tabs": "\t",
    "axiom (hits)": "axiom a : False\n",
    "set_option debug": "set_option debug.x true\n",
}
SIZES = (250_000, 500_000, 1_000_000)


def audit_seconds(filler: str, size: int, rounds: int) -> float:
    proof = " Eq.refl _\n" + filler * (size // len(filler))
    task = VerifyTask(id="bench", formal_statement=STATEMENT, proof=proof)
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        _prepare(task, HEADER, False)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    timings = {name: [audit_seconds(f, n, args.rounds) for n in SIZES] for name, f in PATTERNS.items()}
    genuine = timings["genuine proof text"][-1]
    print(f"{'input (1 MB)':28} {'seconds':>8} {'growth':>7} {'vs genuine':>10}")
    for name, (_, half, full) in timings.items():
        print(f"{name:28} {full:8.2f} {full / half:7.2f} {full / genuine:10.2f}")


if __name__ == "__main__":
    main()
