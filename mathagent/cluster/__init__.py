"""Running batch, eval and verify on a Ray cluster.

Lean checks go to one `LeanNode` actor per node that has a usable Lean
(found on that node by the usual rules), sized by the node's CPUs, each
with its own warm pool; `RayChecker` routes checks to them by header, so
warm servers are reused, and re-runs elsewhere whatever a lost node had in
flight. Generation goes to `EngineReplica` actors behind `RayEngine`. The
driver stays the only writer of the results file, so resuming works as on
one machine.

    from mathagent.cluster import RayChecker, connect

    with connect("auto"):
        async with RayChecker(settings, options) as checker:
            async for index, verdict in checker.verify_many(tasks):
                ...

Nothing here imports Ray until a cluster is used (the names below load
their modules on first use): `pip install 'mathagent[ray]'` adds it, and
without it nothing changes.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mathagent.cluster.errors import ClusterError

if TYPE_CHECKING:
    from mathagent.cluster.checker import RayChecker
    from mathagent.cluster.engine import RayEngine
    from mathagent.cluster.session import connect

__all__ = ["ClusterError", "RayChecker", "RayEngine", "connect"]

_LAZY = {
    "RayChecker": "mathagent.cluster.checker",
    "RayEngine": "mathagent.cluster.engine",
    "connect": "mathagent.cluster.session",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
