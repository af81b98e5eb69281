"""The cluster's error, and Ray imported only where a cluster is used."""

from __future__ import annotations

from types import ModuleType

from mathagent.errors import MathAgentError

INSTALL_HINT = "pip install 'mathagent[ray]'   # the same Ray and Python on every node"
START_HINT = (
    "start a cluster with `ray start --head` on one node and `ray start --address HEAD:6379` on the others, "
    "then pass --ray auto on the head (or --ray HEAD:6379); a bare --ray starts a local one"
)


class ClusterError(MathAgentError):
    """Ray is missing, or the cluster cannot be reached or used."""


def import_ray() -> ModuleType:
    """The `ray` module, or a ClusterError that says how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ClusterError(f"--ray needs Ray, which is not installed ({exc})", hint=INSTALL_HINT) from exc
    return ray
