"""The Lake project mathagent checks proofs in, and its default header."""

from __future__ import annotations

from pathlib import Path

HEADER_MODULE = Path("lean") / "MathAgent" / "Header.lean"

# Used only when no Lake project can be found (e.g. an installed wheel run
# outside a checkout); the project's `lean/MathAgent/Header.lean` is the source
# of truth and says the same.
FALLBACK_HEADER = (
    "import Mathlib\nimport Aesop\n\nset_option maxHeartbeats 400000\n\nopen BigOperators Real Nat Topology Rat\n"
)


def find_project(start: Path, explicit: Path | None = None) -> Path | None:
    """The Lake project root: `explicit`, else the nearest folder up from `start`
    with a `lakefile.lean`, else the checkout this package was installed from."""
    if explicit is not None:
        return explicit
    for folder in (start, *start.parents):
        if (folder / "lakefile.lean").is_file() or (folder / "lakefile.toml").is_file():
            return folder
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "lakefile.lean").is_file():
        return checkout
    return None


def default_header(project: Path | None) -> str:
    """The header tasks get when they name none."""
    if project is not None:
        module = project / HEADER_MODULE
        if module.is_file():
            return module.read_text(encoding="utf-8")
    return FALLBACK_HEADER
