"""The `mathagent chat` session: a REPL over the verifier loop.

One persistent event loop holds the model and the Lean pool; each question
runs as a task on it, so Ctrl-C cancels the current attempt (every Lean
process with it) and returns to the prompt instead of ending the session.
Input uses `readline`, so the arrow keys bring back history.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import platformdirs
from rich.console import Console
from rich.markdown import Markdown
from rich.markup import escape
from rich.panel import Panel
from rich.status import Status as Spinner
from rich.syntax import Syntax
from rich.text import Text

from mathagent import pipeline
from mathagent.agent import events
from mathagent.agent.budget import Budget
from mathagent.agent.loop import Agent
from mathagent.agent.records import Problem, Result
from mathagent.cli.common import dim_printer, solving_runtime
from mathagent.cli.terminal import SafeConsole
from mathagent.config import Settings
from mathagent.errors import InputError
from mathagent.jsonl import dumps
from mathagent.verify.leantext import starts_with_theorem
from mathagent.verify.tasks import BadRow, VerifyTask, read_lean_file
from mathagent.vocabulary import AnswerCheck, PromptKind, Status, VerdictKind

COMMANDS = """[bold]Commands[/bold]
  [cyan]QUESTION[/cyan]              solve it, state it in Lean, prove it, verify it
  [cyan]/prove TEXT[/cyan]           prove a Lean statement (`theorem ...`) or a question, skipping the worked solution
  [cyan]/verify \\[FILE][/cyan]        check every theorem of a .lean file, or of Lean pasted up to a line `/end`
  [cyan]/retry[/cyan]                run the last problem again
  [cyan]/samples N[/cyan], [cyan]/rounds N[/cyan]  proof budget (now {samples} samples, {rounds} rounds)
  [cyan]/model[/cyan]                which model and Lean are in use
  [cyan]/lean[/cyan]                 show the last Lean file (header, statement, proof)
  [cyan]/save FILE[/cyan]            write this session as JSONL
  [cyan]/help[/cyan], [cyan]/quit[/cyan]
Ctrl-C stops the current attempt. Arrow keys recall earlier input."""


@dataclass
class Session:
    budget: Budget
    last_problem: Problem | None = None
    last_solve: bool = True
    last_file: str | None = None
    log: list[dict[str, Any]] = field(default_factory=list)
    counter: int = 0


def run(settings: Settings, lake_project: Path | None, header_file: Path | None, budget: Budget) -> None:
    """The whole chat session, until /quit or Ctrl-D."""
    rt = solving_runtime(settings, lake_project, header_file)
    console = SafeConsole()
    session = Session(budget)
    loop = asyncio.new_event_loop()
    try:
        _enable_history(Path(platformdirs.user_state_dir("mathagent")) / "chat_history")
        manager = pipeline.open_agent(rt, session.budget, dim_printer(console), interactive=True)
        with console.status("loading the model..."):
            agent = loop.run_until_complete(manager.__aenter__())
        _banner(console, agent, rt)
        try:
            _repl(console, loop, agent, rt, session)
        finally:
            with console.status("closing: stopping Lean and the model..."):
                loop.run_until_complete(manager.__aexit__(None, None, None))
            console.print("[dim]bye[/dim]")
    finally:
        loop.close()


def _repl(
    console: Console, loop: asyncio.AbstractEventLoop, agent: Agent, rt: pipeline.Runtime, session: Session
) -> None:
    while True:
        try:
            line = input("» ").strip()
        except EOFError:
            console.print()
            return
        except KeyboardInterrupt:
            console.print()  # Ctrl-C at the prompt only clears the line
            continue
        if not line:
            continue
        if line in ("/quit", "/exit", "/q"):
            return
        action = _dispatch(line, console, agent, rt, session)
        if action is not None:
            _run_interruptibly(loop, action, console)


def _dispatch(
    line: str, console: Console, agent: Agent, rt: pipeline.Runtime, session: Session
) -> Coroutine[Any, Any, None] | None:
    command, _, rest = line.partition(" ")
    rest = rest.strip()
    if not command.startswith("/"):
        return _ask(console, agent, session, _problem(session, line), solve=True)
    if command == "/help":
        console.print(COMMANDS.format(samples=session.budget.samples, rounds=session.budget.rounds))
    elif command == "/prove":
        if not rest:
            console.print("[yellow]usage:[/yellow] /prove theorem NAME ... := by sorry   or   /prove QUESTION")
            return None
        return _ask(console, agent, session, _problem(session, rest), solve=False)
    elif command == "/verify":
        task = _file_task(console, rest) if rest else _pasted_task(console)
        return _verify(console, agent, session, task) if task is not None else None
    elif command == "/retry":
        if session.last_problem is None:
            console.print("[yellow]nothing to retry yet[/yellow]")
            return None
        return _ask(console, agent, session, session.last_problem, solve=session.last_solve)
    elif command in ("/samples", "/rounds"):
        if not rest.isdigit() or int(rest) < 1:
            console.print(f"[yellow]usage:[/yellow] {escape(command)} N   (a whole number >= 1)")
            return None
        if command == "/samples":
            session.budget = replace(session.budget, samples=int(rest))
        else:
            session.budget = replace(session.budget, rounds=int(rest))
        console.print(f"{command[1:]} = {rest}")
    elif command == "/model":
        _banner(console, agent, rt)
    elif command == "/lean":
        if session.last_file is None:
            console.print("[yellow]no Lean file yet[/yellow]")
        else:
            console.print(Syntax(session.last_file, "lean4", line_numbers=True, word_wrap=True))
    elif command == "/save":
        _save(console, session, rest)
    else:
        console.print(f"[yellow]unknown command {escape(command)}[/yellow]; /help lists them")
    return None


def _problem(session: Session, text: str) -> Problem:
    """A question, or a Lean statement (`theorem ...`, `:= by sorry` added if missing)."""
    session.counter += 1
    pid = f"chat-{session.counter}"
    if starts_with_theorem(text):
        statement = text if ":=" in text else text + " := by sorry"
        return Problem(id=pid, formal_statement=statement)
    return Problem(id=pid, informal=text)


async def _ask(console: Console, agent: Agent, session: Session, problem: Problem, *, solve: bool) -> None:
    session.last_problem, session.last_solve = problem, solve
    budget = replace(session.budget, solve=solve)
    spinner = Spinner("thinking...", console=console)
    spinner.start()
    try:
        result = await agent.run(problem, _renderer(console, spinner, budget), budget=budget)
    finally:
        spinner.stop()
    _finish(console, session, result)


def _renderer(console: Console, spinner: Spinner, budget: Budget) -> events.Listener:
    def on_event(event: events.Event) -> None:
        if isinstance(event, events.Solving):
            spinner.update("writing a worked solution...")
        elif isinstance(event, events.Solved):
            console.print(Markdown(event.solution or "_(no solution)_"))
            console.print(_answer_line(event.answer, event.check, event.detail))
        elif isinstance(event, events.Formalizing):
            spinner.update("stating the problem in Lean...")
        elif isinstance(event, events.StatementReady):
            console.print(Text(f"Lean statement ({event.source}):", style="bold"))
            console.print(Syntax(event.statement, "lean4", word_wrap=True))
        elif isinstance(event, events.Generating):
            what = (
                "repairing"
                if event.kind is PromptKind.REPAIR
                else f"writing {event.n} proof{'s' if event.n > 1 else ''}"
            )
            spinner.update(f"round {event.round}/{budget.rounds}: {what}...")
        elif isinstance(event, events.Verifying):
            spinner.update(f"round {event.round}/{budget.rounds}: Lean is checking {event.pending} proof(s)...")
        elif isinstance(event, events.VerdictReceived) and event.verdict is not VerdictKind.VERIFIED:
            note = f"  attempt {event.attempt + 1} (round {event.round}): {event.verdict} {', '.join(event.reasons)}"
            console.print(Text(note, style="dim"))
        elif isinstance(event, events.Repairing):
            spinner.update(
                f"attempt {event.attempt + 1}: {event.errors} error(s), repairing (round "
                f"{event.round}/{budget.rounds})..."
            )
        elif isinstance(event, events.Searching):
            start = f" after {event.replayed} tactic(s) of the best failed proof" if event.replayed else ""
            spinner.update(f"tactic search{start} (up to {event.expansions} states)...")
        elif isinstance(event, events.TacticTried):
            outcome = "no goals left" if event.verdict else ("ok" if event.accepted else event.error.split("\n")[0])
            spinner.update(f"tactic search: {event.tactic.splitlines()[0][:60]} -> {outcome[:60]}")
        elif isinstance(event, events.SearchDone):
            counts = f"{event.expansions} state(s) expanded, {event.tactics_run} tactic(s) run"
            note = f"  tactic search: {event.stop}, {counts}"
            console.print(Text(note, style="dim"))

    return on_event


def _answer_line(answer: str | None, check: AnswerCheck, detail: str) -> Text:
    line = Text("Answer: ", style="bold")
    line.append(answer if answer is not None else "(none found)", style="bold cyan")
    style = {AnswerCheck.CHECKED: "green", AnswerCheck.DISAGREES: "red"}.get(check, "yellow")
    line.append(f"   {check}", style=style)
    line.append(f" ({detail})", style="dim")
    return line


def _finish(console: Console, session: Session, result: Result) -> None:
    session.log.append(result.to_dict())
    session.last_file = result.lean_file() or session.last_file
    if result.status is Status.VERIFIED:
        console.print(Text("Proof:", style="bold"))
        console.print(Syntax(result.theorem_text() or "", "lean4", word_wrap=True))
        console.print(Panel(Text("✓ verified by Lean", style="bold green"), expand=False))
    elif result.status is Status.ERROR:
        console.print(Panel(Text(f"! error: {result.error}", style="bold magenta"), expand=False))
    else:
        why = result.note or f"no proof passed Lean within {result.rounds} round(s), {len(result.attempts)} attempt(s)"
        if result.search and not result.note:
            why += f" and a tactic search ({result.search['stop']})"
        console.print(Panel(Text(f"✗ not verified: {why}", style="bold red"), expand=False))


def _file_task(console: Console, name: str) -> VerifyTask | None:
    """`/verify FILE`: the file as a whole-file check, or None after saying why it cannot be read."""
    path = Path(name).expanduser()
    if path.is_dir():
        console.print(f"[yellow]{escape(str(path))} is a folder: /verify takes one .lean file[/yellow]")
        return None
    try:
        task = read_lean_file(path)
    except InputError as exc:
        console.print(f"[yellow]{escape(str(exc))}[/yellow]")
        return None
    if isinstance(task, BadRow):
        console.print(f"[yellow]cannot check {escape(str(path))}: {escape(task.message)}[/yellow]")
        return None
    return task


def _pasted_task(console: Console) -> VerifyTask | None:
    code = _read_block(console)
    if not code.strip():
        console.print("[yellow]nothing was pasted: nothing to check[/yellow]")
        return None
    return VerifyTask(id="pasted", full_code=code)


async def _verify(console: Console, agent: Agent, session: Session, task: VerifyTask) -> None:
    code = task.full_code or ""
    session.last_file = code
    if agent.verifier is None:
        console.print(
            Panel(
                Text("✗ not verified: no Lean toolchain found (see `mathagent doctor`)", style="bold red"), expand=False
            )
        )
        return
    with console.status("Lean is checking..."):
        verdict = await agent.verifier.verify(task)
    session.log.append({"id": task.id, "kind": "verify", "code": code, "verdict": verdict.to_dict()})
    if verdict.verified:
        console.print(Panel(Text("✓ verified by Lean", style="bold green"), expand=False))
        return
    console.print(Panel(Text(f"✗ {verdict.verdict}: {', '.join(verdict.reasons)}", style="bold red"), expand=False))
    console.print(Text(verdict.message, style="dim"))
    for d in verdict.diagnostics[:5]:
        if d.severity == "error":
            console.print(Text(f"  line {d.line}, col {d.column}: {d.message.strip().splitlines()[0]}", style="red"))


def _read_block(console: Console) -> str:
    console.print("[dim]paste Lean code; end with a line /end[/dim]")
    lines = []
    while True:
        try:
            line = input()
        except EOFError:
            break
        if line.strip() == "/end":
            break
        lines.append(line)
    return "\n".join(lines) + "\n"


def _save(console: Console, session: Session, name: str) -> None:
    if not name:
        console.print("[yellow]usage:[/yellow] /save FILE")
        return
    path = Path(name).expanduser()
    try:
        with path.open("w", encoding="utf-8") as f:
            for row in session.log:
                f.write(dumps(row) + "\n")
    except OSError as exc:
        console.print(f"[red]cannot write {escape(str(path))}: {exc.strerror}[/red]")
        return
    console.print(f"saved {len(session.log)} item(s) to {path}")


def _run_interruptibly(loop: asyncio.AbstractEventLoop, action: Coroutine[Any, Any, None], console: Console) -> None:
    """Run one action; Ctrl-C cancels it (and its Lean processes), not the session."""
    task = loop.create_task(action)
    try:
        loop.run_until_complete(task)
    except KeyboardInterrupt:
        task.cancel()
        loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
        console.print("[yellow]stopped[/yellow]")
    except Exception as exc:  # noqa: BLE001 - one failed question must not end the session
        console.print(f"[red]error:[/red] {escape(str(exc))}")


def _banner(console: Console, agent: Agent, rt: pipeline.Runtime) -> None:
    lines = [f"[bold]mathagent chat[/bold] · model: {agent.engine.info.model} ({agent.engine.info.kind})"]
    if rt.toolchain is None:
        lines.append(f"[yellow]Lean: none found ({rt.toolchain_problem}); answers are unverified[/yellow]")
    else:
        lines.append(f"Lean {rt.toolchain.version} ({rt.toolchain.origin})")
        missing = agent.lean_unavailable(agent.default_header)
        if missing:
            lines.append(f"[yellow]{missing}; /verify still checks prelude files[/yellow]")
    lines.append("[dim]/help for commands, /quit to leave[/dim]")
    console.print(Panel("\n".join(lines), expand=False))


def _enable_history(path: Path) -> None:
    try:
        import readline
    except ImportError:  # not on every platform; input() still works
        return
    try:
        readline.read_history_file(path)
    except OSError:
        pass
    readline.set_history_length(1000)
    import atexit

    atexit.register(_save_history, readline, path)


def _save_history(readline: Any, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        readline.write_history_file(path)
    except OSError:
        pass
