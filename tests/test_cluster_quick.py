"""`--ray` without a cluster: the flag, the settings, the routing, and nothing paid without it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from mathagent.cli.common import bare_ray
from mathagent.cluster.engine import plan_replicas
from mathagent.cluster.nodes import NodeSpec, named_lean, node_search
from mathagent.cluster.router import NoMembers, Router
from mathagent.config import ClusterSettings, EngineSettings, Settings, load_settings
from mathagent.engines.select import choose
from mathagent.errors import ConfigError


def python(code: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_without_ray_nothing_imports_it() -> None:
    # the commands, their options and the cluster package itself: Ray only when a cluster is used
    code = (
        "import sys\n"
        "import mathagent.cli, mathagent.pipeline, mathagent.cluster.checker, mathagent.cluster.engine\n"
        "print('ray' in sys.modules)"
    )
    proc = python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_a_missing_ray_says_how_to_install_it(tmp_path: Path) -> None:
    tasks = tmp_path / "t.jsonl"
    tasks.write_text(json.dumps({"id": "t", "formal_statement": "theorem X : Eq two two :=", "proof": " Eq.refl _"}))
    # as if Ray were not installed: importing it fails
    code = (
        "import sys\nsys.modules['ray'] = None\nfrom mathagent.cli import main\n"
        f"sys.argv = ['mathagent', 'verify', '-i', {str(tasks)!r}, '--ray', 'auto']\nmain()"
    )
    proc = python(code)
    assert proc.returncode == 2, proc.stderr
    assert "--ray needs Ray, which is not installed" in proc.stderr
    assert "pip install 'mathagent[ray]'" in proc.stderr


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--ray"], ["--ray=local"]),
        (["--ray", "--json"], ["--ray=local", "--json"]),
        (["--ray", "auto"], ["--ray", "auto"]),
        (["--ray", "10.0.0.1:6379", "p.jsonl"], ["--ray", "10.0.0.1:6379", "p.jsonl"]),
        (["--ray", "p.jsonl"], ["--ray=local", "p.jsonl"]),  # a file is not an address: --ray took no value
        (["--ray=off"], ["--ray=off"]),
        (["--", "--ray"], ["--", "--ray"]),
    ],
)
def test_a_bare_ray_flag_means_a_local_cluster(argv: list[str], expected: list[str]) -> None:
    assert bare_ray(argv) == expected


def test_the_cluster_table_in_mathagent_toml(tmp_path: Path) -> None:
    (tmp_path / "mathagent.toml").write_text(
        '[cluster]\naddress = "auto"\nworkers_per_node = 6\nengine_replicas = 2\n'
        'base_urls = ["http://10.0.0.2:8000/v1", "http://10.0.0.3:8000/v1"]\n'
    )
    settings = load_settings(cwd=tmp_path, env={})
    cluster = settings.cluster
    assert cluster.address == "auto" and cluster.workers_per_node == 6
    assert cluster.engine_replicas == 2 and len(cluster.base_urls) == 2
    from_env = load_settings(cwd=tmp_path, env={"MATHAGENT_RAY": "ray://head:10001"})
    assert from_env.cluster.address == "ray://head:10001"
    (tmp_path / "mathagent.toml").write_text('[cluster]\naddress = "somewhere"\n')
    with pytest.raises(ConfigError, match=r"cluster\.address must be local, auto, off, or a cluster address"):
        load_settings(cwd=tmp_path, env={})
    (tmp_path / "mathagent.toml").write_text("[cluster]\nworkers = 4\n")
    with pytest.raises(ConfigError, match=r"unknown key cluster\.workers; did you mean cluster\.workers_per_node"):
        load_settings(cwd=tmp_path, env={})


def test_a_node_looks_for_lean_by_its_own_settings_unless_the_driver_named_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = tmp_path / "node"
    (node / "lake").mkdir(parents=True)
    (node / "mathagent.toml").write_text('[lean]\npath = "bin/lean"\n')
    monkeypatch.chdir(node)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("MATHAGENT_CACHE_DIR", str(tmp_path / "node-cache"))
    for name in ("MATHAGENT_LEAN", "MATHAGENT_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    own = node_search(None, str(node / "lake"))
    assert own.lean == node / "bin" / "lean" and own.lean_origin == f"config file {node / 'mathagent.toml'}"
    assert own.cache_dir == tmp_path / "node-cache" and own.project == node / "lake"
    named = node_search(Path("/opt/lean/bin/lean"), str(tmp_path / "not-on-this-node"))
    assert named.lean == Path("/opt/lean/bin/lean") and named.lean_origin == "--lean"
    assert named.project is None and named.cache_dir == tmp_path / "node-cache"
    # the driver's settings say which Lean it named; one from a config file or the environment is not sent
    driver = Settings().with_overrides(lean={"path": Path("/opt/lean/bin/lean")}, lean_origin="--lean")
    assert named_lean(driver) == Path("/opt/lean/bin/lean")
    assert named_lean(load_settings()) is None


def test_a_bad_ray_flag_is_a_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mathagent", "batch", "examples/problems.jsonl", "--ray", "nowhere:x"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 2
    assert "must be local, auto, off, or a cluster address" in proc.stderr


# ---------------------------------------------------------------- routing


def test_checks_of_one_header_stay_on_one_node_while_it_has_room() -> None:
    async def go() -> None:
        router: Router[str] = Router(depth=2)
        for name in ("a", "b", "c"):
            router.add(name, name, capacity=2)
        async with router.lease("header-1") as (first, _):
            async with router.lease("header-1") as (second, _):
                assert second == first  # the same node: its warm servers have the header
                async with router.lease("header-1") as (third, _):
                    assert third != first  # full: spills to the next node in this header's order
                    assert router.load(first) == 2 and router.load(third) == 1
        assert all(router.load(n) == 0 for n in ("a", "b", "c"))
        # headers spread over the nodes
        firsts = set()
        for i in range(30):
            async with router.lease(f"header-{i}") as (name, _):
                firsts.add(name)
        assert firsts == {"a", "b", "c"}

    asyncio.run(go())


def test_work_waits_when_every_node_is_at_its_limit_and_fails_when_none_is_left() -> None:
    async def go() -> None:
        router: Router[str] = Router(depth=1)
        router.add("a", "a", capacity=1)
        order: list[str] = []

        async def take(tag: str, hold: float) -> None:
            async with router.lease(None):
                order.append(tag)
                await asyncio.sleep(hold)

        await asyncio.gather(take("first", 0.05), take("second", 0))
        assert order == ["first", "second"]
        waiting = asyncio.ensure_future(take("late", 0))
        async with router.lease(None):
            await asyncio.sleep(0.01)
            assert not waiting.done()  # back-pressure: it waits on the driver
            router.remove("a")  # the node is lost while work waits
        with pytest.raises(NoMembers):
            await waiting

    asyncio.run(go())


# ---------------------------------------------------------------- engine replicas


def _nodes(gpus: int) -> list[NodeSpec]:
    return [NodeSpec("a" * 56, "10.0.0.2", 8, gpus), NodeSpec("b" * 56, "10.0.0.1", 8, 0, head=True)]


def test_engine_replicas_one_per_gpu_or_per_endpoint() -> None:
    gpu = Settings(engine=EngineSettings(model="internlm/internlm2-math-plus-7b"))
    plans = plan_replicas(choose(gpu.engine), gpu, _nodes(gpus=4))
    assert len(plans) == 4 and all(p.num_gpus == 1 and p.choice.device == "gpu" for p in plans)
    two_way = gpu.with_overrides(engine={"tensor_parallel_size": 2})
    assert len(plan_replicas(choose(two_way.engine), two_way, _nodes(gpus=4))) == 2
    # a driver without a GPU asks for InternLM2-Math on the cluster's GPUs, not the CPU demo model
    auto = Settings()
    [*plans] = plan_replicas(choose(auto.engine), auto, _nodes(gpus=1))
    assert [(p.choice.kind, p.choice.model, p.choice.device) for p in plans] == [
        ("vllm", "internlm/internlm2-math-plus-7b", "gpu")
    ]
    # no GPU anywhere, no replica count: generation stays in the driver
    assert plan_replicas(choose(auto.engine), auto, _nodes(gpus=0)) == []
    # one server: the driver talks to it; several endpoints: a replica each, round-robin over the nodes
    one = Settings(engine=EngineSettings(base_url="http://10.0.0.9:8000/v1"))
    assert plan_replicas(choose(one.engine), one, _nodes(gpus=0)) == []
    urls = ("http://10.0.0.2:8000/v1", "http://10.0.0.3:8000/v1", "http://x:1/v1")
    many = Settings(cluster=ClusterSettings(base_urls=urls))
    plans = plan_replicas(choose(many.engine), many, _nodes(gpus=0))
    assert [p.choice.base_url for p in plans] == list(many.cluster.base_urls)
    assert [p.node_id[0] for p in plans if p.node_id] == ["a", "b", "a"]
    cpu = Settings(engine=EngineSettings(kind="vllm", model="/models/tiny"), cluster=ClusterSettings(engine_replicas=2))
    assert [(p.num_cpus, p.num_gpus) for p in plan_replicas(choose(cpu.engine), cpu, _nodes(gpus=0))] == [
        (1, 0),
        (1, 0),
    ]
