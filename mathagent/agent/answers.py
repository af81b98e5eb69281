"""Final answers, judged the way the field scores them: Hugging Face's `math-verify`.

Every place mathagent compares natural-language answers comes here, through
one path: `tally` reads each sample's final answer and takes the majority vote
(solve, and `eval --rescore`), `score` judges the winner and every sample
against a dataset's answer (the loop, and `eval --rescore`); through the
results they record, the batch summary and `eval`'s accuracy and pass@k.
`math-verify` extracts the final answer from what a model wrote (`\\boxed{}`,
a last formula, "the answer is", Minerva's "Final Answer: ..."), reads the
reference as datasets write it, and compares them with sympy (sets,
intervals, relations, matrices, percentages, units).

Its time bounds use signals, which work only in a main thread, and some
inputs (`10^{10^{10}}`, `1000!`, a 50 kB "answer") take sympy far longer.
So it runs in small worker processes (`answer_worker`): each call has a
wall-clock bound, a worker still busy past it is killed and replaced, and
the call answers "not comparable" (None). Safe from any thread; async code
calls it through `asyncio.to_thread`.
"""

from __future__ import annotations

import atexit
import itertools
import json
import queue
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mathagent.errors import MathAgentError

BOUND_S = 5.0  # wall clock per call, start-up of a fresh worker aside
_START_S = 60.0  # a worker's start (it imports math-verify and sympy)
_INSTALL_HINT = "pip install 'math-verify==0.9.0'"


class AnswerCheckError(MathAgentError):
    """The answer checker cannot run here."""


@dataclass(frozen=True)
class Judgement:
    """A model output against a reference answer."""

    answer: str | None  # the final answer found in the output, as written (None: none found)
    gold: str | None  # the reference as parsed (None: unreadable)
    match: bool | None  # None: not comparable (unreadable reference, or over the time bound)


class _Timeout:
    """A call that ran out of time or lost its worker."""


_TIMEOUT = _Timeout()


class _Worker:
    """One `answer_worker` process; one request at a time."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mathagent.agent.answer_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )
        self.replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        ready = self._next(time.monotonic() + _START_S)
        if ready is None or "ready" not in ready:
            self.kill()
            why = (ready or {}).get("fatal", "the answer checker process did not start")
            raise AnswerCheckError(why, hint=_INSTALL_HINT)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.replies.put(json.loads(line))
            except ValueError:
                continue
        self.replies.put(None)  # the process ended

    def _next(self, deadline: float) -> dict[str, Any] | None:
        try:
            return self.replies.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None

    def call(self, request_id: int, op: str, args: dict[str, Any], deadline: float) -> Any:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps({"id": request_id, "op": op, "args": args}) + "\n")
            self.proc.stdin.flush()
        except OSError:
            return _TIMEOUT
        while True:
            reply = self._next(deadline)
            if reply is None:
                return _TIMEOUT
            if reply.get("id") == request_id:
                return _TIMEOUT if "error" in reply else reply.get("result")

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


class AnswerChecker:
    """A few `answer_worker` processes shared by every caller, each call bounded."""

    def __init__(self, workers: int = 2, bound_s: float = BOUND_S) -> None:
        self.bound_s = bound_s
        self._idle: queue.LifoQueue[_Worker | None] = queue.LifoQueue()
        for _ in range(max(1, workers)):
            self._idle.put(None)  # a slot: its worker starts on first use
        self._ids = itertools.count(1)
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()

    def _call(self, op: str, bound_scale: float = 1.0, **args: Any) -> Any:
        worker = self._idle.get()
        try:
            if worker is None or not worker.alive:
                worker = _Worker()
                with self._lock:
                    self._all.add(worker)
            result = worker.call(next(self._ids), op, args, time.monotonic() + self.bound_s * bound_scale)
            if result is _TIMEOUT:
                self._discard(worker)
                worker = None
            return result
        finally:
            self._idle.put(worker)

    def _discard(self, worker: _Worker) -> None:
        worker.kill()  # it may be deep in sympy: only killing it stops it
        with self._lock:
            self._all.discard(worker)

    # ---------------------------------------------------------------- the questions

    def judge(self, reference: str, output: str) -> Judgement:
        """Does the model's `output` reach the dataset's `reference` answer?"""
        result = self._call("judge", reference=reference, output=output)
        if isinstance(result, _Timeout):
            return Judgement(answer=None, gold=None, match=None)
        return Judgement(answer=result["answer"], gold=result["gold"], match=result["match"])

    def extract(self, output: str) -> str | None:
        """The final answer in a model's output, as written; None when there is none."""
        result = self._call("extract", output=output)
        return None if isinstance(result, _Timeout) else result

    def same(self, a: str, b: str) -> bool | None:
        """Are two final answers (as `extract` gives them) the same? None: not comparable."""
        if " ".join(a.split()) == " ".join(b.split()):
            return True
        result = self._call("same", a=a, b=b)
        return None if isinstance(result, _Timeout) else result

    def groups(self, answers: list[str | None]) -> list[int | None]:
        """For each answer, the index of the first answer equivalent to it
        (None for a missing answer)."""
        given = [i for i, a in enumerate(answers) if a is not None]
        texts = [answers[i] or "" for i in given]
        homes = self._call("group", bound_scale=max(1.0, len(texts) / 2), answers=texts) if texts else []
        if isinstance(homes, _Timeout):
            homes = [texts.index(t) for t in texts]  # over time: the same text only
        out: list[int | None] = [None] * len(answers)
        for position, home in zip(given, homes, strict=True):
            out[position] = given[home]
        return out

    def close(self) -> None:
        with self._lock:
            workers, self._all = list(self._all), set()
        for worker in workers:
            if worker.alive:
                worker.kill()


_default: AnswerChecker | None = None
_default_lock = threading.Lock()


def checker() -> AnswerChecker:
    """The process-wide checker (workers start on first use, stop at exit)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = AnswerChecker()
            atexit.register(_default.close)
        return _default


def judge(reference: str, output: str) -> Judgement:
    return checker().judge(reference, output)


def extract(output: str) -> str | None:
    return checker().extract(output)


def same(a: str, b: str) -> bool | None:
    return checker().same(a, b)


def groups(answers: list[str | None]) -> list[int | None]:
    return checker().groups(answers)


# ---------------------------------------------------------------- samples: the vote, then the reference


@dataclass(frozen=True)
class Tally:
    """Samples' final answers and their majority vote."""

    answers: list[str | None]  # each sample's final answer, as written (None: none found)
    votes: list[tuple[str, int]]  # (answer of a group, its votes), most votes first (ties: first seen)
    winner: int | None  # the sample that speaks for the vote: the best-scored of the winning group,
    # or of all samples when none gave an answer (None: no samples)

    @property
    def answer(self) -> str | None:
        """The winning answer (None when no sample gave one)."""
        return self.votes[0][0] if self.votes else None


def tally(texts: Sequence[str], scores: Sequence[float | None] | None = None) -> Tally:
    """Read each sample's final answer, group equivalent answers and count them.

    `scores` (a sample's mean log-probability, say) pick the sample that speaks for the
    winning group; without them, or among equal scores, the first one does."""
    found = [extract(text) for text in texts]
    homes = groups(found)
    counts = Counter(home for home in homes if home is not None)  # missing answers vote for none
    order = sorted(counts, key=lambda home: (-counts[home], home))
    votes = [(found[home] or "", counts[home]) for home in order]
    pool = [i for i, home in enumerate(homes) if order and home == order[0]] or list(range(len(texts)))
    ranked = [float("-inf") if x is None else x for x in (scores or [None] * len(texts))]
    winner = max(pool, key=lambda i: ranked[i]) if pool else None
    return Tally(answers=found, votes=votes, winner=winner)


@dataclass(frozen=True)
class Score:
    """A solution and its samples against a dataset's answer, as the field scores them."""

    match: bool  # the solution (the vote's winning sample) reaches the reference; not comparable counts as wrong
    gold: str | None  # the reference as parsed
    sample_matches: list[bool]  # each sample, in order


def score(reference: str, solution: str, samples: Sequence[str]) -> Score:
    """Judge the winning `solution`, then every sample, against `reference`."""
    first = judge(reference, solution)
    return Score(
        match=bool(first.match), gold=first.gold, sample_matches=[bool(judge(reference, t).match) for t in samples]
    )
