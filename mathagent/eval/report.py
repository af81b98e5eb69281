"""A run's report: PNG plots (matplotlib), a self-contained HTML page, a terminal table."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from rich.table import Table

from mathagent.agent.records import Result
from mathagent.eval.metrics import Metrics

PLOTS = ("pass_at_k", "solved_by_round", "time_split", "reasons")


def terminal_table(m: Metrics, title: str, extra: list[tuple[str, str]] | None = None) -> Table:
    """The summary rows, then `extra` ones (what only this invocation knows, like its wall time)."""
    table = Table(title=title, show_header=False, title_style="bold")
    table.add_column(style="bold")
    table.add_column(justify="right")
    for label, value in [*summary_rows(m), *(extra or [])]:
        table.add_row(label, value)
    return table


def summary_rows(m: Metrics) -> list[tuple[str, str]]:
    rows = [("problems", str(m.problems))]
    if m.formal:
        label, samples = "formal: solved with a verified proof", f"n={m.formal_samples}, round 1"
        rows += _part_rows(label, m.formal_solved, m.formal, m.formal_pass_at_k, samples)
        for r, solved in m.solved_by_round.items():
            rows.append((f"  solved by round {r}", f"{solved} ({solved / m.formal:.1%})"))
    if m.informal:
        label, samples = "word problems: majority answer correct", f"n={m.informal_samples}"
        rows += _part_rows(label, m.informal_solved, m.informal, m.informal_pass_at_k, samples)
    rows += [
        ("attempts per solved problem", "-" if m.attempts_per_solved is None else str(m.attempts_per_solved)),
        ("tokens per solved problem", "-" if m.tokens_per_solved is None else str(m.tokens_per_solved)),
        ("time: model / Lean (summed, overlapping)", f"{m.model_s:.1f}s / {m.lean_s:.1f}s"),
        ("errors", str(m.errors)),
    ]
    if m.verdicts:
        rows.append(("proof verdicts", ", ".join(f"{k} {v}" for k, v in m.verdicts.items())))
    if m.reasons:
        rows.append(("rejection reasons", ", ".join(f"{k} {v}" for k, v in list(m.reasons.items())[:8])))
    if m.searched:
        found = f"{m.search_solved} proof(s) in {m.searched} search(es)"
        rows.append(("tactic search", f"{found}; {m.search_expansions} states, {m.search_tactics} tactics"))
    return rows


def _part_rows(label: str, solved: int, total: int, pass_at_k: dict[int, float], samples: str) -> list[tuple[str, str]]:
    """One part of a benchmark (formal or word problems): solved of `total`, then pass@k over `samples`."""
    rows = [(label, f"{solved} / {total} ({solved / total:.1%})")]
    return rows + [(f"  pass@{k} ({samples})", f"{value:.1%}") for k, value in pass_at_k.items()]


_SIZES = {"pass_at_k": (5.5, 4.0), "solved_by_round": (5.5, 3.6), "time_split": (5.5, 2.6)}


def figure(name: str, m: Metrics) -> Any:
    """One of the report's figures (a matplotlib Figure), drawn and laid out."""
    import matplotlib

    matplotlib.use("Agg")  # no screen needed
    import matplotlib.pyplot as plt

    size = _SIZES.get(name, (5.5, max(2.4, 0.35 * len(m.reasons) + 1)))
    fig, ax = plt.subplots(figsize=size)
    _PAINTERS[name](ax, m)
    fig.tight_layout()
    return fig


def overview(m: Metrics, title: str = "") -> Any:
    """All four figures on one page (the picture of a run at a glance)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 7.5))
    for ax, name in zip(axes.flat, PLOTS, strict=True):
        _PAINTERS[name](ax, m)
    fig.suptitle(title or "mathagent eval", fontweight="bold")
    fig.tight_layout()
    return fig


def plots(m: Metrics, folder: Path, title: str = "") -> dict[str, Path]:
    """Draw the report's figures as PNG files in `folder`; name -> path.

    Each figure on its own, and `overview.png` with all four."""
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    drawn: dict[str, Path] = {}
    for name in PLOTS:
        fig = figure(name, m)
        fig.savefig(folder / f"{name}.png", dpi=120)
        plt.close(fig)
        drawn[name] = folder / f"{name}.png"
    fig = overview(m, title)
    fig.savefig(folder / "overview.png", dpi=110)
    plt.close(fig)
    drawn["overview"] = folder / "overview.png"
    return drawn


def _draw_pass_at_k(ax: Any, m: Metrics) -> None:
    for label, curve, n in (
        ("formal (verified proof)", m.formal_pass_at_k, m.formal_samples),
        ("word problems (answer)", m.informal_pass_at_k, m.informal_samples),
    ):
        if curve:
            ks = list(curve)
            ax.plot(ks, [100 * curve[k] for k in ks], marker="o", label=f"{label}, n={n}")
    ks_all = sorted({k for curve in (m.formal_pass_at_k, m.informal_pass_at_k) for k in curve}) or [1]
    name = "pass@1" if ks_all == [1] else "pass@k"  # one sample per problem: there is no curve, only pass@1
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks_all, [str(k) for k in ks_all])
    ax.minorticks_off()
    ax.set_xlabel("k (samples)")
    ax.set_ylabel(f"{name} (%)")
    ax.set_ylim(-2, 102)  # a curve at 0% or 100% stays in sight
    ax.set_title(name)
    ax.grid(alpha=0.3)
    if m.formal_pass_at_k or m.informal_pass_at_k:
        # under the axes, never over the curve
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize="small", frameon=False)


def _draw_solved_by_round(ax: Any, m: Metrics) -> None:
    rounds = list(m.solved_by_round) or [1]
    values = [100 * m.solved_by_round.get(r, 0) / max(1, m.formal) for r in rounds]
    ax.plot(rounds, values, marker="o", color="tab:green")
    ax.set_xticks(rounds)
    ax.set_xlabel("round (1 = no repair; later rounds repair from Lean's errors)")
    ax.set_ylabel("formal problems solved (%)")
    ax.set_ylim(-2, 102)  # a curve at 0% or 100% stays in sight
    ax.set_title("solved by round")
    ax.grid(alpha=0.3)


def _draw_time_split(ax: Any, m: Metrics) -> None:
    """Model and Lean seconds on a log scale (Lean is often 100x faster, and a
    linear bar of it would be invisible), each named with its seconds and share."""
    from matplotlib.ticker import FuncFormatter

    seconds = [m.model_s, m.lean_s]
    total = sum(seconds)
    names = [
        f"{name}\n{value:.1f} s" + (f" ({value / total:.1%})" if total else "")
        for name, value in zip(("model", "Lean"), seconds, strict=True)
    ]
    floor = max(min((s for s in seconds if s > 0), default=1.0) / 4, 0.01)  # where the bars start
    ax.barh(names, [max(s, floor) - floor for s in seconds], left=floor, color=["tab:blue", "tab:orange"])
    ax.set_xscale("log")
    ax.set_xlim(floor, max(*seconds, floor * 10) * 2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.set_xlabel("seconds, log scale (summed over requests and checks)")
    ax.set_title("time split")


def _draw_reasons(ax: Any, m: Metrics) -> None:
    names = list(m.reasons)[:12][::-1] or ["(none)"]
    from matplotlib.ticker import MaxNLocator

    ax.barh(names, [m.reasons.get(n, 0) for n in names], color="tab:red")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if not m.reasons:
        ax.set_xlim(0, 1)
    ax.set_xlabel("proof attempts")
    ax.set_title("why proofs were rejected")


_PAINTERS = {
    "pass_at_k": _draw_pass_at_k,
    "solved_by_round": _draw_solved_by_round,
    "time_split": _draw_time_split,
    "reasons": _draw_reasons,
}


def write_html(
    path: Path, m: Metrics, settings: dict[str, Any], images: dict[str, Path], results: list[Result]
) -> None:
    """One self-contained HTML file: the numbers, the plots (inlined), every problem."""

    def img(name: str) -> str:
        if name not in images:
            return ""
        data = base64.b64encode(images[name].read_bytes()).decode("ascii")
        return f'<img alt="{name}" src="data:image/png;base64,{data}">'

    summary = "".join(f"<tr><th>{html.escape(a)}</th><td>{html.escape(b)}</td></tr>" for a, b in summary_rows(m))
    setting_rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td><code>{html.escape(v)}</code></td></tr>" for k, v in setting_items(settings)
    )
    problems = "".join(
        "<tr><td>{}</td><td class='{}'>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
            html.escape(r.id),
            html.escape(str(r.status)),
            html.escape(str(r.status)),
            html.escape(r.answer if r.answer is not None else ""),
            "yes" if r.reference_match else ("no" if r.reference_match is False else ""),
            len(r.attempts),
            html.escape(_short(r.error or r.note or "")),
        )
        for r in results
    )
    dataset = html.escape(str(settings.get("dataset", "")))
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mathagent eval · {dataset}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 1rem 0; }} th, td {{ padding: .25rem .75rem; border-bottom: 1px \
solid #ddd; text-align: left; }}
.plots {{ display: flex; flex-wrap: wrap; gap: 1rem; }} .plots img {{ width: 520px; border: 1px solid #eee; }}
.verified {{ color: #1a7f37; font-weight: bold; }} .error {{ color: #a40e26; }} code {{ font-size: .85em; }}
</style></head><body>
<h1>mathagent eval: {dataset}</h1>
<p>Formal problems count as solved only with a proof Lean verified (statement checked, no sorry, standard axioms);
word problems by the majority answer's equivalence to the reference (sympy).</p>
<h2>Summary</h2><table>{summary}</table>
<h2>Plots</h2><div class="plots">{"".join(img(n) for n in PLOTS)}</div>
<h2>Settings</h2><table id="settings"><tr><th>setting</th><th>value</th></tr>{setting_rows}</table>
<h2>Problems</h2><table><tr><th>id</th><th>status</th><th>answer</th><th>answer = reference</th><th>proof \
attempts</th><th>error / note</th></tr>{problems}</table>
</body></html>
"""
    path.write_text(page, encoding="utf-8")


def setting_items(settings: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """(key, value) rows of a run's settings, nested ones as `budget.samples`."""
    rows: list[tuple[str, str]] = []
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            rows += setting_items(value, f"{name}.")
        elif value is None:
            rows.append((name, "-"))
        elif isinstance(value, bool):
            rows.append((name, "yes" if value else "no"))
        else:
            rows.append((name, _short(value if isinstance(value, str) else json.dumps(value))))
    return rows


def _short(text: str) -> str:
    return text if len(text) < 200 else text[:200] + "..."
