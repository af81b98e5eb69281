"""The Lean verifier: assemble, sandbox, run, audit, judge."""
