"""Prompt templates: data files in `prompts/`, one per task, rendered to chats.

Each `prompts/<name>.toml` has a `description`, a `template` with `$name`
placeholders (string.Template, so Lean's braces need no escaping) and
optional `[sampling]` defaults. The chat format itself (InternLM2's
`<|im_start|>`/`<|im_end|>`, no system prompt) is the engine's business.
"""

from __future__ import annotations

import re
import string
import sys
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from mathagent.engines.base import Chat, Message, Sampling
from mathagent.errors import ConfigError
from mathagent.vocabulary import PromptKind

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

NAMES: tuple[str, ...] = tuple(PromptKind)


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    description: str
    template: string.Template
    sampling: dict[str, Any] = field(default_factory=dict)

    @property
    def variables(self) -> set[str]:
        return set(re.findall(r"(?<!\$)\$\{?([_a-zA-Z][_a-zA-Z0-9]*)", self.template.template))

    def default_sampling(self, **overrides: Any) -> Sampling:
        """Sampling settings from the template's `[sampling]` table, then `overrides`."""
        values: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in {**self.sampling, **overrides}.items()
        }
        return Sampling(**values)

    def render(self, **values: str) -> Chat:
        """The user turn for these values; every placeholder must be given."""
        missing = self.variables - values.keys()
        if missing:
            raise ValueError(f"prompt {self.name!r} needs {', '.join(sorted(missing))}")
        return [Message("user", self.template.substitute(values))]


def _template_source(name: str) -> tuple[str, str]:
    """(text, where) of template `name`: `prompts/` of the checkout, else the
    copy installed with the package."""
    checkout = Path(__file__).resolve().parent.parent / "prompts" / f"{name}.toml"
    if checkout.parent.is_dir():
        return checkout.read_text(encoding="utf-8"), str(checkout)
    installed = resources.files("mathagent.prompt_templates").joinpath(f"{name}.toml")
    return installed.read_text(encoding="utf-8"), f"mathagent/prompt_templates/{name}.toml"


@cache
def load(name: str) -> PromptTemplate:
    try:
        text, path = _template_source(name)
    except (FileNotFoundError, OSError) as exc:
        raise ConfigError(f"no prompt template named {name!r}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"prompt template {path} is not valid TOML: {exc}") from exc
    template = data.get("template")
    if not isinstance(template, str) or not template.strip():
        raise ConfigError(f"prompt template {path} has no `template` text")
    return PromptTemplate(
        name=name,
        description=str(data.get("description", "")),
        template=string.Template(template.strip("\n")),
        sampling=dict(data.get("sampling", {})),
    )


def render(template: str, /, **values: str) -> Chat:
    """The chat for prompt `template` with `values` (positional-only, so a
    template may have a `$name` placeholder)."""
    return load(template).render(**values)
