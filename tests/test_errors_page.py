"""Every exception class has a stable code with an entry on docs/errors.md, and a raised error's text
links to that entry."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import aiouow
from aiouow import Mapped, MetaData, Model, column, exc, select, sessionmaker

ROOT = Path(__file__).resolve().parents[1]
PAGE = (ROOT / "docs" / "errors.md").read_text()
CLASSES = [obj for _, obj in inspect.getmembers(exc, inspect.isclass)
           if issubclass(obj, exc.AiouowError) and obj.__module__ == exc.__name__]
# "## ClassName {#code}": the entries of the page, by anchor
ENTRIES = dict((code, name) for name, code in re.findall(r"^## (\w+) \{#(\w+)\}$", PAGE, re.M))


def test_every_class_of_exc_is_listed_and_exported() -> None:
    assert {c.__name__ for c in CLASSES} == set(exc.__all__)
    assert len(CLASSES) == 25


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_each_class_has_its_own_code_and_its_entry(cls: type[exc.AiouowError]) -> None:
    code = cls.__dict__.get("code")
    assert isinstance(code, str) and re.fullmatch(r"[a-z][a-z0-9]{3}", code), \
        f"{cls.__name__} needs a code of its own (a class attribute, not inherited)"
    assert ENTRIES.get(code) == cls.__name__, f"docs/errors.md needs '## {cls.__name__} {{#{code}}}'"


def test_the_codes_are_unique_and_the_page_has_no_stale_entry() -> None:
    codes = [c.code for c in CLASSES]
    assert len(set(codes)) == len(codes)
    assert set(ENTRIES) == set(codes)


def test_the_link_base_is_the_errors_page_of_the_site() -> None:
    site_url = re.search(r"^site_url:\s*(\S+)$", (ROOT / "mkdocs.yml").read_text(), re.M)
    assert site_url is not None
    assert exc.ERRORS_URL == site_url.group(1).rstrip("/") + "/errors/"


def test_every_class_links_its_entry_and_keeps_its_message() -> None:
    for cls in CLASSES:
        err = cls("something went wrong")
        text = str(err)
        assert text.startswith("something went wrong")
        assert text.endswith(f"(aiouow error {cls.code}: {exc.ERRORS_URL}#{cls.code})"), cls
    with_sql = exc.IntegrityError("dup", None, "INSERT INTO t VALUES ($1)")
    assert str(with_sql) == ("dup\n[SQL: INSERT INTO t VALUES ($1)]\n"
                             f"(aiouow error x9sz: {exc.ERRORS_URL}#x9sz)")
    assert str(exc.NoSuchColumnError("no column 'x'")).startswith("no column 'x'\n")  # not KeyError's quoting


class MemoBase(Model):
    metadata = MetaData()  # not the suite's: the db fixture empties every table of Model.metadata


class Memo(MemoBase):
    __tablename__ = "errors_page_memos"
    id: Mapped[int] = column(primary_key=True)
    text: Mapped[str] = column(unique=True)


async def test_a_raised_error_carries_the_link(engine: aiouow.Engine) -> None:
    await MemoBase.metadata.create_all(engine)
    try:
        async with sessionmaker(engine)() as session:
            with pytest.raises(exc.NoResultFound) as caught:
                await session.get_one(Memo, 1)
            assert str(caught.value).endswith(f"{exc.ERRORS_URL}#su2z)")
            session.add(Memo(text="a"))
            await session.flush()
            session.add(Memo(text="a"))
            with pytest.raises(exc.IntegrityError) as dup:
                await session.flush()
            assert str(dup.value).endswith(f"{exc.ERRORS_URL}#x9sz)")
            with pytest.raises(exc.PendingRollbackError) as pending:
                await session.execute(select(Memo))
            text = str(pending.value)
            # it quotes the flush's error without that error's link: one link, its own
            assert text.count("aiouow error") == 1 and text.endswith(f"{exc.ERRORS_URL}#hnwu)")
            await session.rollback()
    finally:
        await MemoBase.metadata.drop_all(engine)
