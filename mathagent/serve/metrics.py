"""Counters the service keeps, written out in Prometheus' text format.

Kept by hand (a few counters and one histogram) rather than with a client
library: nothing to install, and the numbers are read where they live.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping

from mathagent.vocabulary import VerdictKind

# seconds: a warm prelude check takes milliseconds, a cold Mathlib one seconds to minutes
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ServiceCounters:
    """Checks by verdict, their latency, and HTTP responses by status code."""

    def __init__(self) -> None:
        self.checks: Counter[str] = Counter()
        self.responses: Counter[int] = Counter()
        self._buckets = [0] * len(LATENCY_BUCKETS)
        self._count = 0
        self._sum = 0.0

    def check_done(self, verdict: str, seconds: float) -> None:
        self.checks[verdict] += 1
        self._count += 1
        self._sum += seconds
        for index, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                self._buckets[index] += 1

    def response(self, status: int) -> None:
        self.responses[status] += 1

    def render(self, gauges: Mapping[str, tuple[str, float]]) -> str:
        """The text exposition: these counters, then `gauges` (name -> (help, value)) read at scrape time."""
        lines = [
            "# HELP mathagent_checks_total Checks finished, by verdict.",
            "# TYPE mathagent_checks_total counter",
        ]
        for verdict in sorted({*VerdictKind, *self.checks}):
            lines.append(f'mathagent_checks_total{{verdict="{verdict}"}} {self.checks[verdict]}')
        lines += [
            "# HELP mathagent_check_seconds Time from a check's admission to its verdict.",
            "# TYPE mathagent_check_seconds histogram",
        ]
        for bound, count in zip(LATENCY_BUCKETS, self._buckets, strict=True):
            lines.append(f'mathagent_check_seconds_bucket{{le="{bound:g}"}} {count}')
        lines += [
            f'mathagent_check_seconds_bucket{{le="+Inf"}} {self._count}',
            f"mathagent_check_seconds_sum {_number(self._sum)}",
            f"mathagent_check_seconds_count {self._count}",
            "# HELP mathagent_http_responses_total HTTP responses, by status code.",
            "# TYPE mathagent_http_responses_total counter",
        ]
        for status in sorted(self.responses):
            lines.append(f'mathagent_http_responses_total{{code="{status}"}} {self.responses[status]}')
        for name, (help_text, value) in gauges.items():
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {_number(value)}"]
        return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    if isinstance(value, int) or (math.isfinite(value) and value == int(value)):
        return str(int(value))
    return repr(float(value))
