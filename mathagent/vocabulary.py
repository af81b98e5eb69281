"""The words mathagent's results are written in, defined once.

Statuses, verdicts, answer checks and the like are str-valued enums: a member
*is* its string (it compares, hashes and serializes as one), so JSON output
stays exactly what it was, while code names them instead of spelling them.
Reason codes are plain constants (`axiom:<name>` and `banned:<command>` are
built from their prefixes).

Everything imports this module; it imports nothing of mathagent's.
"""

from __future__ import annotations

from enum import Enum
from typing import Literal, NewType


class Word(str, Enum):
    """A str-valued enum whose members print as their value."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return str(self.value).__format__(spec)


class VerdictKind(Word):
    """What the verifier concluded about one submission."""

    VERIFIED = "verified"
    REJECTED = "rejected"
    TIMEOUT = "timeout"
    ERROR = "error"


class Status(Word):
    """What the agent achieved for one problem."""

    VERIFIED = "verified"  # a proof of the statement passed the verifier
    UNVERIFIED = "unverified"  # a statement, but no verified proof within the budget
    ANSWERED = "answered"  # a natural-language answer only (no statement to prove)
    BAD_STATEMENT = "bad_statement"  # the statement does not elaborate
    ERROR = "error"  # the row, the model or Lean failed


class AnswerCheck(Word):
    """How far a natural-language answer can be trusted."""

    CHECKED = "answer checked"  # sympy computed the same value on its own
    DISAGREES = "answer disagrees"  # sympy computed another value
    NOT_CHECKED = "not checked"


class StatementSource(Word):
    GIVEN = "given"
    AUTOFORMALIZED = "autoformalized"


class ErrorKind(Word):
    INPUT = "input"  # the row itself is bad: redoing it gives the same error
    MODEL = "model"  # the model failed: a resumed batch retries it


class PromptKind(Word):
    """The prompt templates (`prompts/<kind>.toml`); an attempt records the one it came from."""

    SOLVE = "solve"  # a natural-language solution with a boxed answer
    SOLVE_COT = "solve_cot"  # the question alone, as InternLM2-Math was tuned on
    FORMALIZE = "formalize"  # a Lean statement of the problem
    PROVE = "prove"  # a whole Lean proof
    REPAIR = "repair"  # a proof again, with Lean's errors
    TACTIC = "tactic"  # one tactic for a goal state


class Pool(Word):
    """How checks reach Lean."""

    COLD = "cold"  # a fresh `lean --json` per check
    WARM = "warm"  # language servers that keep headers elaborated


class SandboxMode(Word):
    """The sandbox asked for (`--sandbox`)."""

    AUTO = "auto"  # bubblewrap where it works, else rlimits only
    BWRAP = "bwrap"
    NONE = "none"


class SessionBackend(Word):
    """What runs a tactic search's proof session (`[verify] session_backend`)."""

    SERVER = "server"  # the Lean language server mathagent drives for checks (every Lean has it)
    LEANINTERACT = "leaninteract"  # the Lean REPL's tactic mode, as LeanInteract builds it (optional extra)


class SandboxKind(Word):
    """The sandbox a check actually ran in."""

    BWRAP = "bwrap"
    RLIMITS = "rlimits"  # resource limits only
    NOT_RUN = "not run"  # decided without Lean


class EngineKind(Word):
    """Which engine generates (`--engine`); `auto` decides from the settings and the machine."""

    AUTO = "auto"
    TORCH = "torch"  # plain PyTorch on the CPU
    VLLM = "vllm"  # in-process vLLM
    OPENAI = "openai"  # an OpenAI-compatible server


class Device(Word):
    """Where a model runs."""

    GPU = "gpu"
    CPU = "cpu"
    SERVER = "server"  # behind an OpenAI-compatible endpoint


class StrategyKind(Word):
    """How the agent proves a statement (`--strategy`)."""

    WHOLE = "whole"  # whole proofs sampled, checked and repaired
    TACTIC = "tactic"  # best-first search over Lean's goal states
    BOTH = "both"  # whole proofs first, then the search from the best failed one


class SearchStop(Word):
    """Why a tactic search ended."""

    PROVED = "proved"
    EXHAUSTED = "exhausted"  # no open state left
    EXPANSIONS = "expansions"  # the budgets:
    TIME = "time"
    TOKENS = "tokens"


# The same words as config files and flags take them (pydantic checks TOML strictly,
# where an enum field would refuse the plain word); a test keeps both spellings equal.
PoolName = Literal["cold", "warm"]
SandboxModeName = Literal["auto", "bwrap", "none"]
EngineKindName = Literal["auto", "torch", "vllm", "openai"]
StrategyName = Literal["whole", "tactic", "both"]
SessionBackendName = Literal["server", "leaninteract"]


# ---------------------------------------------------------------- reason codes

# Why a verdict is not `verified`: a word of its own type, so that a reason is never an
# arbitrary string. `axiom:<name>` and `banned:<command>` are built by `axiom_reason` and
# `banned_reason` from the prefixes.
Reason = NewType("Reason", str)


LEAN_ERROR = Reason("lean_error")
SORRY = Reason("sorry")
AXIOM_PREFIX = "axiom:"
BANNED_PREFIX = "banned:"
STATEMENT_CHANGED = Reason("statement_changed")
THEOREM_MISSING = Reason("theorem_missing")
HEADER_CHANGED = Reason("header_changed")
CHECKS_MISSING = Reason("checks_missing")
FORGED_OUTPUT = Reason("forged_output")
BAD_STATEMENT = Reason("bad_statement")
BAD_HEADER = Reason("bad_header")
BAD_INPUT = Reason("bad_input")
HEADER_AXIOM = Reason("header_axiom")  # an allowed axiom's name declared by the task's header
FAKE_AXIOM = Reason("fake_axiom")  # an allowed axiom's name declared by the submission, or not the canonical one
KERNEL_BUILTIN = Reason("kernel_builtin")  # the checked file declares `Nat.add` & co. (see verify.kernel_builtins)
TOO_LARGE = Reason("too_large")
TIMEOUT = Reason("timeout")
MEMORY = Reason("memory")
CRASH = Reason("crash")
NO_PROOF = Reason("no_proof")  # the model's output held no Lean code to check


def axiom_reason(name: str) -> Reason:
    """The reason for depending on the axiom `name` (its full name)."""
    return Reason(AXIOM_PREFIX + name)


def banned_reason(command: str) -> Reason:
    """The reason for using the banned command `command`."""
    return Reason(BANNED_PREFIX + command)
