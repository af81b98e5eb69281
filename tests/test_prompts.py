"""Every prompt template loads, renders, and asks for what its task needs."""

from __future__ import annotations

import pytest

from mathagent import prompts
from mathagent.errors import ConfigError


@pytest.mark.parametrize("name", prompts.NAMES)
def test_each_prompt_loads_and_renders(name: str) -> None:
    template = prompts.load(name)
    assert template.description
    values = {v: f"<{v}>" for v in template.variables}
    [message] = template.render(**values)
    assert message.role == "user"  # InternLM2: no system prompt
    for v in template.variables:
        assert f"<{v}>" in message.content
    assert "$" not in message.content.replace("$$", "")


def test_prompts_carry_the_tasks_inputs() -> None:
    assert prompts.load("solve").variables == {"problem"}
    assert "\\boxed{}" in prompts.render("solve", problem="1+1")[0].content
    assert prompts.load("prove").variables == {"header", "statement"}
    assert prompts.load("repair").variables == {"code", "errors"}
    assert prompts.load("formalize").variables >= {"problem", "answer"}
    tactic = prompts.render("tactic", state="⊢ 1 + 1 = 2\n")[0].content
    assert tactic.startswith("My LEAN 4 state is:\n```lean\n⊢ 1 + 1 = 2\n```")


def test_every_template_file_is_a_prompt_kind_and_every_kind_has_one() -> None:
    from pathlib import Path

    files = {p.stem for p in (Path(__file__).resolve().parent.parent / "prompts").glob("*.toml")}
    assert files == set(prompts.NAMES)


def test_lean_braces_need_no_escaping() -> None:
    statement = "theorem t (s : Finset ℕ) : ∑ i in s, (0 : ℕ) = 0 := by sorry -- {braces}"
    content = prompts.render("prove", header="import Mathlib", statement=statement)[0].content
    assert statement in content


def test_missing_values_and_unknown_templates() -> None:
    with pytest.raises(ValueError, match="needs problem"):
        prompts.render("solve")
    with pytest.raises(ConfigError, match="no prompt template"):
        prompts.load("nonexistent")
