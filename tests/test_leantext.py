"""Statement handling and the trusted-header facts the assembly relies on."""

from __future__ import annotations

import pytest

from mathagent.verify.leantext import (
    header_namespaces,
    imports_modules,
    join_proof,
    module_header,
    parse_statement,
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
    assert header_namespaces("import Mathlib\nnamespace Foo\nsection\nend\n") == ["Foo"]
    assert header_namespaces("namespace Foo\nend Foo\n") == []
    assert header_namespaces("namespace A.B\nnoncomputable section\nend\nend B\n") == ["A"]
    assert header_namespaces("namespace «x y» -- note\n/- namespace Z -/\n") == ["x y"]
    assert header_namespaces("prelude namespace A mutual end") == ["A"]


def test_module_header_is_read_with_comments_in_any_number() -> None:
    comments = "/- a -/\n" * 40
    text = comments + "prelude\nimport Foo -- why\nimport Bar.Baz\ntheorem x : True := trivial\n"
    assert module_header(text) == comments + "prelude\nimport Foo -- why\nimport Bar.Baz\n"
    assert imports_modules(text) and not imports_modules("prelude\ntheorem x : True := trivial\n")
    assert module_header("theorem x : True := trivial") == ""
