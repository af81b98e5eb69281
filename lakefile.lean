import Lake
open Lake DSL

-- The Lake project mathagent checks proofs in. Lean and Mathlib are pinned to
-- the v4.9.0 release: the Lean 4 / Mathlib generation that InternLM2-Math-Plus,
-- DeepSeek-Prover-V1.5 and the Lean-Workbook / miniF2F datasets were written
-- against (see README, "Why Lean v4.9.0").
package mathagent

require mathlib from git
  "https://github.com/leanprover-community/mathlib4.git" @ "v4.9.0"

@[default_target]
lean_lib MathAgent where
  srcDir := "lean"
