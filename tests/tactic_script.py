"""The scripted model the strategy tests share: a whole proof that fails on the
prelude Lean (`exact` is Init's), and tactics for the states of `STATEMENT`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scripted_server import Rule, ScriptedServer

STATEMENT = "theorem two_imp : Eq two two → Eq four four → Eq two two :="
WHOLE = "```lean4\ntheorem two_imp : Eq two two → Eq four four → Eq two two := by\n  intro | h => ?_\n  exact h\n```"


def tactic_rules() -> list[Rule]:
    return [
        Rule(r"Complete the following Lean 4 code", [WHOLE]),
        Rule(r"Lean reports these errors", [WHOLE]),
        # after `intro | h`: a second intro (likelier by its log-probability) and an unknown tactic
        Rule(r"⊢ Eq four four → Eq two two\n```", ["intro | k => ?_", "exact h"], [-0.3, -0.1]),
        Rule(r"⊢ Eq two two → Eq four four → Eq two two\n```", ["intro | h => ?_"]),
    ]


@pytest.fixture(name="server")
def tactic_server() -> Iterator[ScriptedServer]:
    """The `server` fixture of the strategy tests: `tactic_rules` over real HTTP."""
    server = ScriptedServer(tactic_rules())
    server.start()
    yield server
    server.stop()
