-- Compiles without a single error, yet proves nothing: the "proof" rests
-- on an axiom the file adds. mathagent rejects it (banned:axiom).
prelude
universe u

inductive Eq {α : Sort u} : α → α → Prop where
  | refl (a : α) : Eq a a

inductive N where
  | z : N
  | s (n : N) : N

axiom zero_eq_one : Eq N.z (N.s N.z)

theorem zero_is_one : Eq N.z (N.s N.z) := zero_eq_one
