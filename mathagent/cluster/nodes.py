"""The cluster's nodes as the driver sees them, and settings as a node sees them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mathagent.cluster.errors import import_ray
from mathagent.config import Settings, load_settings

HEAD_RESOURCE = "node:__internal_head__"


@dataclass(frozen=True)
class NodeSpec:
    """One live node: where it is and what Ray says it has."""

    node_id: str
    host: str  # the address Ray reaches it at
    cpus: int
    gpus: int
    head: bool = False

    @property
    def short(self) -> str:
        """The node id as people read it (its first 8 hex digits, like `ray status`)."""
        return self.node_id[:8]


def alive_nodes() -> list[NodeSpec]:
    """Every live node of the connected cluster, the head last (it also runs the driver and Ray's own services)."""
    ray = import_ray()
    found = []
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        resources = node.get("Resources", {})
        found.append(
            NodeSpec(
                node_id=node["NodeID"],
                host=str(node.get("NodeManagerAddress") or node.get("NodeManagerHostname") or "?"),
                cpus=int(resources.get("CPU", 0)),
                gpus=int(resources.get("GPU", 0)),
                head=HEAD_RESOURCE in resources,
            )
        )
    return sorted(found, key=lambda n: (n.head, n.node_id))


def node_settings(driver: Settings) -> Settings:
    """The settings a node works with: the driver's limits and policy, with
    where things are on this node from its own environment and config files
    (MATHAGENT_LEAN, MATHAGENT_CACHE_DIR, `[lean]` in its mathagent.toml).
    A Lean named with --lean on the command line applies to every node."""
    here = load_settings()
    named = driver.lean_origin == "--lean"
    return driver.model_copy(
        update={
            "lean": driver.lean if named else here.lean,
            "lean_origin": driver.lean_origin if named else here.lean_origin,
            "cache_dir": here.cache_dir,
            "project": here.project,
        }
    )


def node_project(settings: Settings, driver_project: str | None) -> Path | None:
    """The Lake project on this node: its own setting, else the driver's if that folder exists here."""
    if settings.project is not None:
        return settings.project
    if driver_project and Path(driver_project).is_dir():
        return Path(driver_project)
    return None
