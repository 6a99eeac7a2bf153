"""Type-check (and optionally run) the README's Python examples.

    python tests/typing/check_readme.py          # mypy --strict on every ```python block
    python tests/typing/check_readme.py --run    # also run the complete examples

Each block becomes a module of its own.  A block may be preceded by a marker comment:

* ``<!-- typecheck: prelude -->``: a fragment that uses names defined elsewhere in the README
  (``engine``, ``User``, ...); the checked module starts with :data:`PRELUDE`, which defines
  them, and the block is not run.
* ``<!-- typecheck: skip -->``: not checked and not run (keep this rare, and say why next to it).

Exits nonzero if mypy reports an error or a run example fails.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MYPY_INI = Path(__file__).resolve().parent / "mypy.ini"

#: what a fragment may assume from the README's other examples
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

_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
_MARKER = re.compile(r"<!--\s*typecheck:\s*(\w+)\s*-->\s*$")


def blocks(text: str) -> list[tuple[int, str, str]]:
    """(line number, marker or "", code) of every ```python block."""
    found: list[tuple[int, str, str]] = []
    for m in _BLOCK.finditer(text):
        before = text[: m.start()].rstrip("\n").splitlines()
        marker = _MARKER.search(before[-1]) if before else None
        found.append((text.count("\n", 0, m.start()) + 1, marker.group(1) if marker else "", m.group(1)))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="store_true", help="also run the complete examples")
    args = parser.parse_args()
    found = blocks(README.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        files: list[tuple[int, Path, bool]] = []
        for line, marker, code in found:
            if marker == "skip":
                continue
            if marker not in ("", "prelude"):
                print(f"README.md:{line}: unknown marker typecheck: {marker}", file=sys.stderr)
                return 2
            path = Path(tmp) / f"readme_line_{line}.py"
            path.write_text((PRELUDE if marker == "prelude" else "") + code)
            files.append((line, path, marker == ""))
        print(f"type-checking {len(files)} of {len(found)} README python blocks")
        status = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--config-file", str(MYPY_INI),
                                 *[str(p) for _, p, _ in files]], cwd=ROOT).returncode
        if args.run:
            for line, path, complete in files:
                if not complete:
                    continue
                run_dir = Path(tmp) / f"run_{line}"  # the examples may write database files here
                run_dir.mkdir()
                # this checkout's aiouow, whatever is installed
                done = subprocess.run([sys.executable, str(path)], cwd=run_dir, capture_output=True, text=True,
                                      env={**os.environ, "PYTHONPATH": str(ROOT)})
                print(f"README.md:{line}: run {'ok' if done.returncode == 0 else 'FAILED'}")
                if done.returncode != 0:
                    print(done.stdout + done.stderr, file=sys.stderr)
                    status = status or 1
    return status


if __name__ == "__main__":
    sys.exit(main())
