"""An evaluation run: a folder holding the exact settings, the per-problem
results (the batch JSONL, so runs resume like batch) and the report."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mathagent import __version__
from mathagent.agent.loop import Budget
from mathagent.agent.records import Result
from mathagent.errors import InputError
from mathagent.eval import report
from mathagent.eval.datasets import Dataset
from mathagent.eval.metrics import Metrics, summarize
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
        "budget": asdict(budget),
        "lean_version": toolchain.version_line if toolchain else None,
        "lean_origin": toolchain.origin if toolchain else None,
        "header_sha256": hashlib.sha256(header.encode("utf-8")).hexdigest(),
        "verify": verify,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def prepare_folder(run_dir: Path, record: dict[str, Any], *, force: bool) -> dict[str, Any]:
    """Create the run folder or check that resuming it keeps the settings."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / SETTINGS
    if path.is_file():
        previous = json.loads(path.read_text(encoding="utf-8"))
        changed = [k for k in _FIXED if previous.get(k) != record.get(k)]
        if changed and not force:
            raise InputError(
                f"{run_dir} holds a run with other settings ({', '.join(changed)} differ)",
                hint="use another --run-dir, or --force to continue it anyway",
            )
        record = {**record, "started": previous.get("started", record["started"]), "resumed": True}
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record


def load_results(run_dir: Path) -> list[Result]:
    path = run_dir / RESULTS
    if not path.is_file():
        raise InputError(f"{run_dir} is not an eval run folder (no {RESULTS})")
    results = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        try:
            results.append(Result.from_dict(json.loads(line)))
        except (ValueError, TypeError, AttributeError):
            continue  # a torn last line (the next resume cuts it off), or not a result
    return results


def finish(run_dir: Path) -> Metrics:
    """Compute the numbers and write summary.json, the plots and report.html."""
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
