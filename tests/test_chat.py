"""`mathagent chat` driven in tmux, as a person would use it."""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ROOT
from mathagent.verify.toolchain import LeanToolchain
from scripted_server import Rule, ScriptedServer
from tmux import Tmux

pytestmark = [
    pytest.mark.slow,  # chat sessions in tmux
    pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (apt-get install tmux)"),
]

HEADER = ROOT / "examples" / "prelude_header.lean"
PASTED = [
    "prelude",
    "universe u",
    "inductive Eq {α : Sort u} : α → α → Prop where",
    "  | refl (a : α) : Eq a a",
    "inductive N where",
    "  | z : N",
    "  | s (n : N) : N",
    "theorem z_eq : Eq N.z N.z := Eq.refl N.z",
    "/end",
]


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    server = ScriptedServer(
        [
            Rule(
                r"Lean reports these errors:.*mismatch",
                ["```lean4\ntheorem two_plus_two : Eq (N.add two two) four := Eq.refl _\n```"],
            ),
            Rule(
                r"Complete the following Lean 4 code",
                ["```lean4\ntheorem two_plus_two : Eq (N.add two two) four := Eq.refl two\n```"],
            ),
            Rule(
                r"Convert this natural language",
                ["```lean4\ntheorem two_plus_two : Eq (N.add two two) four := by sorry\n```"],
            ),
            Rule(r"step by step", ["We add: $2 + 2 = 4$.\n\nSo the answer is $\\boxed{4}$."]),
        ],
        latency_s=0.2,
    )
    server.start()
    yield server
    server.stop()


def test_question_verify_and_quit(tmp_path: Path, server: ScriptedServer, lean: LeanToolchain) -> None:
    command = (
        f"cd {tmp_path} && {sys.executable} -m mathagent chat --base-url {server.base_url} "
        f"--header-file {HEADER}; echo CHAT-EXITED-$?; sleep 60"
    )
    tmux = Tmux(f"cd {ROOT} && {command}")
    try:
        tmux.wait_for("/help for commands")
        assert "Lean 4.35.0" in tmux.screen() and "model: scripted" in tmux.screen()
        tmux.send("What is 2 + 2?")
        screen = tmux.wait_for("verified by Lean")
        assert "So the answer is" in screen and "answer checked" in screen
        assert "theorem two_plus_two" in screen and "attempt 1 (round 1): rejected lean_error" in screen
        tmux.send("/verify")
        tmux.wait_for("end with a line /end")
        for line in PASTED:
            tmux.send(line)
        tmux.wait_for("verified by Lean", after=1)
        # a file by its path (relative to where chat runs), and what can not be checked said in one line
        lean_file = "\n".join(PASTED[:-1]) + "\n"  # without the closing /end
        (tmp_path / "good.lean").write_text(lean_file)
        (tmp_path / "bad.lean").write_text(lean_file.replace("Eq.refl N.z", "Eq.refl (N.s N.z)"))
        tmux.send("/verify good.lean")
        tmux.wait_for("verified by Lean", after=2)
        tmux.send("/verify bad.lean")
        tmux.wait_for("rejected: lean_error")
        tmux.send("/verify missing.lean")
        tmux.wait_for("cannot read missing.lean")
        tmux.send("/verify")
        tmux.wait_for("end with a line /end", after=1)
        tmux.send("/end")
        tmux.wait_for("nothing was pasted")
        tmux.send(f"/save {tmp_path / 'session.jsonl'}")
        tmux.wait_for("saved 4 item(s)")
        tmux.send("/quit")
        tmux.wait_for("CHAT-EXITED-0")
    finally:
        tmux.close()
    rows = [json.loads(line) for line in (tmp_path / "session.jsonl").read_text().splitlines()]
    assert [(r["id"], r.get("verdict", {}).get("verdict")) for r in rows[1:]] == [
        ("pasted", "verified"),
        ("good.lean", "verified"),
        ("bad.lean", "rejected"),
    ]


def test_ctrl_c_stops_the_attempt_not_the_session(tmp_path: Path, lean: LeanToolchain) -> None:
    slow = ScriptedServer([Rule(r".", ["The answer is \\boxed{4}."])], latency_s=30)
    slow.start()
    tmux = Tmux(
        f"cd {ROOT} && {sys.executable} -m mathagent chat --base-url {slow.base_url} --header-file {HEADER}; "
        f"echo CHAT-EXITED-$?; sleep 60"
    )
    try:
        tmux.wait_for("/help for commands")
        tmux.send("What is 2 + 2?")
        time.sleep(1.0)
        tmux.key("C-c")
        tmux.wait_for("stopped", timeout=15)
        tmux.send("/samples 5")
        tmux.wait_for("samples = 5")
        tmux.key("C-d")
        tmux.wait_for("CHAT-EXITED-0")
    finally:
        tmux.close()
        slow.stop()
