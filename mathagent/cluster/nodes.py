"""The cluster's nodes as the driver sees them, and where a node looks for Lean."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from mathagent.cluster.errors import import_ray
from mathagent.config import Settings, load_settings
from mathagent.verify.toolchain import LeanSearch

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


def named_lean(settings: Settings) -> Path | None:
    """The Lean every node runs: one named with --lean on the command line. None: each node finds its own."""
    return settings.lean.path if settings.lean_origin == "--lean" else None


def node_search(named: Path | None, driver_project: str | None) -> LeanSearch:
    """Where a node looks for Lean: as its own environment and config files say (MATHAGENT_LEAN,
    MATHAGENT_CACHE_DIR, `[lean]` in its mathagent.toml), except a Lean `named` on the driver's command
    line, which every node runs. Its Lake project: its own setting, else the driver's if that folder is here."""
    here = load_settings()
    search = here.lean_search(node_project(here, driver_project))
    return replace(search, lean=named, lean_origin="--lean") if named is not None else search


def node_project(settings: Settings, driver_project: str | None) -> Path | None:
    """The Lake project on this node: its own setting, else the driver's if that folder exists here."""
    if settings.lean.project is not None:
        return settings.lean.project
    if driver_project and Path(driver_project).is_dir():
        return Path(driver_project)
    return None
