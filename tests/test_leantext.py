"""Lexing and statement handling the audit relies on."""

from __future__ import annotations

import pytest

from mathagent.verify.leantext import declared_theorems, join_proof, mask, namespace_at_end, parse_statement


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


def test_mask_without_literals_keeps_strings() -> None:
    assert '"abc"' in mask('def s := "abc" -- c', literals=False)


@pytest.mark.parametrize(
    ("statement", "name", "head_end"),
    [
        ("theorem foo (x : Nat) : x = x := by sorry", "foo", ":= by"),
        ("theorem foo (x : Nat) : x = x := by\n", "foo", ":= by"),
        ("lemma bar : True :=", "bar", ":="),
        ("/-- doc with theorem inside -/\ntheorem mathd_algebra_478 (b h v : ℝ) :\n  v = 65 := by sorry", "mathd_algebra_478", ":= by"),
        ("theorem sorry_free : True := sorry -- trailing comment", "sorry_free", ":="),
    ],
)
def test_parse_statement(statement: str, name: str, head_end: str) -> None:
    parsed = parse_statement(statement)
    assert parsed.name == name
    assert parsed.head.endswith(head_end)
    assert not mask(parsed.head).rstrip().endswith("sorry")


@pytest.mark.parametrize(
    "bad",
    ["def foo : Nat := 1", "theorem foo : True", "theorem a : True := by sorry\ntheorem b : True := by sorry", "example : True := trivial"],
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


def test_declared_theorems_follow_namespaces() -> None:
    src = "namespace A\ntheorem x : True := trivial\nsection\nlemma y : True := trivial\nend\nend A\ntheorem _root_.z : True := trivial\ntheorem w : True := trivial\n-- theorem commented : True := trivial\n"
    assert [n for n, _ in declared_theorems(src)] == ["A.x", "A.y", "z", "w"]


def test_namespace_at_end() -> None:
    assert namespace_at_end("import Mathlib\nnamespace Foo\nsection\nend\n") == ["Foo"]
    assert namespace_at_end("namespace Foo\nend Foo\n") == []
