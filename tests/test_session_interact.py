"""The LeanInteract session backend (`[verify] session_backend = "leaninteract"`).

What runs on this machine: the setting choosing the backend, the clear errors
when lean-interact, a built REPL or bubblewrap is missing, the sandboxed
command line the REPL would start with, and the translation of the REPL's
answers (as LeanInteract's own pydantic types) into the search's states and
errors. The process around the REPL (the sandbox it sees, a deadline, a
restart with replay, nothing left running) is exercised with a stand-in
script that answers the REPL's JSON protocol: it is not Lean, and those tests
claim nothing about proofs.

A real REPL needs elan, git and the network to be built (LeanInteract builds
it per Lean version), none of which this machine has, and its Lean needs Init:
the tests against one skip with their reason here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from conftest import ROOT
from mathagent.config import load_settings
from mathagent.errors import ConfigError, ToolchainError
from mathagent.verify import sandbox
from mathagent.verify.session import ProofSession, ProofState, SessionError, SessionLimits
from mathagent.verify.toolchain import LeanToolchain, find_lean
from mathagent.verify.verifier import Verifier, VerifyOptions
from mathagent.vocabulary import SandboxKind, SessionBackend

pytest.importorskip("lean_interact", reason="needs lean-interact (pip install -e '.[test]' or '.[interact]')")

from lean_interact.interface import (  # noqa: E402
    CommandResponse,
    LeanError,
    Message,
    Pos,
    ProofStepResponse,
    Sorry,
)

from mathagent.verify.session_interact import (  # noqa: E402
    ReplSession,
    find_repl,
    interact_session,
    opened_goals,
    parse_answer,
    repl_command,
    step_result,
)

BWRAP_OK, BWRAP_WHY = sandbox.bwrap_works()
needs_bwrap = pytest.mark.skipif(not BWRAP_OK, reason=f"needs bubblewrap ({BWRAP_WHY})")
STATEMENT = "theorem t (n : Nat) : n + 0 = n :="
LIMITS = SessionLimits(timeout_s=20, memory_mb=1024)


def _pos(line: int, column: int = 0) -> Pos:
    return Pos(line=line, column=column)


# ---------------------------------------------------------------- choosing the backend


def test_the_setting_chooses_the_backend_from_file_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))  # no user config file of the caller's
    assert load_settings(tmp_path, env={}).verify.session_backend == "server"
    (tmp_path / "mathagent.toml").write_text('[verify]\nsession_backend = "leaninteract"\nrepl = "bin/repl"\n')
    verify = load_settings(tmp_path, env={}).verify
    assert verify.session_backend == SessionBackend.LEANINTERACT and verify.repl == tmp_path / "bin" / "repl"
    env = {"MATHAGENT_SESSION_BACKEND": "server", "MATHAGENT_REPL": "/opt/repl"}
    verify = load_settings(tmp_path, env=env).verify
    assert verify.session_backend == "server" and verify.repl == Path("/opt/repl")
    (tmp_path / "mathagent.toml").write_text('[verify]\nsession_backend = "dojo"\n')
    with pytest.raises(ConfigError, match=r"verify.session_backend must be one of server, leaninteract \(got 'dojo'\)"):
        load_settings(tmp_path, env={})


def test_the_verifier_gives_a_language_server_session_by_default(lean: LeanToolchain) -> None:
    verifier = Verifier(lean, VerifyOptions())
    assert isinstance(verifier.session(), ProofSession)


@needs_bwrap
def test_the_verifier_gives_a_repl_session_when_asked(lean: LeanToolchain, tmp_path: Path) -> None:
    repl = _executable(tmp_path / "repl" / ".lake" / "build" / "bin" / "repl", "#!/bin/sh\n")
    options = VerifyOptions(session_backend=SessionBackend.LEANINTERACT, repl=repl)
    session = Verifier(lean, options).session()
    assert isinstance(session, ReplSession) and session.repl == repl
    assert session.limits == SessionLimits(timeout_s=options.timeout_s, memory_mb=options.memory_mb)


def test_no_built_repl_is_a_toolchain_error_naming_the_fix(lean: LeanToolchain) -> None:
    # this machine has no REPL built for its Lean (LeanInteract would build it with elan and the network)
    with contextlib.suppress(ToolchainError):
        pytest.skip(f"a REPL is built for Lean {lean.version} here: {find_repl(lean)}")
    verifier = Verifier(lean, VerifyOptions(session_backend="leaninteract"))
    with pytest.raises(ToolchainError) as caught:
        verifier.session()
    error = caught.value
    assert f"no Lean REPL is built for Lean {lean.version}" in error.message
    assert 'session_backend = "server"' in error.message and "[verify] repl" in error.message
    assert (
        error.hint
        == f"python -c \"from lean_interact import LeanREPLConfig; LeanREPLConfig(lean_version='v{lean.version}')\""
    )


def test_a_missing_package_is_a_toolchain_error_with_the_install_command(
    lean: LeanToolchain, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [m for m in sys.modules if m == "lean_interact" or m.startswith("lean_interact.")]:
        monkeypatch.setitem(sys.modules, name, None)  # as if it were not installed: importing it fails
    verifier = Verifier(lean, VerifyOptions(session_backend="leaninteract"))
    with pytest.raises(ToolchainError, match="needs the lean-interact package, which is not installed") as caught:
        verifier.session()
    assert caught.value.hint is not None and "pip install 'mathagent[interact]'" in caught.value.hint
    assert isinstance(Verifier(lean, VerifyOptions()).session(), ProofSession)  # the default needs none of it


def test_without_bubblewrap_the_backend_refuses_to_start(lean: LeanToolchain, tmp_path: Path) -> None:
    repl = _executable(tmp_path / "repl", "#!/bin/sh\n")
    verifier = Verifier(lean, VerifyOptions(session_backend="leaninteract", repl=repl, sandbox="none"))
    assert verifier.sandbox_kind == SandboxKind.RLIMITS
    with pytest.raises(ToolchainError, match="runs the Lean REPL only inside bubblewrap") as caught:
        verifier.session()
    assert caught.value.hint is not None and "apt-get install bubblewrap" in caught.value.hint
    with pytest.raises(ToolchainError, match="only inside bubblewrap"):
        repl_command(lean, repl, SandboxKind.RLIMITS, tmp_path)


def test_the_repl_is_found_in_leaninteracts_cache_for_this_lean_only(lean: LeanToolchain, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    built = cache / "augustepoiroux" / "repl" / f"repl_v1.3.19_lean-toolchain-v{lean.version}" / ".lake" / "build"
    other = cache / "augustepoiroux" / "repl" / "repl_v1.3.19_lean-toolchain-v4.9.0" / ".lake" / "build"
    _executable(other / "bin" / "repl", "#!/bin/sh\n")
    with pytest.raises(ToolchainError, match=f"no Lean REPL is built for Lean {lean.version}"):
        find_repl(lean, cache=cache)
    mine = _executable(built / "bin" / "repl", "#!/bin/sh\n")
    assert find_repl(lean, cache=cache) == mine


def test_a_named_repl_must_exist_and_match_this_lean(lean: LeanToolchain, tmp_path: Path) -> None:
    with pytest.raises(ToolchainError, match="is not an executable file"):
        find_repl(lean, tmp_path / "nowhere" / "repl")
    checkout = tmp_path / "checkout"
    repl = _executable(checkout / ".lake" / "build" / "bin" / "repl", "#!/bin/sh\n")
    (checkout / "lean-toolchain").write_text("leanprover/lean4:v4.9.0\n")
    with pytest.raises(ToolchainError, match=f"built for Lean v4.9.0, but the Lean in use is {lean.version}"):
        find_repl(lean, repl)
    (checkout / "lean-toolchain").write_text(f"leanprover/lean4:v{lean.version}\n")
    assert find_repl(lean, repl) == repl


# ---------------------------------------------------------------- the sandboxed command line


@needs_bwrap
def test_the_repl_starts_inside_bubblewrap_with_a_read_only_view(lean: LeanToolchain, tmp_path: Path) -> None:
    checkout = tmp_path / "repl"
    repl = _executable(checkout / ".lake" / "build" / "bin" / "repl", "#!/bin/sh\n")
    command = repl_command(lean, repl, SandboxKind.BWRAP, tmp_path / "scratch")
    argv = command.argv
    assert command.kind == SandboxKind.BWRAP and command.env == {}  # the environment is bwrap's --setenv only
    bwrap = argv.index(sandbox.bwrap_path() or "bwrap")
    inner = argv[argv.index("--", bwrap) + 1 :]
    assert inner == [str(repl)]  # the REPL itself, no `lake env` around it
    options = argv[bwrap + 1 : argv.index("--", bwrap)]
    for flag in ("--unshare-all", "--die-with-parent", "--new-session", "--clearenv"):
        assert flag in options
    binds = [options[i + 1] for i, o in enumerate(options) if o == "--ro-bind"]
    assert str(checkout.resolve()) in binds and str(lean.prefix.resolve()) in binds
    assert "--bind" not in options  # nothing of the host is writable
    env = {options[i + 1]: options[i + 2] for i, o in enumerate(options) if o == "--setenv"}
    assert env["LEAN_SYSROOT"] == str(lean.prefix) and env["HOME"] == "/tmp"
    if argv[0] != argv[bwrap]:  # limits set by prlimit around bwrap
        assert argv[0].endswith("prlimit") and "--core=0" in argv[:bwrap]


# ---------------------------------------------------------------- the REPL's answers, translated


def test_the_opening_sorry_gives_the_root_goal() -> None:
    answer = CommandResponse(
        env=0,
        sorries=[Sorry(pos=_pos(4, 2), endPos=_pos(4, 7), goal="n : Nat\n⊢ n + 0 = n", proofState=0)],
        messages=[Message(pos=_pos(3), endPos=_pos(3, 7), severity="warning", data="declaration uses 'sorry'")],
    )
    assert opened_goals(answer, sorry_line=4, header_lines=2) == (0, ("n : Nat\n⊢ n + 0 = n",))


def test_a_header_or_statement_that_does_not_elaborate_is_a_session_error() -> None:
    header_error = CommandResponse(
        env=0, messages=[Message(pos=_pos(1), severity="error", data="unknown module prefix 'Mathlb'")]
    )
    with pytest.raises(SessionError, match="the header does not elaborate: line 1: unknown module prefix"):
        opened_goals(header_error, sorry_line=4, header_lines=2)
    statement_error = CommandResponse(
        env=0,
        messages=[Message(pos=_pos(3, 20), severity="error", data="unknown identifier 'm'")],
        sorries=[Sorry(pos=_pos(4, 2), goal="⊢ m = m", proofState=0)],
    )
    with pytest.raises(SessionError, match="the statement does not elaborate: unknown identifier 'm'"):
        opened_goals(statement_error, sorry_line=4, header_lines=2)
    with pytest.raises(SessionError, match="the REPL refused the statement: Unknown environment."):
        opened_goals(LeanError(message="Unknown environment."), sorry_line=4, header_lines=2)
    with pytest.raises(SessionError, match="no proof state for the theorem"):
        opened_goals(CommandResponse(env=0), sorry_line=4, header_lines=2)


def test_a_tactic_step_gives_new_goals_or_leans_error() -> None:
    # the answers as the REPL sends them (repl#25, repl#43): parsed as LeanInteract's `LeanServer.run` does
    goals = ["case h₁\na b : ℝ\n⊢ a < b", "case h₂\na b : ℝ\n⊢ b ≤ b"]
    step = parse_answer({"proofState": 1, "goals": goals, "proofStatus": "Incomplete: open goals remain"}, step=True)
    assert isinstance(step, ProofStepResponse)
    result, new_id = step_result(step, ("intro a b",), "apply add_lt_add_of_lt_of_le")
    assert new_id == 1 and result.state == ProofState(("intro a b", "apply add_lt_add_of_lt_of_le"), tuple(goals))
    refused = parse_answer({"message": "Lean error:\n<input>:1:6: expected end of input"}, step=True)
    assert isinstance(refused, LeanError)
    result, new_id = step_result(refused, (), "ext1 x; ext1 n")
    assert result.state is None and result.error == "<input>:1:6: expected end of input" and new_id is None
    with_error = ProofStepResponse(
        proofState=2,
        goals=["⊢ False"],
        proofStatus="Incomplete: open goals remain",
        messages=[Message(pos=_pos(1), severity="error", data="linarith failed to find a contradiction")],
    )
    result, new_id = step_result(with_error, (), "linarith")
    assert result.state is None and result.error == "linarith failed to find a contradiction" and new_id is None


def test_no_goals_is_a_candidate_only_when_the_repl_says_completed() -> None:
    done, new_id = step_result(ProofStepResponse(proofState=3, goals=[], proofStatus="Completed"), ("simp",), "rfl")
    assert done.state is not None and done.state.solved and done.state.tactics == ("simp", "rfl") and new_id == 3
    for status, error in [
        ("Incomplete: contains sorry", "the tactic uses sorry"),
        ("Incomplete: contains metavariable(s)", "no goals left, but the proof is not complete"),
        ("Error: kernel type check failed: (kernel) declaration has metavariables", "the REPL rejects the proof"),
    ]:
        result, new_id = step_result(ProofStepResponse(proofState=4, goals=[], proofStatus=status), (), "t")
        assert result.state is None and result.error.startswith(error) and new_id is None
    with_sorry = ProofStepResponse(
        proofState=5, goals=["⊢ p"], proofStatus="Incomplete: open goals remain", sorries=[Sorry(goal="⊢ q")]
    )
    assert step_result(with_sorry, (), "have h : q := sorry")[0].error == "the tactic uses sorry"


def test_old_repl_answers_and_garbage() -> None:
    old = parse_answer({"proofState": 1, "goals": ["⊢ p"]}, step=True)  # before repl#63: no proofStatus
    assert isinstance(old, ProofStepResponse) and step_result(old, (), "t")[0].state == ProofState(("t",), ("⊢ p",))
    with pytest.raises(ValueError, match="not one LeanInteract knows"):
        parse_answer({"goals": ["⊢ p"]}, step=True)  # no proof state number
    with pytest.raises(ValueError, match="not a JSON object"):
        parse_answer(["⊢ p"], step=True)


# ---------------------------------------------------------------- the process, with a stand-in REPL

# Answers the REPL's protocol with fixed goals; not Lean. It reports what the sandbox lets it see.
STAND_IN = """#!/usr/bin/python3
import json, os, subprocess, sys, time
CHECKOUT = {checkout!r}
states = []
def say(obj, *extra):
    for o in (obj, *extra):
        sys.stdout.write(json.dumps(o, indent=1) + "\\n\\n")
    sys.stdout.flush()
def blocks():
    lines = []
    for line in sys.stdin:
        if line.strip():
            lines.append(line)
        elif lines:
            yield "".join(lines)
            lines = []
for block in blocks():
    request = json.loads(block)
    if "cmd" in request:
        interfaces = [l.split(":")[0].strip() for l in open("/proc/net/dev").read().splitlines()[2:]]
        seen = dict(checkout=os.path.exists(CHECKOUT), home=os.environ.get("HOME"), net=interfaces)
        states.append(1)
        sorry = dict(pos=dict(line=request["cmd"].count("\\n"), column=2), goal="⊢ P -- " + json.dumps(seen),
                     proofState=len(states) - 1)
        say(dict(env=0, sorries=[sorry]))
        continue
    tactic, source = request["tactic"], request["proofState"]
    if tactic == "hang":
        subprocess.Popen(["/bin/sleep", "987"])
        time.sleep(1000)
    if tactic == "bad":
        say(dict(message="Lean error:\\nunknown tactic"))
        continue
    states.append(1)
    answer = dict(proofState=len(states) - 1, goals=["⊢ P" + "'" * (len(states) - 1)], proofStatus="Incomplete")
    if tactic == "chatty":
        say(answer, dict(proofState=99, goals=[], proofStatus="Completed"))
    else:
        say(answer)
"""


@pytest.fixture
def stand_in(tmp_path: Path) -> Iterator[Path]:
    script = STAND_IN.format(checkout=str(ROOT / "pyproject.toml"))
    path = _executable(tmp_path / "repl" / ".lake" / "build" / "bin" / "repl", script)
    yield path
    left = [p for p in _processes_of(path) if p.is_running()]
    assert not left, f"left running: {[p.cmdline() for p in left]}"


def _processes_of(path: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if str(path) in cmdline or cmdline[:2] == ["/bin/sleep", "987"]:
            found.append(proc)
    return found


@needs_bwrap
def test_the_stand_in_runs_sandboxed_and_a_step_round_trips(lean: LeanToolchain, stand_in: Path) -> None:
    async def go() -> tuple[ProofState, ProofState, str, int]:
        async with ReplSession(lean, LIMITS, SandboxKind.BWRAP, stand_in) as session:
            root = await session.open("", STATEMENT)
            one = await session.apply(root, "step")
            bad = await session.apply(root, "bad")
            assert one.state is not None and bad.state is None
            return root, one.state, bad.error, session.restarts

    root, one, bad, restarts = asyncio.run(go())
    goal, _, seen = root.goals[0].partition(" -- ")
    assert goal == "⊢ P" and root.tactics == ()
    assert json.loads(seen) == {"checkout": False, "home": "/tmp", "net": ["lo"]}  # no checkout, no network
    assert one == ProofState(("step",), ("⊢ P'",))
    assert bad == "unknown tactic" and restarts == 0


@needs_bwrap
def test_a_timeout_kills_the_repl_tree_and_the_next_step_replays(lean: LeanToolchain, stand_in: Path) -> None:
    async def go() -> tuple[str, bool, ProofState | None, int]:
        limits = SessionLimits(timeout_s=3, memory_mb=1024)
        async with ReplSession(lean, limits, SandboxKind.BWRAP, stand_in) as session:
            root = await session.open("", STATEMENT)
            one = await session.apply(root, "step")
            assert one.state is not None
            hung = await session.apply(one.state, "hang")
            assert not [p for p in _processes_of(stand_in) if p.is_running()]  # killed with its child, at once
            again = await session.apply(one.state, "step")  # a fresh REPL: open and `step` replayed first
            return hung.error, hung.timed_out, again.state, session.restarts

    error, timed_out, again, restarts = asyncio.run(go())
    assert timed_out and error == "the REPL ran past the time limit"
    assert again is not None and again.tactics == ("step", "step") and restarts == 1


@needs_bwrap
def test_a_cancelled_step_never_leaves_its_answer_to_the_next(lean: LeanToolchain, stand_in: Path) -> None:
    async def go() -> tuple[ProofState | None, int]:
        async with ReplSession(lean, LIMITS, SandboxKind.BWRAP, stand_in) as session:
            root = await session.open("", STATEMENT)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(session.apply(root, "hang"), 2)  # the caller gives up (Ctrl-C, a budget)
            after = await session.apply(root, "step")
            return after.state, session.restarts

    after, restarts = asyncio.run(go())
    assert after == ProofState(("step",), ("⊢ P'",)) and restarts == 1


@needs_bwrap
def test_output_nobody_asked_for_restarts_the_repl(lean: LeanToolchain, stand_in: Path) -> None:
    async def go() -> tuple[ProofState | None, int]:
        async with ReplSession(lean, LIMITS, SandboxKind.BWRAP, stand_in) as session:
            root = await session.open("", STATEMENT)
            chatty = await session.apply(root, "chatty")
            assert chatty.state is not None
            await asyncio.sleep(0.2)  # the extra block arrives
            after = await session.apply(chatty.state, "step")
            return after.state, session.restarts

    after, restarts = asyncio.run(go())
    assert after is not None and after.tactics == ("chatty", "step") and restarts == 1


# ---------------------------------------------------------------- against a real REPL (skipped here)


def _real_repl() -> tuple[LeanToolchain, Path] | None:
    try:
        toolchain = find_lean(load_settings().lean_search(None))
        if toolchain.prelude_only:
            return None
        return toolchain, find_repl(toolchain)
    except ToolchainError:
        return None


REAL = _real_repl() if BWRAP_OK else None
needs_repl = pytest.mark.skipif(
    REAL is None,
    reason="needs bubblewrap and a Lean REPL built for a full Lean toolchain (LeanInteract builds it with "
    "git, elan and the network; this machine has only the prelude-only Lean)",
)


def _real_session() -> ReplSession:
    assert REAL is not None
    toolchain, repl = REAL
    return interact_session(toolchain, SessionLimits(timeout_s=120, memory_mb=8192), SandboxKind.BWRAP, repl)


@needs_repl
def test_a_real_repl_opens_applies_and_refuses() -> None:
    async def go() -> None:
        async with _real_session() as session:
            root = await session.open("", STATEMENT)
            assert root.goals == ("n : Nat\n⊢ n + 0 = n",)
            unknown = await session.apply(root, "exact no_such_lemma")
            assert unknown.state is None and "no_such_lemma" in unknown.error
            done = await session.apply(root, "rfl")
            assert done.state is not None and done.state.solved, done.error
            with pytest.raises(SessionError, match="does not elaborate"):
                await session.open("", "theorem bad : n = n :=")

    asyncio.run(go())


@needs_repl
def test_a_real_repl_session_leaves_nothing_running() -> None:
    async def go() -> None:
        async with _real_session() as session:
            await session.open("", STATEMENT)

    asyncio.run(go())
    assert REAL is not None
    assert not [p for p in _processes_of(REAL[1]) if p.is_running()]


def _executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    path.chmod(0o755)
    return path
