"""The documentation builds, its links hold, and every command in it does what it says.

The site (`mkdocs.yml`, `docs/`) is built with `mkdocs build --strict`: a warning, such as a link to a
page or anchor that does not exist, fails the test. Then every fenced `sh`, `python` and `toml` block
of `README.md` and `docs/*.md` is run, in document order, in a scratch folder where `examples/` is
this checkout's, `runs/` is the test's own and the cache folder is fresh. The HTML comment on the line
before a block says how (docs/development.md lists the forms):

    <!-- run: exit=1 expect="banned:axiom" -->     each command exits 1; the output contains the text
    <!-- run: server -->                           a server for this page's `client` blocks
    <!-- run: client -->                           run while the page's server runs
    <!-- run: config -->                           (toml) a mathagent.toml every command accepts
    <!-- no-run: REASON -->                        skipped, with REASON (a GPU, a model, Mathlib, a cluster)

A block with no comment is run and each command must exit 0. Nothing here starts vLLM or a model.
"""

from __future__ import annotations

import os
import re
import selectors
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUNNABLE = {"sh", "python", "toml"}
DIRECTIVE = re.compile(r"^<!--\s*(run|no-run):\s*(.*?)\s*-->$")
FENCE = re.compile(r"^```(\S*)\s*$")
EXPECT = re.compile(r"""expect=(?:"([^"]*)"|'([^']*)')""")
EXIT = re.compile(r"\bexit=(\d+)\b")
SERVER_ADDRESS = re.compile(r"\b(?:localhost|127\.0\.0\.1):8000\b")
COMMAND_TIMEOUT_S = 300


@dataclass(frozen=True)
class Block:
    """One fenced block of a page, with the directive on the line before it."""

    page: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    directive: str  # "run", "no-run" or "" (none: run, exit 0)
    argument: str  # what follows the directive's colon

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def skip_reason(self) -> str | None:
        return self.argument if self.directive == "no-run" else None

    @property
    def words(self) -> list[str]:
        """The run comment's bare words (server, client, config)."""
        return EXIT.sub("", EXPECT.sub("", self.argument)).split() if self.directive == "run" else []

    @property
    def exit_status(self) -> int:
        found = EXIT.search(self.argument) if self.directive == "run" else None
        return int(found.group(1)) if found else 0

    @property
    def expect(self) -> str | None:
        found = EXPECT.search(self.argument) if self.directive == "run" else None
        return None if found is None else (found.group(1) if found.group(1) is not None else found.group(2))

    def commands(self) -> list[str]:
        """The block's shell commands: one per line (a trailing backslash continues it), comments dropped."""
        commands: list[str] = []
        pending = ""
        for raw in self.text.splitlines():
            line = pending + raw
            if line.rstrip().endswith("\\"):
                pending = line.rstrip()[:-1] + " "
                continue
            pending = ""
            if line.strip() and not line.lstrip().startswith("#"):
                commands.append(line.strip())
        assert not pending, f"{self.name}: the block ends inside a continued line"
        return commands


def parse(page: Path) -> list[Block]:
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        assert end < len(lines), f"{page.name}:{index + 1}: a code block that never closes"
        directive = DIRECTIVE.match(lines[index - 1].strip()) if index > 0 else None
        blocks.append(
            Block(
                page=page,
                line=index + 1,
                lang=opening.group(1),
                text="\n".join(lines[index + 1 : end]),
                directive=directive.group(1) if directive else "",
                argument=directive.group(2) if directive else "",
            )
        )
        index = end + 1
    return blocks


BLOCKS = [block for page in PAGES for block in parse(page) if block.lang in RUNNABLE]


# ---------------------------------------------------------------- the site


def test_site_builds_with_no_warning(tmp_path: Path) -> None:
    """`mkdocs build --strict`: a broken link or anchor, or a page left out of the nav, fails it."""
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "WARNING" not in output, output
    assert (tmp_path / "site" / "index.html").exists()
    assert (tmp_path / "site" / "eval-sample-embedded.png").exists()  # the report image of docs/eval.md


def test_readme_links_lead_to_files_that_exist() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", readme)
    local = [target for target in targets if not re.match(r"[a-z]+://", target)]
    assert local, "the README links to no page of the documentation"
    for target in local:
        path = target.split("#", 1)[0]
        assert path and (ROOT / path).is_file(), f"README.md links to {target}, which does not exist"
    pages = {f"docs/{page.name}" for page in PAGES if page.parent.name == "docs"}
    assert pages - {"docs/index.md"} <= set(local), f"the README links to none of {pages - set(local)}"


def test_readme_and_docs_agree_on_the_set_up_commands_and_the_python_example() -> None:
    readme = parse(ROOT / "README.md")
    install = parse(ROOT / "docs" / "install.md")
    set_up = [block.text for block in readme if block.text.startswith("python3 -m venv")]
    assert len(set_up) == 2 and set_up == [block.text for block in install if block.text.startswith("python3 -m venv")]
    assert set_up[1] in (ROOT / ".ci" / "run").read_text(encoding="utf-8"), ".ci/run must run the README's tests"
    example = [block.text for block in readme if block.lang == "python"]
    api = [block.text for block in parse(ROOT / "docs" / "python-api.md") if block.lang == "python"]
    assert example and example[0] == api[0], "the README's Python example is docs/python-api.md's first one"


def test_every_directive_is_one_the_test_knows() -> None:
    for block in BLOCKS:
        if block.directive == "run":
            rest = EXIT.sub("", EXPECT.sub("", block.argument)).split()
            stray = [word for word in rest if word not in {"server", "client", "config"}]
            assert not stray, f"{block.name}: unknown words in the run comment: {stray}"
        if block.directive == "no-run":
            assert block.argument, f"{block.name}: a no-run comment must say why"
        if block.lang == "toml":
            assert block.directive, f"{block.name}: say how to check a toml block (run: config, or no-run)"


# ---------------------------------------------------------------- running the blocks


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch folder that looks like the checkout to the commands: examples/ is there, runs/ is not."""
    path = tmp_path_factory.mktemp("docs-run")
    (path / "examples").symlink_to(ROOT / "examples")
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """This venv's `mathagent` first on PATH, a fresh cache, no user config and no MATHAGENT_* from outside."""
    home = tmp_path_factory.mktemp("docs-home")
    clean = {key: value for key, value in os.environ.items() if not key.startswith("MATHAGENT_")}
    return {
        **clean,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{clean.get('PATH', '')}",
        "MATHAGENT_CACHE_DIR": str(home / "cache"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "COLUMNS": "200",
        "PYTHONUNBUFFERED": "1",
    }


@dataclass
class Server:
    process: subprocess.Popen[str]
    address: str  # host:port


class Servers:
    """The `server` block of each page, started once, on any free port, when a block of the page needs it."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env
        self.running: dict[Path, Server] = {}

    def for_page(self, page: Path) -> Server:
        if page not in self.running:
            blocks = [block for block in BLOCKS if block.page == page and "server" in block.words]
            assert len(blocks) == 1, f"{page.name}: a client block needs exactly one server block on its page"
            self.running[page] = self._start(blocks[0])
        return self.running[page]

    def _start(self, block: Block) -> Server:
        (command,) = block.commands()
        argv = [*shlex.split(command, comments=True), "--port", "0"]
        process = subprocess.Popen(
            argv, cwd=self.workdir, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert process.stdout is not None
        seen: list[str] = []
        deadline = time.monotonic() + 120
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if not selector.select(timeout=1):
                    if process.poll() is not None:
                        break
                    continue
                line = process.stdout.readline()
                if not line:
                    break
                seen.append(line)
                found = re.search(r"listening on http://(\S+?)[\s/]", line)
                if found:
                    return Server(process, found.group(1))
        process.kill()
        process.wait()
        raise AssertionError(f"{block.name}: `{command}` did not start listening:\n{''.join(seen)}")

    def stop(self) -> None:
        for server in self.running.values():
            server.process.send_signal(signal.SIGTERM)
            try:
                server.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait()


@pytest.fixture(scope="module")
def servers(workdir: Path, env: dict[str, str]) -> Iterator[Servers]:
    started = Servers(workdir, env)
    yield started
    started.stop()


def _run(argv: list[str], workdir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)


@pytest.mark.parametrize("block", BLOCKS, ids=[block.name for block in BLOCKS])
def test_block_runs_as_the_page_says(block: Block, workdir: Path, env: dict[str, str], servers: Servers) -> None:
    if block.skip_reason is not None:
        pytest.skip(f"not run here: {block.skip_reason}")
    outputs: list[str] = []
    if "server" in block.words:
        server = servers.for_page(block.page)
        assert server.process.poll() is None, f"{block.name}: the server exited"
        return
    if block.lang == "toml":
        assert "config" in block.words, f"{block.name}: a toml block is run only as `config`"
        folder = workdir / f"config-{block.page.stem}-{block.line}"
        folder.mkdir()
        (folder / "mathagent.toml").write_text(block.text + "\n", encoding="utf-8")
        proc = _run(["mathagent", "model", "show"], folder, env)
        assert proc.returncode == 0, f"{block.name}: mathagent refused this configuration:\n{proc.stderr}"
        return
    if block.lang == "python":
        script = workdir / f"{block.page.stem}-{block.line}.py"
        script.write_text(block.text + "\n", encoding="utf-8")
        proc = _run([sys.executable, str(script)], workdir, env)
        assert proc.returncode == block.exit_status, f"{block.name}: exit {proc.returncode}\n{proc.stdout}{proc.stderr}"
        outputs.append(proc.stdout + proc.stderr)
    else:
        commands = block.commands()
        assert commands, f"{block.name}: an sh block with no command"
        for command in commands:
            if "client" in block.words:
                address = servers.for_page(block.page).address
                command = SERVER_ADDRESS.sub(address, command)
            proc = _run(["bash", "-o", "pipefail", "-c", command], workdir, env)
            assert proc.returncode == block.exit_status, (
                f"{block.name}: `{command}` exited {proc.returncode}, the page says {block.exit_status}\n"
                f"{proc.stdout}{proc.stderr}"
            )
            outputs.append(proc.stdout + proc.stderr)
    if block.expect is not None:
        together = " ".join(" ".join(outputs).split())  # rich wraps lines; compare words
        assert " ".join(block.expect.split()) in together, f"{block.name}: no {block.expect!r} in\n{''.join(outputs)}"
