"""`mathagent eval`: benchmark runs, their numbers and their reports."""
