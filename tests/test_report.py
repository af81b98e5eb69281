"""Output that explains itself: the progress bar's ETA, the summary's wall time
and pass@k labels, and the eval report's plots and settings."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console
from rich.progress import Progress

from mathagent.agent.records import Result
from mathagent.cli.batch_cmd import summary_table
from mathagent.cli.render import BatchProgress, EtaColumn, batch_progress, eta_text, wall_time
from mathagent.eval import report
from mathagent.eval.metrics import Metrics
from mathagent.pipeline import Run
from mathagent.vocabulary import Status


def test_the_eta_says_estimating_until_a_result_then_counts_down_at_the_observed_rate() -> None:
    clock = [0.0]
    console = Console(file=io.StringIO(), force_terminal=True, width=200)
    progress = Progress(EtaColumn(), console=console, get_time=lambda: clock[0], auto_refresh=False)
    tracker = BatchProgress(progress, console)
    tracker.start(10)
    column, task = EtaColumn(), progress.tasks[0]
    clock[0] = 45.0
    assert str(column.render(task)) == "ETA estimating…"  # nothing done yet: no rate to go by
    clock[0] = 30.0
    tracker.result(Result(id="a", status=Status.VERIFIED))  # 1 problem in 30 s, 9 to go
    assert str(column.render(task)) == "ETA 0:04:30"
    clock[0] = 90.0
    assert str(column.render(task)) == "ETA 0:03:30"  # counts down between results
    clock[0] = 400.0
    assert str(column.render(task)) == "ETA soon"  # the estimate ran out; the problems have not
    for i in range(9):
        tracker.result(Result(id=f"b{i}", status=Status.UNVERIFIED))
    assert str(column.render(task)) == "done"


def test_without_a_terminal_each_finished_problem_prints_its_line_with_the_eta() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False)
    with batch_progress(console, total=3) as tracker:
        tracker.result(Result(id="p[1]", status=Status.VERIFIED))
    line = out.getvalue().strip()
    assert re.fullmatch(r"p\[1\]: verified  \[1/3 · \d+s · ETA (estimating…|soon|\d:\d\d:\d\d)\]", line), line
    assert eta_text(1, 3, 10.0, 10.0) == "ETA 0:00:20"


def test_the_wall_time_says_what_it_covers() -> None:
    assert wall_time(4.61, ran=7, problems=7) == "4.6s (this run: 7 problems)"
    assert wall_time(2.0, ran=3, problems=8) == "2.0s (this run: 3 of 8 problems)"
    assert wall_time(0.3, ran=0, problems=6) == "0.3s (nothing left to run)"


def render(table: object) -> str:
    console = Console(file=io.StringIO(), width=200)
    console.print(table)
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_the_batch_summary_names_pass_at_the_k_it_measured() -> None:
    one = Metrics(problems=4, formal=4, verified=3, verified_first_round=2, formal_samples=1)
    text = render(summary_table(one, Run([], ran=4), 1.0, Path("out.jsonl"), samples=1))
    assert "pass@1: verified in round 1" in text and "2 of 4 formal (50%)" in text and "pass@k" not in text
    assert "model / Lean / problem time (summed)" in text and "wall time" in text
    words = Metrics(problems=2)  # no formal problem: no proof samples to count
    text = render(summary_table(words, Run([], ran=2), 1.0, Path("out.jsonl"), samples=1))
    assert "pass@1" in text and "pass@k" not in text and "no formal problems" in text


def metrics(**changes: object) -> Metrics:
    base = {
        "problems": 6,
        "formal": 2,
        "informal": 4,
        "formal_samples": 2,
        "informal_samples": 2,
        "formal_pass_at_k": {1: 0.5, 2: 1.0},  # a curve up to the top right corner
        "informal_pass_at_k": {1: 0.125, 2: 0.25},
        "solved_by_round": {1: 2, 2: 2},
        "model_s": 721.9,
        "lean_s": 2.4,
        "reasons": {"lean_error": 16},
    }
    return Metrics(**{**base, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize("whole", [False, True], ids=["figure", "overview"])
def test_the_pass_at_k_legend_is_outside_every_plot(whole: bool) -> None:
    import matplotlib.pyplot as plt

    fig = report.overview(metrics(), "t") if whole else report.figure("pass_at_k", metrics())
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
        assert len(legends) == 1
        box = legends[0].get_window_extent(renderer)
        for ax in fig.axes:
            assert not box.overlaps(ax.get_window_extent(renderer)), ax.get_title()
        page = fig.bbox
        assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1  # not cut off
    finally:
        plt.close(fig)


def test_one_sample_per_problem_is_pass_at_1_in_the_plot() -> None:
    import matplotlib.pyplot as plt

    fig = report.figure("pass_at_k", metrics(formal_pass_at_k={1: 0.75}, informal_pass_at_k={}, formal_samples=1))
    try:
        assert fig.axes[0].get_title() == "pass@1" and fig.axes[0].get_ylabel() == "pass@1 (%)"
    finally:
        plt.close(fig)


def test_the_lean_bar_is_readable_next_to_generation_time() -> None:
    import matplotlib.pyplot as plt

    fig = report.figure("time_split", metrics())
    try:
        fig.canvas.draw()
        ax = fig.axes[0]
        model, lean = (bar.get_window_extent() for bar in ax.patches)
        assert lean.width >= 0.1 * model.width  # a linear scale would make it 1/300 of it
        labels = [t.get_text() for t in ax.get_yticklabels()]
        assert labels == ["model\n721.9 s (99.7%)", "Lean\n2.4 s (0.3%)"]  # the numbers, whatever the bars look like
        assert "log scale" in ax.get_xlabel()
    finally:
        plt.close(fig)


def test_the_html_report_shows_settings_as_a_table_of_keys_and_values(tmp_path: Path) -> None:
    settings = {
        "dataset": "sample",
        "model": None,
        "budget": {"rounds": 2, "samples": 1, "exhaustive": True},
        "verify": {"pool": "warm", "workers": 2},
    }
    results = [
        Result(id="w", status=Status.ANSWERED, answer="5", note="no Lean here"),
        Result(id="e", status=Status.ERROR, error="model down"),
    ]
    page = tmp_path / "report.html"
    report.write_html(page, metrics(), settings, {}, results)
    text = page.read_text()
    table = re.search(r'<table id="settings">(.*?)</table>', text, re.S)
    assert table is not None
    rows = dict(re.findall(r"<tr><th>([^<]*)</th><td><code>([^<]*)</code></td></tr>", table.group(1)))
    assert rows == {
        "dataset": "sample",
        "model": "-",
        "budget.rounds": "2",
        "budget.samples": "1",
        "budget.exhaustive": "yes",
        "verify.pool": "warm",
        "verify.workers": "2",
    }
    assert "{&#x27;" not in text and "{'" not in text  # no Python dicts
    assert "<td>no Lean here</td>" in text and "<td>model down</td>" in text
