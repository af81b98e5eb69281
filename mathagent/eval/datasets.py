"""Benchmarks by name or path, as JSONL rows `batch` reads.

A local JSONL is used as it is. Named datasets are looked up in the data
folder and, when missing and the machine is online, downloaded once from
where they are published and converted; offline, the error says where to
put the file. `sample` is a small set shipped with mathagent: prelude-Lean
theorems any Lean can check, and word problems with reference answers.
"""

from __future__ import annotations

import hashlib
import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import platformdirs

from mathagent.errors import InputError
from mathagent.jsonl import dumps


@dataclass(frozen=True)
class Source:
    url: str
    convert: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]
    what: str  # the row format expected when a person supplies the file


def _minif2f(split: str) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    def convert(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in rows if r.get("split") == split]

    return convert


def _gsm8k(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, row in enumerate(rows):
        final = str(row.get("answer", "")).split("####")[-1].strip().replace(",", "")
        out.append({"id": f"gsm8k-test-{i}", "problem": row["question"], "answer": final})
    return out


def _math500(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"id": r.get("unique_id", f"math500-{i}"), "problem": r["problem"], "answer": r["answer"]}
        for i, r in enumerate(rows)
    ]


_MINIF2F = "https://raw.githubusercontent.com/deepseek-ai/DeepSeek-Prover-V1.5/main/datasets/minif2f.jsonl"
SOURCES: dict[str, Source] = {
    "minif2f-test": Source(_MINIF2F, _minif2f("test"), "miniF2F rows: name, formal_statement, header, informal_prefix"),
    "minif2f-valid": Source(
        _MINIF2F, _minif2f("valid"), "miniF2F rows: name, formal_statement, header, informal_prefix"
    ),
    "gsm8k-test": Source(
        "https://raw.githubusercontent.com/openai/grade-school-math/master/grade_school_math/data/test.jsonl",
        _gsm8k,
        "rows: id, problem, answer",
    ),
    "math500": Source(
        "https://huggingface.co/datasets/HuggingFaceH4/MATH-500/resolve/main/test.jsonl",
        _math500,
        "rows: id, problem, answer",
    ),
}
NAMES = ("sample", *SOURCES)


@dataclass(frozen=True)
class Dataset:
    name: str
    path: Path
    sha256: str
    rows: int


def data_dir() -> Path:
    return Path(platformdirs.user_data_dir("mathagent")) / "datasets"


def resolve(spec: str, folder: Path | None = None, download: Callable[[str], bytes] | None = None) -> Dataset:
    """The dataset named or pointed to by `spec`, fetched first if needed."""
    folder = folder or data_dir()
    candidate = Path(spec).expanduser()
    if candidate.is_file():
        return _describe(candidate.stem, candidate)
    if spec == "sample":
        with resources.as_file(resources.files("mathagent.eval").joinpath("data").joinpath("sample.jsonl")) as sample:
            return _describe("sample", Path(sample))
    if spec not in SOURCES:
        raise InputError(
            f"no dataset {spec!r}: not a file, and not one of {', '.join(NAMES)}",
            hint="give a JSONL path, or a dataset name",
        )
    local = folder / f"{spec}.jsonl"
    if local.is_file():
        return _describe(spec, local)
    source = SOURCES[spec]
    fetch = download or _download
    try:
        data = fetch(source.url)
    except (OSError, urllib.error.URLError) as exc:
        raise InputError(
            f"{spec} is not in {folder} and cannot be downloaded from {source.url} ({exc})",
            hint=f"put it at {local} ({source.what}), or pass a JSONL path",
        ) from exc
    rows = [json.loads(line) for line in data.decode("utf-8").split("\n") if line.strip()]
    converted = source.convert(rows)
    if not converted:
        raise InputError(f"{source.url} gave no rows for {spec}")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = local.with_suffix(".tmp")
    tmp.write_text("".join(dumps(r) + "\n" for r in converted), encoding="utf-8")
    tmp.replace(local)
    return _describe(spec, local)


def _download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - fixed https URLs above
        return response.read()


def _describe(name: str, path: Path) -> Dataset:
    data = path.read_bytes()
    return Dataset(
        name=re.sub(r"[^\w.-]+", "-", name),
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        rows=sum(1 for line in data.splitlines() if line.strip()),
    )
