"""What every command shares: settings from flags, and a flag for tracebacks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mathagent.config import Settings, load_settings
from mathagent.project import find_project


@dataclass
class _State:
    debug: bool = False


state = _State()


def settings_from_flags(lean: Path | None = None, project: Path | None = None, **overrides: object) -> tuple[Settings, Path | None]:
    """Config files and env, then flags on top; and the Lake project to use."""
    settings = load_settings()
    if lean is not None:
        settings = settings.with_overrides(lean=lean.expanduser(), lean_origin="--lean")
    settings = settings.with_overrides(project=project, **overrides)
    return settings, find_project(Path.cwd(), settings.project)
