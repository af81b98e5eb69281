"""Joining a Ray cluster for one command, and leaving it afterwards."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from mathagent.cluster.errors import START_HINT, ClusterError, import_ray
from mathagent.config import Settings, load_settings
from mathagent.engines.enginelog import log_path, stderr_to_log


def address_of(settings: Settings) -> str | None:
    """The cluster a command runs on (`--ray`, MATHAGENT_RAY or `[cluster] address`); None: this machine."""
    address = settings.cluster.address
    return None if address in (None, "off") else address


@contextmanager
def connect(address: str) -> Iterator[None]:
    """Join the cluster at `address` (`auto`: the one running here; `local`:
    start a private one for this command) and leave it at the end. A process
    that is already connected (the Python API, tests) stays connected."""
    ray = import_ray()
    if ray.is_initialized():
        yield
        return
    options: dict[str, object] = {
        "logging_level": logging.ERROR,  # no "Connecting to existing Ray cluster" lines on the terminal
        "log_to_driver": False,  # actors report through results and exceptions, not their stdout
    }
    if address == "local":  # Ray's own word: a new instance on this machine, even if one runs here already
        options["include_dashboard"] = False
    try:
        # Ray's C++ core writes its retries and warnings to descriptor 2: into the engine log
        with stderr_to_log(log_path(load_settings().cache_dir), f"ray.init({address})"):
            ray.init(address=address, **options)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise ClusterError(f"cannot join the Ray cluster at {address}: {exc}", hint=START_HINT) from exc
    try:
        yield
    finally:
        ray.shutdown()
