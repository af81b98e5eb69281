"""A run's report: PNG plots (matplotlib), a self-contained HTML page, a terminal table."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from rich.table import Table

from mathagent.agent.records import Result
from mathagent.eval.metrics import Metrics

PLOTS = ("pass_at_k", "solved_by_round", "time_split", "reasons")


def terminal_table(m: Metrics, title: str) -> Table:
    table = Table(title=title, show_header=False, title_style="bold")
    table.add_column(style="bold")
    table.add_column(justify="right")
    for label, value in summary_rows(m):
        table.add_row(label, value)
    return table


def summary_rows(m: Metrics) -> list[tuple[str, str]]:
    rows = [("problems", str(m.problems))]
    if m.formal:
        rows.append(
            (
                "formal: solved with a verified proof",
                f"{m.formal_solved} / {m.formal} ({m.formal_solved / m.formal:.1%})",
            )
        )
        for k, value in m.formal_pass_at_k.items():
            rows.append((f"  pass@{k} (n={m.formal_samples}, round 1)", f"{value:.1%}"))
        for r, solved in m.solved_by_round.items():
            rows.append((f"  solved by round {r}", f"{solved} ({solved / m.formal:.1%})"))
    if m.informal:
        rows.append(
            (
                "word problems: majority answer correct",
                f"{m.informal_solved} / {m.informal} ({m.informal_solved / m.informal:.1%})",
            )
        )
        for k, value in m.informal_pass_at_k.items():
            rows.append((f"  pass@{k} (n={m.informal_samples})", f"{value:.1%}"))
    rows += [
        ("attempts per solved problem", "-" if m.attempts_per_solved is None else str(m.attempts_per_solved)),
        ("tokens per solved problem", "-" if m.tokens_per_solved is None else str(m.tokens_per_solved)),
        ("time: model / Lean (summed)", f"{m.model_s:.1f}s / {m.lean_s:.1f}s"),
        ("errors", str(m.errors)),
    ]
    if m.verdicts:
        rows.append(("proof verdicts", ", ".join(f"{k} {v}" for k, v in m.verdicts.items())))
    if m.reasons:
        rows.append(("rejection reasons", ", ".join(f"{k} {v}" for k, v in list(m.reasons.items())[:8])))
    return rows


def plots(m: Metrics, folder: Path, title: str = "") -> dict[str, Path]:
    """Draw the report's figures as PNG files in `folder`; name -> path.

    Each figure on its own, and `overview.png` with all four (the picture of
    a run at a glance)."""
    import matplotlib

    matplotlib.use("Agg")  # no screen needed
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    drawn: dict[str, Path] = {}
    painters = {
        "pass_at_k": (_draw_pass_at_k, (5.5, 3.6)),
        "solved_by_round": (_draw_solved_by_round, (5.5, 3.6)),
        "time_split": (_draw_time_split, (5.5, 2.6)),
        "reasons": (_draw_reasons, (5.5, max(2.4, 0.35 * len(m.reasons) + 1))),
    }
    for name, (paint, size) in painters.items():
        fig, ax = plt.subplots(figsize=size)
        paint(ax, m)
        fig.tight_layout()
        fig.savefig(folder / f"{name}.png", dpi=120)
        plt.close(fig)
        drawn[name] = folder / f"{name}.png"
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    for ax, (paint, _) in zip(axes.flat, painters.values(), strict=True):
        paint(ax, m)
    fig.suptitle(title or "mathagent eval", fontweight="bold")
    fig.tight_layout()
    fig.savefig(folder / "overview.png", dpi=110)
    plt.close(fig)
    drawn["overview"] = folder / "overview.png"
    return drawn


def _draw_pass_at_k(ax: Any, m: Metrics) -> None:
    for label, curve in (
        ("formal (verified proof)", m.formal_pass_at_k),
        ("word problems (answer)", m.informal_pass_at_k),
    ):
        if curve:
            ks = list(curve)
            ax.plot(ks, [100 * curve[k] for k in ks], marker="o", label=label)
    ks_all = sorted({k for curve in (m.formal_pass_at_k, m.informal_pass_at_k) for k in curve}) or [1]
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks_all, [str(k) for k in ks_all])
    ax.minorticks_off()
    ax.set_xlabel("k (samples)")
    ax.set_ylabel("pass@k (%)")
    ax.set_ylim(0, 100)
    ax.set_title("pass@k")
    ax.grid(alpha=0.3)
    if m.formal_pass_at_k or m.informal_pass_at_k:
        ax.legend(loc="lower right")


def _draw_solved_by_round(ax: Any, m: Metrics) -> None:
    rounds = list(m.solved_by_round) or [1]
    values = [100 * m.solved_by_round.get(r, 0) / max(1, m.formal) for r in rounds]
    ax.plot(rounds, values, marker="o", color="tab:green")
    ax.set_xticks(rounds)
    ax.set_xlabel("round (1 = no repair; later rounds repair from Lean's errors)")
    ax.set_ylabel("formal problems solved (%)")
    ax.set_ylim(0, 100)
    ax.set_title("solved by round")
    ax.grid(alpha=0.3)


def _draw_time_split(ax: Any, m: Metrics) -> None:
    ax.barh(["model", "Lean"], [m.model_s, m.lean_s], color=["tab:blue", "tab:orange"])
    ax.set_xlabel("seconds (summed over requests and checks)")
    ax.set_title("time split")


def _draw_reasons(ax: Any, m: Metrics) -> None:
    names = list(m.reasons)[:12][::-1] or ["(none)"]
    ax.barh(names, [m.reasons.get(n, 0) for n in names], color="tab:red")
    ax.set_xlabel("proof attempts")
    ax.set_title("why proofs were rejected")


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
        f"<tr><th>{html.escape(str(k))}</th><td><code>{html.escape(_short(v))}</code></td></tr>"
        for k, v in settings.items()
    )
    problems = "".join(
        "<tr><td>{}</td><td class='{}'>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
            html.escape(r.id),
            html.escape(str(r.status)),
            html.escape(str(r.status)),
            html.escape(r.answer if r.answer is not None else ""),
            "yes" if r.reference_match else ("no" if r.reference_match is False else ""),
            len(r.attempts),
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
<h2>Settings</h2><table>{setting_rows}</table>
<h2>Problems</h2><table><tr><th>id</th><th>status</th><th>answer</th><th>answer = reference</th><th>proof \
attempts</th></tr>{problems}</table>
</body></html>
"""
    path.write_text(page, encoding="utf-8")


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) < 200 else text[:200] + "..."
