"""Autoformalization: an informal problem (and its answer, if one was found)
stated in Lean by the model."""

from __future__ import annotations

import re
import time

from mathagent import prompts
from mathagent.agent.extract import statement_from_output
from mathagent.agent.records import Problem, Result
from mathagent.engines.base import Engine
from mathagent.vocabulary import PromptKind


async def formalize(engine: Engine, problem: Problem, result: Result) -> str | None:
    """The model's statement of `problem` (with `result.answer` put into it), or
    None when it wrote none; its time and tokens are added to `result`."""
    name = "mathagent_" + re.sub(r"\W+", "_", problem.id).strip("_")
    chat = prompts.render(PromptKind.FORMALIZE, problem=problem.informal or "", answer=result.answer or "", name=name)
    template = prompts.load(PromptKind.FORMALIZE)
    t0 = time.monotonic()
    [[sample]] = await engine.generate([chat], template.default_sampling())
    result.model_s += time.monotonic() - t0
    result.prompt_tokens += sample.prompt_tokens
    result.completion_tokens += sample.completion_tokens
    return statement_from_output(sample.text)
