"""An audit log kept by session events: every change of an audited model, in the same transaction.

    python examples/audit_log.py                                  # SQLite in a temporary directory
    python examples/audit_log.py --url postgresql://postgres@127.0.0.1/db

``install_audit(Session)`` registers two listeners on a sessionmaker:

* ``before_flush`` (a plain function): notes the old and new value of each changed column of the
  audited objects about to be updated, while their attribute history still shows them;
* ``after_flush`` (an ``async def``): writes one ``AuditEntry`` row per inserted, updated and
  deleted audited object with ``await session.execute(insert(AuditEntry), rows)``, on the
  session's connection and in the flush's transaction.  The generated keys of inserted rows are
  known by then; a rollback discards the audit rows with the changes, a commit keeps both.

The tables are prefixed (``t14_``) to keep them apart from the test suite's in a shared database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from typing import Any

from aiouow import AsyncSession, Engine, Mapped, Model, column, create_engine, events, insert, inspect, select
from aiouow import sessionmaker as SessionMaker  # noqa: N812 - the class, for annotations
from aiouow.events import FlushContext


class Account(Model):
    __tablename__ = "t14_accounts"
    id: Mapped[int] = column(primary_key=True)
    owner: Mapped[str] = column()
    balance: Mapped[int] = column(default=0)


class AuditEntry(Model):
    __tablename__ = "t14_audit_log"
    id: Mapped[int] = column(primary_key=True)
    table_name: Mapped[str] = column()
    row_id: Mapped[int] = column()
    action: Mapped[str] = column()  # "insert", "update" or "delete"
    #: column -> [old, new] ("insert": [None, value], "delete": [value, None])
    changes: Mapped[dict[str, Any]] = column()


AUDITED: tuple[type[Model], ...] = (Account,)


def _columns(obj: Model) -> list[str]:
    return list(inspect(type(obj)).columns)


def collect_updates(session: AsyncSession, flush: FlushContext) -> None:
    """before_flush: the old values are only known before the flush writes the new ones."""
    notes: dict[int, dict[str, list[Any]]] = {}
    for obj in session.dirty:
        if isinstance(obj, AUDITED):
            attrs = inspect(obj).attrs
            changes = {}
            for name in _columns(obj):
                h = attrs[name].history
                if h.has_changes():
                    changes[name] = [h.deleted[0] if h.deleted else None, h.added[0] if h.added else None]
            if changes:
                notes[id(obj)] = changes
    flush.info["audit_updates"] = notes


async def write_audit(session: AsyncSession, flush: FlushContext) -> None:
    """after_flush: one audit row per audited row the flush wrote, in the same transaction."""
    rows: list[dict[str, Any]] = []
    for obj in flush.inserted:
        if isinstance(obj, AUDITED):
            values = {k: [None, getattr(obj, k)] for k in _columns(obj)}
            rows.append({"table_name": obj.__tablename__, "row_id": values["id"][1], "action": "insert",
                         "changes": values})
    notes = flush.info.get("audit_updates", {})
    for obj in flush.updated:
        if isinstance(obj, AUDITED) and id(obj) in notes:
            rows.append({"table_name": obj.__tablename__, "row_id": obj.id, "action": "update",
                         "changes": notes[id(obj)]})
    for obj in flush.deleted:
        if isinstance(obj, AUDITED):
            values = {k: [obj.__dict__.get(k), None] for k in _columns(obj)}
            rows.append({"table_name": obj.__tablename__, "row_id": values["id"][0], "action": "delete",
                         "changes": values})
    if rows:
        await session.execute(insert(AuditEntry), rows)  # the flush's connection; no autoflush


def install_audit(Session: SessionMaker) -> None:  # noqa: N803 - a sessionmaker, named as usual
    events.listen(Session, "before_flush", collect_updates)
    events.listen(Session, "after_flush", write_audit)


def uninstall_audit(Session: SessionMaker) -> None:  # noqa: N803
    events.remove(Session, "before_flush", collect_updates)
    events.remove(Session, "after_flush", write_audit)


async def demo(engine: Engine) -> list[tuple[str, int, dict[str, Any]]]:
    """Insert, update, delete (and a rolled-back change); returns the audit log, oldest first."""
    Session = SessionMaker(engine)  # noqa: N806
    install_audit(Session)
    try:
        return await changes(Session)
    finally:
        uninstall_audit(Session)


async def changes(Session: SessionMaker) -> list[tuple[str, int, dict[str, Any]]]:  # noqa: N803
    async with Session.begin() as session:
        ann, bob = Account(owner="ann", balance=100), Account(owner="bob")
        session.add_all([ann, bob])
    async with Session.begin() as session:
        ann = await session.get_one(Account, ann.id)
        ann.balance += 50
        await session.delete(await session.get_one(Account, bob.id))
    async with Session() as session:
        ann = await session.get_one(Account, ann.id)
        ann.balance = 0
        await session.flush()  # the audit row is written here ...
        await session.rollback()  # ... and rolled back with the change
    async with Session() as session:
        log = (await session.scalars(select(AuditEntry).order_by(AuditEntry.id))).all()
        return [(e.action, e.row_id, e.changes) for e in log]


async def main(url: str) -> None:
    engine = create_engine(url)
    tables = [Account.__table__, AuditEntry.__table__]
    await Model.metadata.drop_all(engine, tables=tables)
    await Model.metadata.create_all(engine, tables=tables)
    try:
        for action, row_id, changes in await demo(engine):
            print(f"{action:6} account {row_id}: {changes}")
    finally:
        await Model.metadata.drop_all(engine, tables=tables)
        await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("AIOUOW_URL"),
                        help="database URL (default: an SQLite file in a temporary directory)")
    args = parser.parse_args()
    if args.url:
        asyncio.run(main(args.url))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(main(f"sqlite:///{tmp}/audit.db"))
