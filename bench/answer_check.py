"""What judging an answer costs, and that no input stalls it.

In one run:

  corpus       every case of tests/data/answer_corpus.jsonl through
               `answers.judge` (worker processes, bounded), and through bare
               `math_verify.parse` + `verify` in this process (the baseline:
               what the isolation costs is the ratio);
  pathological `10^{10^{10}}`, `1000!`, a 50 kB answer, deep nesting: each
               must come back within the bound;
  threads      1000 judgements from 8 threads at once on one checker: must
               finish, and how long it took.

Prints median and p99 per call. Targets: corpus median <= 50 ms, p99 and
every pathological call <= the bound (answers.BOUND_S).

    python bench/answer_check.py [--threads 8] [--calls 1000]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mathagent.agent import answers  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "answer_corpus.jsonl"
PATHOLOGICAL = [
    ("5", "\\boxed{10^{10^{10}}}"),
    ("5", "\\boxed{1000!}"),
    ("5", "\\boxed{" + "1+" * 25000 + "1}"),
    ("5", "\\boxed{" + "(" * 30 + "1" + ")" * 30 + "}"),
    ("2^{10^{10}}", "\\boxed{2^{10^{10}}+1}"),
    ("5", "$" + "x" * 50000 + "$"),
]


def timed(call: object) -> float:
    start = time.perf_counter()
    call()  # type: ignore[operator]
    return time.perf_counter() - start


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def bare(reference: str, output: str) -> None:
    from math_verify import parse, verify

    verify(parse(f"${reference}$"), parse(output))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    cases = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    checker = answers.AnswerChecker(workers=2)
    checker.judge("1", "\\boxed{1}")  # start the workers: start-up is not a comparison
    bare("1", "\\boxed{1}")

    ours = [timed(lambda c=c: checker.judge(c["reference"], c["output"])) for c in cases]
    baseline = [timed(lambda c=c: bare(c["reference"], c["output"])) for c in cases]
    worst = [timed(lambda c=c: checker.judge(*c)) for c in PATHOLOGICAL]
    pool_cases = [cases[i % len(cases)] for i in range(args.calls)]
    start = time.perf_counter()
    with ThreadPoolExecutor(args.threads) as pool:
        done = list(pool.map(lambda c: checker.judge(c["reference"], c["output"]), pool_cases))
    threaded = time.perf_counter() - start
    checker.close()

    ms = 1000
    print(f"corpus: {len(cases)} cases; bound per call {checker.bound_s:.1f} s")
    print(f"{'':28} {'median ms':>10} {'p99 ms':>8} {'max ms':>8}")
    rows = (
        ("answers.judge (workers)", ours),
        ("bare math-verify (in process)", baseline),
        ("pathological (judge)", worst),
    )
    for name, values in rows:
        print(f"{name:28} {statistics.median(values) * ms:10.1f} {p99(values) * ms:8.1f} {max(values) * ms:8.1f}")
    ratio = statistics.median(ours) / statistics.median(baseline)
    print(f"median judge / median bare: {ratio:.2f}x")
    each = threaded / len(done) * ms
    print(f"{len(done)} judgements from {args.threads} threads: {threaded:.1f} s, {each:.1f} ms each")
    missed = []
    if statistics.median(ours) > 0.050:
        missed.append("corpus median over 50 ms")
    if max(p99(ours), max(worst)) > checker.bound_s:
        missed.append("a call past the bound")
    if missed:
        sys.exit("targets missed: " + "; ".join(missed))
    print("targets met")


if __name__ == "__main__":
    main()
