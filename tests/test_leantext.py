"""Statement handling, the trusted-header facts the assembly relies on, and
the Lean read out of model output (blocks, proofs, statements, conclusions)."""

from __future__ import annotations

import random
import re
import time

import pytest

from mathagent.verify.leantext import (
    conclusion_value,
    fences,
    first_statement,
    header_namespaces,
    imports_modules,
    join_proof,
    last_lean_block,
    module_header,
    parse_statement,
    proof_after_statement,
)
from mathagent.verify.lexer import mask


def test_mask_blanks_comments_and_strings_but_keeps_lines() -> None:
    src = 'theorem a : True := trivial -- axiom here\n/- #exit\n nested /- axiom -/ -/\ndef s := "axiom"\n'
    masked = mask(src)
    assert len(masked) == len(src)
    assert masked.count("\n") == src.count("\n")
    assert "axiom" not in masked and "#exit" not in masked
    assert masked.startswith("theorem a : True := trivial")


def test_mask_leaves_primes_in_names_alone() -> None:
    src = "theorem h' (x' : Nat) : x' = x' := rfl -- 'a'"
    assert mask(src).startswith("theorem h' (x' : Nat) : x' = x' := rfl")


def test_mask_reads_doc_comments_as_lean_does() -> None:
    # `/--/` opens a doc comment (it is not `/-` closed by `-/`): the axiom is code
    src = '/--/ " -/\naxiom propext : False -- "\n'
    assert "axiom propext : False" in mask(src)


@pytest.mark.parametrize(
    ("statement", "name", "head_end"),
    [
        ("theorem foo (x : Nat) : x = x := by sorry", "foo", ":= by"),
        ("theorem foo (x : Nat) : x = x := by\n", "foo", ":= by"),
        ("lemma bar : True :=", "bar", ":="),
        (
            "/-- doc with theorem inside -/\ntheorem mathd_algebra_478 (b h v : ℝ) :\n  v = 65 := by sorry",
            "mathd_algebra_478",
            ":= by",
        ),
        ("theorem sorry_free : True := sorry -- trailing comment", "sorry_free", ":="),
        ("theorem commented : True := -- the proof goes here", "commented", ":="),
        ("theorem N.addtt (n : N) : Eq n n :=", "N.addtt", ":="),
        ("theorem «x y».t : True := by sorry", "«x y».t", ":= by"),
        ("theorem foo' : True :=", "foo'", ":="),
    ],
)
def test_parse_statement(statement: str, name: str, head_end: str) -> None:
    parsed = parse_statement(statement)
    assert parsed.name == name
    assert parsed.head.endswith(head_end)
    assert not parsed.head.rstrip().endswith("sorry")


def test_universe_parameters_are_not_part_of_the_name() -> None:
    parsed = parse_statement("theorem t.{v} (α : Sort v) (a : α) : Eq a a :=")
    assert (parsed.name, parsed.universes) == ("t", ".{v}")
    assert parsed.signature == " (α : Sort v) (a : α) : Eq a a "


def test_the_open_in_prefix_is_kept_and_modifiers_are_not() -> None:
    parsed = parse_statement("open N in\n/-- doc -/ @[simp] private theorem t : True :=")
    assert parsed.prefix.strip() == "open N in"
    assert parse_statement("theorem t : True :=").prefix == ""


@pytest.mark.parametrize(
    "bad",
    [
        "def foo : Nat := 1",
        "theorem foo : True",
        "theorem a : True := by sorry\ntheorem b : True := by sorry",
        "example : True := trivial",
        "theorem t : True := trivial",
    ],
)
def test_parse_statement_rejects_non_statements(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_statement(bad)


def test_signature_is_what_lies_between_name_and_final_assign() -> None:
    parsed = parse_statement("theorem t (n : Nat) (h : let k := n; k = n) :\n  n = n := by sorry")
    assert parsed.signature == " (n : Nat) (h : let k := n; k = n) :\n  n = n "


def test_join_proof_variants() -> None:
    by_stmt = parse_statement("theorem t : True := by sorry")
    assert join_proof(by_stmt, "\n  trivial") == "theorem t : True := by\n  trivial"
    assert join_proof(by_stmt, "trivial") == "theorem t : True := by\n  trivial"
    assert join_proof(by_stmt, "by\n  trivial") == "theorem t : True := by\n  trivial"
    term_stmt = parse_statement("theorem t : True :=")
    assert join_proof(term_stmt, "trivial") == "theorem t : True := trivial"
    assert join_proof(term_stmt, "by trivial") == "theorem t : True := by trivial"


def test_a_trailing_comment_cannot_swallow_the_proof() -> None:
    joined = join_proof(parse_statement("theorem t : True := -- to do"), " trivial")
    assert joined == "theorem t : True := trivial"


def test_header_namespaces_follow_lean_scopes() -> None:
    assert header_namespaces("import Mathlib\nnamespace Foo\nsection\nend\n") == ("Foo",)
    assert header_namespaces("namespace Foo\nend Foo\n") == ()
    assert header_namespaces("namespace A.B\nnoncomputable section\nend\nend B\n") == ("A",)
    assert header_namespaces("namespace «x y» -- note\n/- namespace Z -/\n") == ("x y",)
    assert header_namespaces("prelude namespace A mutual end") == ("A",)


def test_module_header_is_read_with_comments_in_any_number() -> None:
    comments = "/- a -/\n" * 40
    text = comments + "prelude\nimport Foo -- why\nimport Bar.Baz\ntheorem x : True := trivial\n"
    assert module_header(text) == comments + "prelude\nimport Foo -- why\nimport Bar.Baz\n"
    assert imports_modules(text) and not imports_modules("prelude\ntheorem x : True := trivial\n")
    assert module_header("theorem x : True := trivial") == ""


# ---------------------------------------------------------------- model output

LEAN_OUTPUTS = [
    (
        "Here is the proof:\n```lean4\ntheorem t : 1 + 1 = 2 := by\n  norm_num\n```\nDone.",
        "theorem t : 1 + 1 = 2 := by\n  norm_num",
    ),
    (
        "```lean\nexample : True := trivial\n```\nbetter:\n```lean\ntheorem t : True := trivial\n```",
        "theorem t : True := trivial",
    ),
    ("```\ntheorem t : True := by\n  trivial\n```", "theorem t : True := by\n  trivial"),
    ("```python\nprint(1)\n```", None),
    ("The proof:\ntheorem t : True := by\n  trivial", "theorem t : True := by\n  trivial"),
    ("```lean4\ntheorem t : True := by\n  trivial", "theorem t : True := by\n  trivial"),  # cut off by max_tokens
]


@pytest.mark.parametrize(("output", "code"), LEAN_OUTPUTS)
def test_last_lean_block(output: str, code: str | None) -> None:
    assert last_lean_block(output) == code


def test_proof_after_a_restated_statement() -> None:
    statement = "theorem mathd_algebra_10 : abs ((120 : ℝ) / 100 * 30 - 130 / 100 * 20) = 10 := by sorry"
    code = (
        "import Mathlib\nimport Aesop\nset_option maxHeartbeats 400000\nopen BigOperators Real Nat Topology Rat\n\n"
        "/-- The answer is 10. -/\ntheorem mathd_algebra_10 : abs ((120 : ℝ) / 100 * 30 - 130 / 100 * 20) = 10 := by\n"
        "  norm_num [abs_of_nonneg]\n"
    )
    assert proof_after_statement(code, statement) == "\n  norm_num [abs_of_nonneg]\n"


def test_proof_without_restatement_is_the_code_itself() -> None:
    assert proof_after_statement("  simp", "theorem t : True := by sorry") == "  simp"


def test_proof_after_statement_skips_default_argument_assigns() -> None:
    statement = "theorem t (n : ℕ := 3) : n = n := by"
    assert proof_after_statement("theorem t (n : ℕ := 3) : n = n := by\n  rfl", statement) == "\n  rfl"


# the fence pattern extraction used before, kept as the oracle: same blocks, but quadratic on fence lines
_OLD_FENCE = re.compile(r"```[ \t]*(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)(?:```|\Z)", re.S)


def test_fences_match_the_old_pattern_on_generated_text() -> None:
    pieces = ["`", "``", "```", "````", "\n", " ", "\t", "lean", "lean4", "a", "+", "-", "é", "x y", "\r"]
    rng = random.Random(7)
    for _ in range(20000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 25)))
        found = [(f.lang, f.body, f.start, f.end) for f in fences(text)]
        assert found == [(m["lang"], m["body"], m.start(), m.end()) for m in _OLD_FENCE.finditer(text)], text


@pytest.mark.timeout(30)
def test_lean_block_extraction_is_one_pass_on_1mb_of_fence_lines() -> None:
    # "```a" repeated: the old pattern retried every fence to the end of the line (7 s at 160 kB)
    assert last_lean_block("```a" * 250_000) is None
    assert last_lean_block("```lean\n" + "a" * 1_000_000) == "a" * 1_000_000
    # one fence line of 1 MB labelled `a`, not Lean: its block is not taken
    assert last_lean_block("```a" * 250_000 + "\ntheorem t : True := trivial\n```") is None
    assert last_lean_block("```a" * 250_000 + "\n```\n```lean\ntheorem t : True := trivial\n```") == (
        "theorem t : True := trivial"
    )


def test_a_comment_or_string_cannot_pose_as_the_restated_statement() -> None:
    statement = "theorem t : True := by sorry"
    code = "/- theorem t : True := by wrong -/\n-- theorem t : True := by wrong\ntheorem t : True := by\n  trivial"
    assert proof_after_statement(code, statement) == "\n  trivial"
    with_string = 'theorem t (s : String := ":= by") : True := by\n  trivial'
    assert proof_after_statement(with_string, 'theorem t (s : String := ":= by") : True := by sorry') == "\n  trivial"


def test_the_restated_statement_is_found_by_its_whole_name() -> None:
    statement = "theorem t : True := by sorry"
    code = "theorem t.aux : True := by\n  exact trivial\ntheorem «t» : True := by\n  trivial"
    assert proof_after_statement(code, statement) == "\n  trivial"
    assert proof_after_statement("theorem t : True := by_cases h", statement) == " by_cases h"  # `by_cases` is not `by`


@pytest.mark.parametrize(
    ("code", "statement"),
    [
        (
            "import Mathlib\n\ntheorem foo (x : ℝ) (h : x = 2) : x + 1 = 3 := by\n  sorry",
            "theorem foo (x : ℝ) (h : x = 2) : x + 1 = 3 :=",
        ),
        ("-- theorem fake : False :=\n/- lemma no : False := -/\nlemma yes : True := trivial", "lemma yes : True :="),
        ("theorem d (n : ℕ := 3) : n = 3 := rfl", "theorem d (n : ℕ := 3) : n = 3 :="),
        ("\t  theorem tab : True := trivial", "theorem tab : True :="),
        ("/- note -/ theorem after_comment : True :=", "theorem after_comment : True :="),
        ("example : True := trivial\nsee theorem inline : True := trivial", None),  # not at a line's start
        ("theorem unfinished : True", None),
        ("no lean here", None),
    ],
)
def test_first_statement(code: str, statement: str | None) -> None:
    assert first_statement(code) == statement


@pytest.mark.parametrize(
    ("code", "value"),
    [
        ("theorem root (x : ℝ) (h₀ : 2 * x + 3 = 9) : x = 3 := by linarith", "3"),
        ("theorem s : (∑ i in Finset.range 10, i) = 45 := by\n  decide", "45"),
        ("example : (2:ℝ) ^ 10 = 1024 := by norm_num", "1024"),
        ("theorem a : x = 1 := rfl\ntheorem b : y = 2 := rfl", "2"),  # the last theorem
        ("theorem c : x = 3 -- the answer\n  := rfl", "3"),  # a comment is not the value
        ("theorem d (n : ℕ := 3) : n = 4 := rfl", "4"),  # a default argument's `:=` does not end the statement
        ("theorem e : f (x := 1) = 2 := rfl", "2"),
        ("theorem f (h : a = b) : a ≤ b := h.le", None),  # no `=` in the conclusion
        ("theorem g : a >= 2 := sorry", None),
        ("theorem h : (fun x => x) 1 = 1 := rfl", "1"),
        ("-- theorem t : x = 5 :=", None),
        ("theorem i : x =", None),
    ],
)
def test_conclusion_value(code: str, value: str | None) -> None:
    assert conclusion_value(code) == value


def _adversarial(size: int) -> str:
    """Model output at its worst for a scanner: every construct opened and never
    closed, brackets without end, declarations without `:=`, in `size` characters."""
    parts = [
        "```lean\n",
        "theorem t (h : x = (1 : ℕ)) : x = " * (size // 200),
        "(" * (size // 6),
        "⟨[{" * (size // 20),
        ": = := " * (size // 40),
        "theorem\n" * (size // 50),
        "'" * (size // 20),
        "/-" * (size // 20),  # unterminated from here on: one comment to the end
        '"' * (size // 20),
    ]
    return "".join(parts)


@pytest.mark.timeout(120)
def test_model_output_readers_are_linear_on_1mb_of_adversarial_text() -> None:
    statement = "theorem t (h : x = (1 : ℕ)) : x = 1 := by sorry"
    readers = [
        lambda text: proof_after_statement(text, statement),
        first_statement,
        conclusion_value,
        last_lean_block,
    ]
    small, big = _adversarial(100_000), _adversarial(1_000_000)
    assert len(big) >= 1_000_000
    for read in readers:
        t0 = time.perf_counter()
        read(small)
        t1 = time.perf_counter()
        read(big)
        t2 = time.perf_counter()
        # linear: ten times the text, about ten times the time (quadratic would be a hundred)
        assert t2 - t1 < 30 * (t1 - t0) + 1.0, (read, t1 - t0, t2 - t1)


def test_top_level_tactics_of_a_by_block() -> None:
    from mathagent.verify.leantext import top_level_tactics

    proof = 'by\n  intro h\n  constructor\n  · simp\n    ring\n  -- done: -/ "\n  exact h.1'
    assert top_level_tactics(proof) == ["intro h", "constructor", '· simp\n  ring\n-- done: -/ "', "exact h.1"]
    assert top_level_tactics(" by simp [foo]\n") == ["simp [foo]"]
    assert top_level_tactics("\n  by\n    nlinarith [sq_nonneg (a - b),\n      sq_nonneg a]") == [
        "nlinarith [sq_nonneg (a - b),\n  sq_nonneg a]"
    ]
    assert top_level_tactics(" Eq.refl _") == []
    assert top_level_tactics("by\n  /- a\n  comment -/\n  simp\n  rfl") == ["simp", "rfl"]


def test_top_level_tactics_is_linear_on_a_megabyte() -> None:
    import time

    from mathagent.verify.leantext import top_level_tactics

    def timed(n: int) -> float:
        text = "by\n" + "  simp\n" * n
        started = time.perf_counter()
        assert len(top_level_tactics(text)) == n
        return time.perf_counter() - started

    small, large = timed(35_000), timed(140_000)  # about 1 MB
    assert large < 8 * small + 0.5  # 4x the text: about 4x the time, never 16x
