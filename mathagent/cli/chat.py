"""`mathagent chat`: the command; the session itself lives in chat_repl
(imported only when the command runs, to keep every other command's start fast)."""

from __future__ import annotations

from mathagent.cli.common import (
    ApiKeyOpt,
    BaseUrlOpt,
    CandidatesOpt,
    EngineOpt,
    ExpansionsOpt,
    HeaderFileOpt,
    LeanOpt,
    MaxTokensOpt,
    ModelOpt,
    PoolOpt,
    ProjectOpt,
    RoundsOpt,
    SamplesOpt,
    StrategyOpt,
    check_engine,
    check_pool,
    settings_from_flags,
)
from mathagent.vocabulary import StrategyKind

HELP = """Talk to mathagent: ask a question and see the worked solution, the Lean statement and proof, and \
whether Lean verified it.

Commands: /prove STATEMENT-OR-QUESTION, /verify (paste Lean, end with a line `/end`), /retry, /samples N, \
/rounds N, /model, /lean (the last proof file), /save FILE, /help, /quit. Ctrl-C stops the current attempt; \
Ctrl-D or /quit leaves.
"""


def chat(
    rounds: RoundsOpt = 3,
    samples: SamplesOpt = 2,
    max_tokens: MaxTokensOpt = 1024,
    strategy: StrategyOpt = StrategyKind.WHOLE,
    expansions: ExpansionsOpt = 64,
    candidates: CandidatesOpt = 8,
    engine: EngineOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    pool: PoolOpt = None,
    lean: LeanOpt = None,
    project: ProjectOpt = None,
    header_file: HeaderFileOpt = None,
) -> None:
    from mathagent.agent.budget import Budget
    from mathagent.cli import chat_repl

    check_engine(engine)
    check_pool(pool)
    settings, lake_project = settings_from_flags(
        lean,
        project,
        engine={"kind": engine, "model": model, "base_url": base_url, "api_key": api_key},
        verify={"pool": pool},
    )
    budget = Budget(
        rounds=rounds,
        samples=samples,
        max_tokens=max_tokens,
        strategy=strategy,
        expansions=expansions,
        candidates=candidates,
    )
    chat_repl.run(settings, lake_project, header_file, budget)
