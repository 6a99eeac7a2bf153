"""The mypyc build and its pure-Python fallback.

``.ci/run`` runs the suite twice: once on the compiled install with AIOUOW_EXPECT_COMPILED=1
(so a build that silently fell back to pure Python fails here), once with AIOUOW_PURE_PYTHON=1.
The subprocess tests run one workload both ways in fresh interpreters and compare what the
database and the objects say.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from aiouow import _compiled

from .conftest import empty_pg_database, require_pg

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_compiled_sources_are_modules_of_the_package() -> None:
    for source, name in zip(_compiled.COMPILED_SOURCES, _compiled.COMPILED, strict=True):
        assert (ROOT / source).is_file(), source
        assert name.startswith("aiouow.") and name.replace(".", "/") + ".py" == source


def test_setup_py_compiles_the_listed_modules() -> None:
    # setup.py must take its list from _compiled.py, not keep a copy that could drift
    text = (ROOT / "setup.py").read_text()
    assert 'runpy.run_path' in text and '"COMPILED_SOURCES"' in text
    assert "mypycify(" in text and "extension.optional = True" in text


def test_the_process_runs_all_compiled_or_all_pure() -> None:
    found = _compiled.compiled_modules()
    if _compiled.pure_python_requested():
        assert found == ()
    elif os.environ.get("AIOUOW_EXPECT_COMPILED", "") not in ("", "0"):
        assert found == _compiled.COMPILED, "the install fell back to pure Python for some modules"
    else:
        # one mypyc group: a partial build would pair compiled and pure copies of its classes
        assert found in ((), _compiled.COMPILED)


_WORKLOAD = r'''
import asyncio, json, sys
import aiouow
from aiouow import Model, column, relationship, ForeignKey, select, selectinload
from aiouow._compiled import compiled_modules
import aiouow.mapping.state as state_module


class CpAuthor(Model):
    __tablename__ = "cp_authors"
    id: int = column(primary_key=True)
    name: str = column()
    books: list["CpBook"] = relationship(back_populates="author", cascade="all, delete-orphan",
                                         order_by="CpBook.id")


class CpBook(Model):
    __tablename__ = "cp_books"
    id: int = column(primary_key=True)
    author_id: int = column(ForeignKey("cp_authors.id"))
    title: str = column()
    author: CpAuthor = relationship(back_populates="books")


async def main(url: str) -> None:
    engine = aiouow.create_engine(url)
    await Model.metadata.drop_all(engine)
    await Model.metadata.create_all(engine)
    Session = aiouow.sessionmaker(engine)
    async with Session() as s:
        authors = [CpAuthor(name=f"a{i}") for i in range(30)]
        for i, a in enumerate(authors):
            a.books = [CpBook(title=f"b{i}.{j}") for j in range(3)]
        s.add_all(authors)
        await s.commit()
    async with Session() as s:
        rows = (await s.scalars(select(CpAuthor).options(selectinload(CpAuthor.books))
                                .order_by(CpAuthor.id))).all()
        for a in rows[::2]:
            a.name = a.name.upper()
            a.books[0].title = "changed"
        await s.delete(rows[1])
        await s.commit()
    async with Session() as s:
        rows = (await s.scalars(select(CpAuthor).options(selectinload(CpAuthor.books))
                                .order_by(CpAuthor.id))).all()
        out = [[a.name, [b.title for b in a.books]] for a in rows]
    await Model.metadata.drop_all(engine)
    await engine.dispose()
    print(json.dumps({"compiled": list(compiled_modules()), "state": state_module.__file__,
                      "rows": out}))


asyncio.run(main(sys.argv[1]))
'''


def _run(url: str, tmp_path: pathlib.Path, pure: bool) -> dict[str, object]:
    script = tmp_path / "workload.py"
    script.write_text(_WORKLOAD)
    env = {k: v for k, v in os.environ.items() if k != "AIOUOW_PURE_PYTHON"}
    if pure:
        env["AIOUOW_PURE_PYTHON"] = "1"
    done = subprocess.run([sys.executable, str(script), url], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_pure_and_compiled_runs_agree(backend: str, tmp_path: pathlib.Path) -> None:
    if backend == "postgresql":
        await require_pg()
        url = await empty_pg_database("compiled")
    else:
        url = f"sqlite:///{tmp_path / 'compiled.db'}"
    pure = _run(url, tmp_path, pure=True)
    assert pure["compiled"] == []
    assert str(pure["state"]).endswith("state.py")
    default = _run(url, tmp_path, pure=False)
    if not _compiled.pure_python_requested():
        assert default["compiled"] == list(_compiled.compiled_modules())
    rows = default["rows"]
    assert rows == pure["rows"]
    assert isinstance(rows, list) and len(rows) == 29
    assert rows[0] == ["A0", ["changed", "b0.1", "b0.2"]]
    assert rows[1] == ["A2", ["changed", "b2.1", "b2.2"]]
    assert rows[2] == ["a3", ["b3.0", "b3.1", "b3.2"]]
