"""Rich renderings for people: tables, summaries, progress."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from mathagent.cli.terminal import one_line, plain
from mathagent.verify.toolchain import LeanToolchain
from mathagent.verify.verdict import Verdict
from mathagent.vocabulary import SandboxKind, Status, VerdictKind

if TYPE_CHECKING:  # `mathagent verify` renders verdicts only: it does not load the agent or the doctor
    from mathagent.agent import events
    from mathagent.agent.records import Result
    from mathagent.doctor import Check

_STYLE = {
    VerdictKind.VERIFIED: ("✓ verified", "bold green"),
    VerdictKind.REJECTED: ("✗ rejected", "bold red"),
    VerdictKind.TIMEOUT: ("⏱ timeout", "bold yellow"),
    VerdictKind.ERROR: ("! error", "bold magenta"),
}


def verdict_label(verdict: Verdict) -> Text:
    label, style = _STYLE[verdict.verdict]
    return Text(label, style=style)


def _pieces(text: str, marks: str) -> list[str]:
    """`text` cut after each of `marks` (a mark stays with the piece before it)."""
    pieces, start = [], 0
    for end, char in enumerate(text, start=1):
        if char in marks:
            pieces.append(text[start:end])
            start = end
    return [*pieces, text[start:]] if start < len(text) else pieces


class _WrappedId:
    """An id in a table cell that wraps after `/` (then `_ . - :`), not inside
    a word: rich wraps only at spaces, and would cut `examples/two_plus_two.lean`
    anywhere. A piece wider than the column still folds."""

    def __init__(self, text: str) -> None:
        self.text = one_line(text)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        words = [w for part in _pieces(self.text, "/") for w in _pieces(part, "_.-:")]
        return Measurement(max((cell_len(w) for w in words), default=0), cell_len(self.text))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(1, options.max_width)
        lines: list[str] = []
        for part in _pieces(self.text, "/"):
            for piece in [part] if cell_len(part) <= width else _pieces(part, "_.-:"):
                if lines and cell_len(lines[-1]) + cell_len(piece) <= width:
                    lines[-1] += piece
                else:
                    lines.append(piece)
        yield Text("\n".join(lines), overflow="fold")


def verdict_table(verdicts: list[Verdict]) -> Table:
    table = Table(show_lines=False, header_style="bold")
    table.add_column("id")
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
        # reasons name the file's constants (`axiom:NAME`): like the note, outside text, never markup
        table.add_row(_WrappedId(v.id), verdict_label(v), plain(", ".join(v.reasons)), time, plain(note))
    return table


def verify_summary(verdicts: list[Verdict], toolchain: LeanToolchain) -> Text:
    counts = Counter(v.verdict for v in verdicts)
    parts = [_counted(counts[k], k) for k in VerdictKind if counts.get(k)]
    text = Text(", ".join(parts) or "nothing checked", style="bold")
    text.append(f"  ·  Lean {toolchain.version} ({toolchain.origin})", style="dim")
    sandboxes = {v.sandbox for v in verdicts if v.sandbox not in ("", SandboxKind.NOT_RUN)}
    if SandboxKind.RLIMITS in sandboxes:
        text.append(
            "\nwarning: bubblewrap is not available, checks ran with rlimits only (no isolation)", style="yellow"
        )
    elif sandboxes:
        text.append("  ·  sandbox: " + ", ".join(sorted(sandboxes)), style="dim")
    return text


def _counted(count: int, kind: VerdictKind) -> str:
    """`2 verified`, `1 error`, `3 errors`, `2 timeouts`: the verdicts that are nouns take a plural."""
    plural = count != 1 and kind in (VerdictKind.ERROR, VerdictKind.TIMEOUT)
    return f"{count} {kind}{'s' if plural else ''}"


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


def eta_seconds(done: float, total: float | None, done_at: float, now: float) -> float | None:
    """Seconds left at the rate observed so far: `done` problems finished in
    the `done_at` seconds before the last of them, counting down since (`now`,
    seconds since the start). None until the first problem is done."""
    if total is None or done <= 0 or done_at <= 0:
        return None
    return max(0.0, (total - done) * done_at / done - (now - done_at))


def eta_text(done: float, total: float | None, done_at: float, now: float) -> str:
    """`ETA 0:01:23`; `ETA estimating…` before the first result; `ETA soon`
    once the countdown has run out and the last problems are still going."""
    if total is not None and done >= total:
        return "done"
    left = eta_seconds(done, total, done_at, now)
    if left is None:
        return "ETA estimating…"
    if left < 1:
        return "ETA soon"
    minutes, seconds = divmod(int(left), 60)
    hours, minutes = divmod(minutes, 60)
    return f"ETA {hours:d}:{minutes:02d}:{seconds:02d}"


class EtaColumn(ProgressColumn):
    """The batch's time left, from the observed rate (rich's own estimate only
    looks at the last 30 s, so with problems minutes apart it says -:--:--)."""

    def render(self, task: Task) -> Text:
        now = task.elapsed or 0.0
        return Text(eta_text(task.completed, task.total, task.fields.get("done_at", 0.0), now), style="cyan")


class BatchProgress:
    """What the batch progress bar listens to: finished results, and the
    loop's events (each proof Lean has checked)."""

    def __init__(self, progress: Progress, console: Console) -> None:
        self._progress, self._console = progress, console
        self._bar = progress.add_task("batch", total=None, verified=0, checked=0, rate="", done_at=0.0)
        self._statuses: Counter[str] = Counter()
        self._checked = 0

    def start(self, total: int) -> None:
        self._progress.update(self._bar, total=total)

    def result(self, result: Result) -> None:
        self._statuses[result.status] += 1
        task = self._progress.tasks[0]
        elapsed = task.elapsed or 0.0
        done = sum(self._statuses.values())
        rate = f"{done / elapsed * 60:.1f}/min" if elapsed > 0 else ""
        self._progress.update(
            self._bar, advance=1, verified=self._statuses[Status.VERIFIED], rate=rate, done_at=elapsed
        )
        if not self._console.is_terminal:
            eta = eta_text(done, task.total, elapsed, elapsed)
            self._console.print(
                f"{one_line(result.id)}: {result.status}  [{done}/{task.total or '?'} · {elapsed:.0f}s · {eta}]",
                highlight=False,
                markup=False,
            )

    def event(self, event: events.Event) -> None:
        from mathagent.agent.events import VerdictReceived

        if isinstance(event, VerdictReceived):
            self._checked += 1
            self._progress.update(self._bar, checked=self._checked)


@contextmanager
def batch_progress(console: Console, *, total: int) -> Iterator[BatchProgress]:
    """Progress of a batch (done, verified, proofs checked, rate, ETA).
    Without a terminal it prints one line per finished problem instead
    (`id: status  [done/total · elapsed · ETA]`)."""
    progress = Progress(
        TextColumn("[bold]solving"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[green]{task.fields[verified]} verified[/green] · {task.fields[checked]} proofs checked"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        EtaColumn(),
        console=console,
        disable=not console.is_terminal,
    )
    with progress:
        tracker = BatchProgress(progress, console)
        tracker.start(total)
        yield tracker


def wall_time(wall_s: float, *, ran: int, problems: int) -> str:
    """A run's real wall time and what it covers: a resumed run timed only
    the `ran` problems it solved, not those earlier runs left in the output."""
    if not ran:
        return f"{wall_s:.1f}s (nothing left to run)"
    if ran < problems:
        return f"{wall_s:.1f}s (this run: {ran} of {problems} problems)"
    return f"{wall_s:.1f}s (this run: {ran} problem{'s' if ran != 1 else ''})"


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
