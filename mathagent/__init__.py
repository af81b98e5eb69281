"""mathagent: math answers you can trust because Lean checked them."""

from mathagent.errors import (
    ConfigError,
    InputError,
    MathAgentError,
    ToolchainError,
    VerifierError,
)
from mathagent.verify.tasks import VerifyTask
from mathagent.verify.toolchain import LeanSearch, LeanToolchain, find_lean
from mathagent.verify.verdict import Diagnostic, Verdict
from mathagent.verify.verifier import Verifier, VerifyOptions, verify_tasks

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "Diagnostic",
    "InputError",
    "LeanSearch",
    "LeanToolchain",
    "MathAgentError",
    "ToolchainError",
    "Verdict",
    "Verifier",
    "VerifierError",
    "VerifyOptions",
    "VerifyTask",
    "__version__",
    "find_lean",
    "verify_tasks",
]
