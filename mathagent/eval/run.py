"""An evaluation run: a folder holding the exact settings, the per-problem
results (the batch JSONL, so runs resume like batch) and the report."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mathagent import __version__
from mathagent.agent import answers
from mathagent.agent.budget import Budget
from mathagent.agent.records import Result
from mathagent.errors import InputError
from mathagent.eval import report
from mathagent.eval.datasets import Dataset
from mathagent.eval.metrics import Metrics, summarize
from mathagent.jsonl import dumps, read_rows
from mathagent.verify.toolchain import LeanToolchain

RESULTS = "results.jsonl"
SETTINGS = "settings.json"
SUMMARY = "summary.json"
REPORT = "report.html"

# Settings that change what the numbers mean: a resumed run must keep them.
_FIXED = ("dataset_sha256", "engine", "model", "budget", "lean_version", "header_sha256")


def settings_record(
    dataset: Dataset,
    engine: dict[str, Any],
    budget: Budget,
    toolchain: LeanToolchain | None,
    header: str,
    verify: dict[str, Any],
) -> dict[str, Any]:
    return {
        "dataset": dataset.name,
        "dataset_path": str(dataset.path),
        "dataset_sha256": dataset.sha256,
        "dataset_rows": dataset.rows,
        "mathagent_version": __version__,
        "engine": engine.get("kind"),
        "model": engine.get("model"),
        "base_url": engine.get("base_url"),
        "budget": _budget_record(budget),
        "lean_version": toolchain.version_line if toolchain else None,
        "lean_origin": toolchain.origin if toolchain else None,
        "header_sha256": hashlib.sha256(header.encode("utf-8")).hexdigest(),
        "verify": verify,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _budget_record(budget: Budget) -> dict[str, Any]:
    """The budget as settings.json keeps it; the search's numbers only when a search runs,
    so that runs recorded before `--strategy` existed resume as whole-proof runs."""
    record = asdict(budget)
    if not budget.searches:
        for key in ("strategy", "expansions", "candidates"):
            record.pop(key)
    return record


def prepare_folder(run_dir: Path, record: dict[str, Any], *, force: bool) -> dict[str, Any]:
    """Create the run folder or check that resuming it keeps the settings."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / SETTINGS
    if path.is_file():
        previous = json.loads(path.read_text(encoding="utf-8"))
        changed = [k for k in _FIXED if previous.get(k) != record.get(k)]
        if changed and not force:
            lines = "".join(f"\n  {line}" for k in changed for line in _differences(k, previous.get(k), record.get(k)))
            raise InputError(
                f"{run_dir} holds a run with other settings, so it cannot be resumed as is (was → now):{lines}",
                hint=f"to keep both runs, give this one its own folder: --run-dir {run_dir}-2; to start over, "
                f"delete {run_dir}; --force continues this one anyway, mixing results of both settings",
            )
        record = {**record, "started": previous.get("started", record["started"]), "resumed": True}
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record


# What a person types for each setting, where it is a flag.
_FLAGS = {
    "model": "--model",
    "engine": "--engine",
    "budget.rounds": "--rounds",
    "budget.samples": "--samples",
    "budget.max_tokens": "--max-tokens",
    "budget.time_limit_s": "--time-limit",
    "budget.solve_samples": "--solve-samples",
    "budget.strategy": "--strategy",
    "budget.expansions": "--expansions",
    "budget.candidates": "--candidates",
}
_LABELS = {
    "dataset_sha256": "dataset contents (sha256)",
    "header_sha256": "Lean header (sha256)",
    "lean_version": "Lean",
}


def _differences(key: str, old: Any, new: Any) -> list[str]:
    """One line per setting that differs, e.g. `--samples: 4 → 8`."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            line
            for sub in dict.fromkeys([*old, *new])
            if old.get(sub) != new.get(sub)
            for line in _differences(f"{key}.{sub}", old.get(sub), new.get(sub))
        ]
    label = _FLAGS.get(key) or _LABELS.get(key) or key
    return [f"{label}: {_shown(key, old)} → {_shown(key, new)}"]


def _shown(key: str, value: Any) -> str:
    if value is None:
        return "(none)"
    if key.endswith("sha256") and isinstance(value, str):
        return value[:12]
    return str(value)


def load_results(run_dir: Path) -> list[Result]:
    """Every result in a run folder's results file, in file order."""
    path = run_dir / RESULTS
    if not path.is_file():
        raise InputError(
            f"{run_dir} is not an eval run folder (no {RESULTS})",
            hint="give a folder `mathagent eval run` wrote: runs/DATASET, or its --run-dir",
        )
    results = []
    for row in read_rows(path):
        if row.error is not None or not isinstance(row.value, dict):
            continue  # a torn last line (the next resume cuts it off), or not a result
        try:
            results.append(Result.from_dict(row.value))
        except (ValueError, TypeError, AttributeError):  # attempts that are not objects, a bad status
            continue
    return results


def rescore(run_dir: Path) -> int:
    """Judge every word problem of a finished run again with the current answer
    checker, rewriting its results in place; the number of results changed.

    Runs that recorded each sample's text are re-read from it; older ones are
    judged on the answers they recorded."""
    path = run_dir / RESULTS
    results = load_results(run_dir)
    changed = 0
    for result in results:
        if result.reference_answer is None or result.formal:
            continue
        before = (result.answer, result.reference_match, list(result.sample_matches))
        _rejudge(result, result.reference_answer)
        changed += before != (result.answer, result.reference_match, result.sample_matches)
    tmp = path.with_name(path.name + ".rescore")
    tmp.write_text("".join(dumps(r.to_dict()) + "\n" for r in results), encoding="utf-8")
    os.replace(tmp, path)
    return changed


def _rejudge(result: Result, reference: str) -> None:
    if result.sample_texts:
        texts = result.sample_texts
        vote = answers.tally(texts)
        result.answer = vote.answer
        result.answer_samples = vote.answers
        winner_text = texts[vote.winner] if vote.votes and vote.winner is not None else (result.solution or "")
    else:  # recorded before sample texts were kept: judge the recorded answers
        texts = [f"\\boxed{{{a}}}" if a is not None else "" for a in result.answer_samples]
        winner_text = result.solution or (f"\\boxed{{{result.answer}}}" if result.answer is not None else "")
    scored = answers.score(reference, winner_text, texts)
    result.reference_match, result.reference_parsed = scored.match, scored.gold
    result.sample_matches = scored.sample_matches


def finish(run_dir: Path, results: list[Result] | None = None) -> Metrics:
    """Compute the numbers and write summary.json, the plots and report.html;
    `results`: the folder's results when the caller holds them (else read from it)."""
    if results is None:
        results = load_results(run_dir)
    m = summarize(results)
    settings = json.loads((run_dir / SETTINGS).read_text(encoding="utf-8")) if (run_dir / SETTINGS).is_file() else {}
    settings["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    (run_dir / SUMMARY).write_text(json.dumps(m.to_dict(), indent=2) + "\n", encoding="utf-8")
    model = settings.get("model") or settings.get("base_url") or ""
    title = f"mathagent eval · {settings.get('dataset', run_dir.name)} · {model}"
    images = report.plots(m, run_dir / "plots", title)
    report.write_html(run_dir / REPORT, m, settings, images, results)
    return m
