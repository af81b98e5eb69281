"""Rich renderings for people: tables, summaries, progress."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from mathagent.agent import events
from mathagent.agent.records import Result
from mathagent.doctor import Check
from mathagent.verify.toolchain import LeanToolchain
from mathagent.verify.verdict import Verdict
from mathagent.vocabulary import Status, VerdictKind

_STYLE = {
    VerdictKind.VERIFIED: ("✓ verified", "bold green"),
    VerdictKind.REJECTED: ("✗ rejected", "bold red"),
    VerdictKind.TIMEOUT: ("⏱ timeout", "bold yellow"),
    VerdictKind.ERROR: ("! error", "bold magenta"),
}


def verdict_label(verdict: Verdict) -> Text:
    label, style = _STYLE[verdict.verdict]
    return Text(label, style=style)


def verdict_table(verdicts: list[Verdict]) -> Table:
    table = Table(show_lines=False, header_style="bold")
    table.add_column("id", overflow="fold")
    table.add_column("verdict", no_wrap=True)
    table.add_column("reasons", overflow="fold")
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("first error / note", overflow="fold")
    for v in verdicts:
        first = v.first_error()
        if v.verified:
            note = ""
        elif first is not None and v.verdict is VerdictKind.REJECTED:
            note = f"line {first.line}, col {first.column}: {first.short().split(' ', 1)[1]}"
        else:
            note = v.message
        time = "cached" if v.cached else f"{v.time_s:.2f}s"
        table.add_row(v.id, verdict_label(v), ", ".join(v.reasons), time, note)
    return table


def verify_summary(verdicts: list[Verdict], toolchain: LeanToolchain) -> Text:
    counts = Counter(v.verdict for v in verdicts)
    parts = [f"{counts.get(k, 0)} {k}" for k in VerdictKind if counts.get(k)]
    text = Text(", ".join(parts) or "nothing checked", style="bold")
    text.append(f"  ·  Lean {toolchain.version} ({toolchain.origin})", style="dim")
    sandboxes = {v.sandbox for v in verdicts if v.sandbox not in ("", "not run")}
    if "rlimits" in sandboxes:
        text.append(
            "\nwarning: bubblewrap is not available, checks ran with rlimits only (no isolation)", style="yellow"
        )
    elif sandboxes:
        text.append("  ·  sandbox: " + ", ".join(sorted(sandboxes)), style="dim")
    return text


@contextmanager
def progress_bar(console: Console, *, total: int, enabled: bool) -> Iterator[Callable[[Verdict], None]]:
    """A progress bar on long runs; yields `advance(verdict)`."""
    if not enabled or total < 2 or not console.is_terminal:
        yield lambda verdict: None
        return
    counts: Counter[str] = Counter()
    with Progress(
        TextColumn("[bold]verifying"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[tally]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("verify", total=total, tally="")

        def advance(verdict: Verdict) -> None:
            counts[verdict.verdict] += 1
            tally = f"[green]{counts[VerdictKind.VERIFIED]}✓[/green] [red]{counts[VerdictKind.REJECTED]}✗[/red]"
            progress.update(task, advance=1, tally=tally)

        yield advance


class BatchProgress:
    """What the batch progress bar listens to: finished results, and the
    loop's events (each proof Lean has checked)."""

    def __init__(self, progress: Progress, console: Console) -> None:
        self._progress, self._console = progress, console
        self._bar = progress.add_task("batch", total=None, verified=0, checked=0, rate="")
        self._statuses: Counter[str] = Counter()
        self._checked = 0

    def start(self, total: int) -> None:
        self._progress.update(self._bar, total=total)

    def result(self, result: Result) -> None:
        self._statuses[result.status] += 1
        elapsed = self._progress.tasks[0].elapsed or 0.0
        rate = f"{sum(self._statuses.values()) / elapsed * 60:.1f}/min" if elapsed > 0 else ""
        self._progress.update(self._bar, advance=1, verified=self._statuses[Status.VERIFIED], rate=rate)
        if not self._console.is_terminal:
            self._console.print(f"{escape(result.id)}: {result.status}", highlight=False)

    def event(self, event: events.Event) -> None:
        if isinstance(event, events.VerdictReceived):
            self._checked += 1
            self._progress.update(self._bar, checked=self._checked)


@contextmanager
def batch_progress(console: Console, *, total: int) -> Iterator[BatchProgress]:
    """Progress of a batch (done, verified, proofs checked, rate, ETA).
    Without a terminal it prints one line per finished problem instead."""
    progress = Progress(
        TextColumn("[bold]solving"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[green]{task.fields[verified]} verified[/green] · {task.fields[checked]} proofs checked"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    )
    with progress:
        tracker = BatchProgress(progress, console)
        tracker.start(total)
        yield tracker


def doctor_table(checks: list[Check]) -> Table:
    table = Table(header_style="bold", show_lines=True, expand=False)
    table.add_column("", no_wrap=True)
    table.add_column("piece", no_wrap=True)
    table.add_column("found", overflow="fold", ratio=1)
    table.add_column("without it / fix", overflow="fold", ratio=1)
    for c in checks:
        if c.ok and not c.disables:
            mark = Text("✓", style="green")
        else:
            mark = Text("!", style="yellow") if c.ok else Text("✗", style="red")
        advice = Text(c.disables)
        if c.fix:
            advice.append("\n" + c.fix, style="cyan")
        table.add_row(mark, c.name, c.found, advice)
    return table
