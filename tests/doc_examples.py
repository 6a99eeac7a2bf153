"""The code blocks of README.md and docs/*.md: how they are found, checked and run.

tests/test_docs_examples.py type-checks and runs them on both backends; tests/typing/check_readme.py
is the same type-check as a command (the static step of .ci/run).  docs/development.md ("The
examples in these pages") describes the conventions for whoever writes a page; in short, a block is
a ```python (or ```sh) fence, and the line right above it may hold one marker comment:

* none (```python): a complete program.  Type-checked with ``mypy --strict``, then run as a script in
  a fresh directory, on SQLite as written and on PostgreSQL with every ``"sqlite:///..."`` string
  (an f-string too) replaced by the URL of an empty PostgreSQL database.
* ``<!-- typecheck: prelude -->``: a fragment that uses names of :data:`PRELUDE` (``engine``, ``User``,
  ...).  Checked and run with the prelude in front (running it defines what it defines: that catches
  import and module-level errors; calling its functions is up to the page's complete examples).
* ``<!-- typecheck: file PATH -->``: a file of a project the page builds step by step (getting
  started): written to PATH in the page's project directory, type-checked there, not run by itself.
* ``<!-- typecheck: shell -->`` (```sh): a step of that project, run with bash in its directory.
* ``<!-- typecheck: skip REASON -->``: neither checked nor run; the reason is required.

A complete example followed by a line ``It prints:`` and a ```text block must print exactly that.

```sh blocks without a marker, ```text, ```ini and other fences are not code of the examples.
On a page with ``shell`` steps the blocks are one project: they run in the order of the page, in
one directory, and the PostgreSQL database is emptied once, before the first; on other pages it is
emptied before each complete example.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MYPY_INI = ROOT / "tests" / "typing" / "mypy.ini"
#: the files whose examples are checked: the README and every page of the documentation
SOURCES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: what a fragment may assume from the other examples
PRELUDE = '''\
from aiouow import AsyncSession, Mapped, Model, column, create_engine, func, scoped_session, select, sessionmaker


class User(Model):
    __tablename__ = "users"
    id: Mapped[int] = column(primary_key=True)
    name: Mapped[str] = column()


class Note(Model):
    __tablename__ = "notes"
    id: Mapped[int] = column(primary_key=True)
    title: Mapped[str] = column()


engine = create_engine("sqlite:///:memory:")


async def create_user(session: AsyncSession) -> None:
    session.add(User(name="a"))
    await session.commit()

'''

_FENCE = re.compile(r"^```(python|sh)\n(.*?)^```", re.S | re.M)
_MARKER = re.compile(r"<!--\s*typecheck:\s*(\w+)\s*(.*?)\s*-->\s*$")
_PRINTS = re.compile(r"\s*It prints:\n\n```text\n(.*?)^```", re.S | re.M)
_SQLITE_URL = re.compile(r"""\bf?(["'])sqlite:///[^"'\n]*\1""")
KINDS = ("complete", "prelude", "file", "shell", "skip")


@dataclass(frozen=True)
class Block:
    source: Path
    line: int  # of the opening fence
    lang: str  # "python" or "sh"
    kind: str  # one of KINDS, or "" for an unmarked sh block (not an example)
    arg: str  # the file's path, or the reason of a skip
    code: str
    expected: str | None = None  # the output an "It prints:" block after it shows

    @property
    def where(self) -> str:
        return f"{self.source.relative_to(ROOT)}:{self.line}"

    @property
    def module(self) -> str:
        """A module name of its own for the type-check."""
        return re.sub(r"\W", "_", f"{self.source.stem}_{self.line}").lower()


def blocks(source: Path) -> list[Block]:
    """Every ```python and ```sh block of one Markdown file, with its marker; a marker that is
    not one of :data:`KINDS` (or a skip without a reason, a file without a path) is a ValueError."""
    text = source.read_text()
    found: list[Block] = []
    for m in _FENCE.finditer(text):
        before = text[: m.start()].rstrip("\n").splitlines()
        marker = _MARKER.search(before[-1]) if before else None
        lang, code = m.group(1), m.group(2)
        line = text.count("\n", 0, m.start()) + 1
        kind, arg = (marker.group(1), marker.group(2)) if marker else ("complete" if lang == "python" else "", "")
        where = f"{source.relative_to(ROOT)}:{line}"
        if marker and (kind not in KINDS or kind == "complete"):
            raise ValueError(f"{where}: unknown marker typecheck: {kind}")
        if kind in ("skip", "file") and not arg:
            raise ValueError(f"{where}: typecheck: {kind} needs {'a reason' if kind == 'skip' else 'a path'}")
        if (kind == "shell") != (lang == "sh") and kind:
            raise ValueError(f"{where}: typecheck: shell marks ```sh blocks, and a ```sh block takes no other")
        prints = _PRINTS.match(text, m.end())
        expected = prints.group(1) if prints and kind == "complete" else None
        found.append(Block(source, line, lang, kind, arg, code, expected))
    return found


def all_blocks() -> list[Block]:
    return [b for source in SOURCES for b in blocks(source)]


def is_project(page: list[Block]) -> bool:
    return any(b.kind == "shell" for b in page)


def for_backend(code: str, url: str | None) -> str:
    """The code for a backend: as written for SQLite (``url`` None), else every SQLite URL
    string replaced by ``url``."""
    return code if url is None else _SQLITE_URL.sub(lambda _: repr(url), code)


def typecheck(found: list[Block], tmp: Path) -> tuple[int, str]:
    """mypy --strict over every checked block; (exit status, output).  The blocks of a project
    page are checked as their files, in a directory of their own on MYPYPATH."""
    groups: dict[Path, list[Path]] = {}
    for b in found:
        if b.kind in ("skip", "shell", ""):
            continue
        project = tmp / f"types_{b.source.stem}" if b.kind == "file" or is_project(blocks(b.source)) else tmp
        path = project / b.arg if b.kind == "file" else project / f"{b.module}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text((PRELUDE if b.kind == "prelude" else "") + b.code)
        groups.setdefault(project, []).append(path)
    status, output = 0, []
    for project, paths in groups.items():
        env = {**os.environ, "MYPYPATH": os.pathsep.join([str(ROOT), str(project)])}
        done = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--config-file", str(MYPY_INI),
                               "--cache-dir", str(tmp / ".mypy_cache"), "--explicit-package-bases",
                               *map(str, paths)], cwd=project, env=env, capture_output=True, text=True)
        status = status or done.returncode
        output.append(done.stdout + done.stderr)
    # name the blocks, not the temporary files
    text = "\n".join(output)
    for b in found:
        text = text.replace(f"{b.module}.py:", f"{b.where} block, line ")
    return status, text


def run_page(page: list[Block], url: str | None, workdir: Path, empty_database: object = None,
             timeout: float = 180) -> list[str]:
    """Run the examples of one page on one backend (``url`` None: SQLite as written); the
    failures, each naming its block.  ``empty_database`` is called (no arguments) where the
    PostgreSQL database must be empty."""
    failures: list[str] = []
    project = is_project(page)
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(workdir)]),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    if url is not None:
        env["AIOUOW_DATABASE_URL"] = url
    else:
        env["AIOUOW_DATABASE_URL"] = f"sqlite:///{workdir / 'app.db'}"
    if project and callable(empty_database):
        empty_database()
    for b in page:
        if b.kind in ("skip", ""):
            continue
        code = for_backend(b.code, url)
        if b.kind == "file":
            target = workdir / b.arg
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(code)
            continue
        cwd = workdir if project else workdir / f"run_{b.line}"
        cwd.mkdir(exist_ok=True)
        if b.kind == "shell":
            cmd = ["bash", "-euo", "pipefail", "-c", code]
        else:
            if not project and callable(empty_database):
                empty_database()
            script = cwd / f"{b.module}.py"
            script.write_text((PRELUDE if b.kind == "prelude" else "") + code)
            cmd = [sys.executable, str(script)]
        try:
            done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            failures.append(f"{b.where}: did not finish within {timeout} s")
            continue
        if done.returncode != 0:
            failures.append(f"{b.where}: exited with {done.returncode}\n{done.stdout}{done.stderr}")
            if project:
                break  # the later steps build on this one
        elif b.expected is not None and done.stdout != b.expected:
            failures.append(f"{b.where}: printed\n{done.stdout}\ninstead of what the page shows:\n{b.expected}")
    return failures
