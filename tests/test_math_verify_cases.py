"""The judge against math-verify's own regression cases: it must lose none of them to math-verify.

math-verify's source distribution carries its test suite: (gold, pred, expected) triples it
asserts on. This test fetches that sdist from PyPI at test time (into pytest's cache folder,
reused across runs), reads the triples out of the test files with `ast` (nothing of theirs is
copied here), and scores two judges on them:

- mathagent's judge, `answers.judge(gold, pred)`;
- math-verify called with its default extraction (`parse(gold)`, `parse(pred)`) and `verify`
  with the comparison settings the case's own test passes.

A case counts when its comparison settings are the ones mathagent compares with: float rounding
at 6 digits, strict symbols, and sets compared with relations (a case whose test turns that
comparison off on purpose, `allow_set_relation_comp=False`, tests the option, not the judge).
Cases written for one extraction target (`match_types=["latex"]` or `["expr"]`) count too: both
targets are part of the default extraction.
"""

from __future__ import annotations

import ast
import hashlib
import logging
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mathagent.agent import answers

VERSION = "0.9.0"
SDIST = f"math_verify-{VERSION}.tar.gz"
SDIST_SHA256 = "45ac6c61344ba056b9e99a660a4bc8d044ed408f730aed68c60435aa5eec4645"
# math-verify's comparison defaults, and the one mathagent changes (`answer_worker._verify`)
DEFAULTS = {"precision": 6, "strict": True, "allow_set_relation_comp": False}
MATHAGENT = {"precision": 6, "strict": True, "allow_set_relation_comp": True}
# what pip prints when the index cannot be reached (or, offline or behind a mirror, has no such version:
# 0.9.0 is on PyPI, so the index pip was given is not PyPI)
_UNREACHABLE = (
    "NewConnectionError",
    "Max retries exceeded",
    "Temporary failure in name resolution",
    "ProxyError",
    "No matching distribution found",
)


@dataclass(frozen=True)
class Case:
    where: str  # file::test function
    gold: str
    pred: str
    expected: bool
    settings: dict[str, Any]  # the comparison settings the case's test passes
    explicit: frozenset[str]  # the settings its test passes by name (the others are defaults)


@pytest.fixture(scope="module")
def sdist_tests(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """math-verify's tests/ folder, unpacked from its sdist (fetched once into pytest's cache, then
    reused; into a temporary folder when the cache is off, `-p no:cacheprovider`)."""
    name = f"math-verify-{VERSION}-sdist"
    cache = getattr(request.config, "cache", None)
    folder = Path(cache.mkdir(name)) if cache is not None else tmp_path_factory.mktemp(name)
    archive = folder / SDIST
    if not archive.is_file():
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", f"math-verify=={VERSION}"]
            + ["--no-binary", ":all:", "--no-deps", "--no-build-isolation", "-d", str(folder)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if proc.returncode != 0 and any(marker in proc.stdout + proc.stderr for marker in _UNREACHABLE):
            why = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "no output"
            pytest.skip(f"PyPI cannot be reached to fetch math-verify's {VERSION} sdist (pip: {why})")
        assert archive.is_file(), f"pip download gave no {SDIST}:\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}"
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert digest == SDIST_SHA256, f"{archive} is not the sdist these counts were taken on (sha256 {digest})"
    unpacked = folder / f"math_verify-{VERSION}"
    if not (unpacked / "tests").is_dir():
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if m.isfile() and m.name.startswith(f"math_verify-{VERSION}/tests/")]
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # Python >= 3.10.12
            tar.extractall(folder, members=members, **safe)  # type: ignore[arg-type]
    return unpacked / "tests"


def _helper_defaults(tree: ast.Module) -> dict[str, Any]:
    """The keyword defaults of a module's `compare_strings` helper, where it defines one."""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "compare_strings":
            args = node.args.args[len(node.args.args) - len(node.args.defaults) :]
            return {a.arg: ast.literal_eval(d) for a, d in zip(args, node.args.defaults, strict=True)}
    return {}


def read_cases(tests: Path) -> list[Case]:
    """Every (gold, pred, expected) row of a parametrised test that compares two strings."""
    helper: dict[str, Any] = {}
    for path in sorted(tests.glob("test_*.py")):
        helper |= _helper_defaults(ast.parse(path.read_text(encoding="utf-8")))
    cases = []
    for path in sorted(tests.glob("test_*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef):
                cases += _function_cases(f"{path.name}::{node.name}", node, helper)
    return cases


def _function_cases(where: str, node: ast.FunctionDef, helper: dict[str, Any]) -> list[Case]:
    marks = [d for d in node.decorator_list if isinstance(d, ast.Call) and ast.unparse(d.func).endswith("parametrize")]
    calls = [
        c
        for c in ast.walk(node)
        if isinstance(c, ast.Call) and isinstance(c.func, ast.Name) and c.func.id in ("compare_strings", "verify")
    ]
    if len(marks) != 1 or len(calls) != 1:
        return []  # not a table of string comparisons (config, timeout and parser tests)
    names = [n.strip() for n in ast.literal_eval(marks[0].args[0]).split(",")]
    try:
        rows = ast.literal_eval(marks[0].args[1])
    except ValueError:
        return []  # rows built by code, not written out
    call = calls[0]
    fixed = {k: v for k, v in helper.items() if k in DEFAULTS} if call.func.id == "compare_strings" else {}
    keywords = {k.arg: k.value for k in call.keywords if k.arg in DEFAULTS}
    verdict = "expected" if "expected" in names else "result"
    cases = []
    for row in rows:
        values = dict(zip(names, row, strict=True))
        settings = {**DEFAULTS, **fixed}
        for key, value in keywords.items():
            settings[key] = values[value.id] if isinstance(value, ast.Name) else ast.literal_eval(value)
        case = Case(where, values["gold"], values["pred"], bool(values[verdict]), settings, frozenset(keywords))
        cases.append(case)
    return cases


def _comparable(case: Case) -> bool:
    """Compared as mathagent compares (a test that turns set-relation comparison off by name tests that option)."""
    off = "allow_set_relation_comp" in case.explicit and not case.settings["allow_set_relation_comp"]
    return not off and all(case.settings[k] == MATHAGENT[k] for k in ("precision", "strict"))


def math_verify_default(case: Case) -> bool:
    from math_verify import parse, verify

    gold, pred = parse(case.gold), parse(case.pred)
    return bool(
        verify(
            gold,
            pred,
            float_rounding=case.settings["precision"],
            strict=case.settings["strict"],
            allow_set_relation_comp=case.settings["allow_set_relation_comp"],
        )
    )


@pytest.mark.timeout(900)
def test_judge_loses_no_case_to_math_verify(sdist_tests: Path) -> None:
    cases = [c for c in read_cases(sdist_tests) if _comparable(c)]
    assert len(cases) > 200, f"only {len(cases)} cases read from {sdist_tests}: has the test layout changed?"
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    ours = [bool(answers.judge(c.gold, c.pred).match) == c.expected for c in cases]
    theirs = [math_verify_default(c) == c.expected for c in cases]
    missed = [
        f"  {c.where}: gold={c.gold[:80]!r} pred={c.pred[-80:]!r} expected={c.expected}"
        for c, ok, mv_ok in zip(cases, ours, theirs, strict=True)
        if not ok and mv_ok
    ]
    message = (
        f"mathagent's judge agrees with {sum(ours)} of {len(cases)} cases, math-verify with its default "
        f"extraction with {sum(theirs)}; cases math-verify gets and mathagent misses:\n" + "\n".join(missed)
    )
    assert sum(ours) >= sum(theirs), message
