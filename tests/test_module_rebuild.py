"""A verdict holds for the modules it was checked against: after a module the
header imports is rebuilt (here a lemma becomes an axiom), neither the verdict
cache nor a warm server started before the rebuild answers for it."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
from pathlib import Path

import pytest

from conftest import CANON_MODULE
from mathagent.verify import fingerprint
from mathagent.verify.tasks import VerifyTask
from mathagent.verify.toolchain import LeanToolchain
from mathagent.verify.verdict import Verdict
from mathagent.verify.verifier import Verifier, VerifyOptions, verify_tasks

HONEST = CANON_MODULE + "theorem key : Eq Prop Prop := Eq.refl _\n"
CHEAT = CANON_MODULE + "axiom key : Eq Prop Prop\n"
TASK = VerifyTask(id="t", formal_statement="theorem t : Eq Prop Prop :=", proof=" key")


def build(lean: LeanToolchain, folder: Path, text: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "Lemmas.lean").write_text(text, encoding="utf-8")
    built = subprocess.run(
        [str(lean.lean), "-o", "Lemmas.olean", "Lemmas.lean"], cwd=folder, capture_output=True, text=True
    )
    assert built.returncode == 0, built.stdout + built.stderr


def options(pool: str, cache: Path | None = None) -> VerifyOptions:
    return VerifyOptions(
        workers=1, timeout_s=60, memory_mb=4096, default_header="prelude\nimport Lemmas\n", pool=pool, cache_path=cache
    )


def assert_rejected_for_the_axiom(verdict: Verdict) -> None:
    assert not verdict.verified and not verdict.cached, verdict
    assert any("key" in str(reason) for reason in verdict.reasons) or "key" in verdict.message, verdict


@pytest.mark.parametrize("pool", ["cold", "warm"])
def test_a_verdict_cached_before_a_rebuild_is_not_served_after_it(
    lean: LeanToolchain, tmp_path: Path, pool: str
) -> None:
    folder = tmp_path / "modules"
    build(lean, folder, HONEST)
    toolchain = dataclasses.replace(lean, lean_path=(str(folder),))
    cached = options(pool, tmp_path / "verdicts.sqlite3")
    [first] = verify_tasks(toolchain, cached, [TASK])
    [again] = verify_tasks(toolchain, cached, [TASK])
    assert first.verified and not first.cached, first
    assert again.verified and again.cached  # the cache does answer while nothing changed
    build(lean, folder, CHEAT)
    [after] = verify_tasks(toolchain, cached, [TASK])
    assert_rejected_for_the_axiom(after)
    # and another project's module of the same name is another key too
    other = tmp_path / "other"
    build(lean, other, HONEST)
    [elsewhere] = verify_tasks(dataclasses.replace(lean, lean_path=(str(other),)), cached, [TASK])
    assert elsewhere.verified and not elsewhere.cached


def test_a_warm_server_started_before_a_rebuild_is_not_reused_after_it(
    lean: LeanToolchain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_leftover_lean: None
) -> None:
    monkeypatch.setattr(fingerprint, "REFRESH_S", 0.0)  # notice the rebuild at once
    folder = tmp_path / "modules"
    build(lean, folder, HONEST)
    toolchain = dataclasses.replace(lean, lean_path=(str(folder),))

    async def go() -> tuple[Verdict, Verdict, Verdict]:
        async with Verifier(toolchain, options("warm")) as verifier:
            before = await verifier.verify(TASK)
            build(lean, folder, CHEAT)
            after = await verifier.verify(dataclasses.replace(TASK, id="after"))
            again = await verifier.verify(dataclasses.replace(TASK, id="again", proof=" key -- again"))
            assert verifier.warm_pool is not None and verifier.warm_pool.started == 1  # the new pool's one server
            return before, after, again

    before, after, again = asyncio.run(go())
    assert before.verified, before
    assert_rejected_for_the_axiom(after)
    assert_rejected_for_the_axiom(again)


def test_the_digest_follows_size_time_and_place(tmp_path: Path) -> None:
    (tmp_path / "A" / "B").mkdir(parents=True)
    module = tmp_path / "A" / "B" / "C.olean"
    module.write_bytes(b"one")
    (tmp_path / "A" / "notes.txt").write_text("not a module")
    first = fingerprint.modules_digest([str(tmp_path)])
    (tmp_path / "A" / "notes.txt").write_text("still not a module, longer")
    assert fingerprint.modules_digest([str(tmp_path)]) == first
    module.write_bytes(b"two!")
    assert fingerprint.modules_digest([str(tmp_path)]) != first
    assert fingerprint.modules_digest([str(tmp_path / "A")]) != fingerprint.modules_digest([str(tmp_path)])
    # the same size and the old modification time back (as `cp -p`, `rsync -a` leave a copy): still another digest
    before = fingerprint.modules_digest([str(tmp_path)])
    stat = module.stat()
    copy = tmp_path / "copy.tmp"
    copy.write_bytes(b"TWO!")
    os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(copy, module)
    assert fingerprint.modules_digest([str(tmp_path)]) != before
    (tmp_path / "A" / "loop").symlink_to(tmp_path / "A")  # never entered
    assert fingerprint.modules_digest([str(tmp_path / "missing")])  # a missing folder is no error
    fingerprint.modules_digest([str(tmp_path)])
