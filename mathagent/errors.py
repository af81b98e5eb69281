"""One error hierarchy for everything mathagent reports to a person.

Lean diagnostics are data (see `verify.verdict`), never exceptions: these
classes are for set-up and usage problems that stop a command.
"""

from __future__ import annotations


class MathAgentError(Exception):
    """Root of every error mathagent raises on purpose."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class ConfigError(MathAgentError):
    """A configuration file, flag or environment variable is invalid."""


class InputError(MathAgentError):
    """An input file cannot be read at all (missing, unreadable)."""


class ToolchainError(MathAgentError):
    """No usable Lean toolchain, or it cannot be started."""


class VerifierError(MathAgentError):
    """The verifier itself failed (not the proof being checked)."""


class SetupError(MathAgentError):
    """`mathagent lean setup` cannot install or build what it needs."""
