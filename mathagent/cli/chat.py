"""`mathagent chat`: the command; the session itself lives in chat_repl
(imported only when the command runs, to keep every other command's start fast)."""

from __future__ import annotations

from mathagent.cli.common import check_pool
from mathagent.cli.options import (
    EngineFlags,
    LeanFlags,
    MaxTokensOpt,
    PoolOpt,
    RoundsOpt,
    SamplesOpt,
    SearchFlags,
    flag_groups,
)

HELP = """Talk to mathagent: ask a question and see the worked solution, the Lean statement and proof, and \
whether Lean verified it.

Commands: /prove STATEMENT-OR-QUESTION, /verify (paste Lean, end with a line `/end`), /retry, /samples N, \
/rounds N, /model, /lean (the last proof file), /save FILE, /help, /quit. Ctrl-C stops the current attempt; \
Ctrl-D or /quit leaves.
"""


@flag_groups
def chat(
    rounds: RoundsOpt = 3,
    samples: SamplesOpt = 2,
    max_tokens: MaxTokensOpt = 1024,
    search: SearchFlags = SearchFlags(),
    engine: EngineFlags = EngineFlags(),
    pool: PoolOpt = None,
    lean: LeanFlags = LeanFlags(),
) -> None:
    from mathagent.cli import chat_repl

    check_pool(pool)
    settings, lake_project = lean.settings(engine=engine.overrides(), verify={"pool": pool})
    budget = search.budget(rounds=rounds, samples=samples, max_tokens=max_tokens)
    chat_repl.run(settings, lake_project, lean.header_file, budget)
