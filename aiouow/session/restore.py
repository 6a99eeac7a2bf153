"""Undoing a rolled-back transaction or SAVEPOINT in memory, and the records that makes possible.

The database forgets the work of a rolled-back level by itself; the identity
map must be told.  Each ``TxLevel`` (``levels.py``) records what its work
changed in memory: ``restore()`` makes the objects it inserted or added
transient again, the ones it deleted persistent again, restores primary keys
its UPDATEs changed, and expires what may now be stale.  A SAVEPOINT also
notes what it loaded (``note_loaded``) and which tables other statements wrote
(``note_statement``), because a value loaded after its own writes may show
rows its rollback took away.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..mapping.mapper import Mapper
from ..mapping.state import DELETED, DETACHED, PERSISTENT, full_state, get_slot, state_of
from ..sql.dml import Delete, DMLStatement, Update
from ..sql.elements import and_, or_
from ..sql.selectable import Select
from .levels import ALL_ROWS, ANY_TABLE, NEW_ROWS, TxLevel
from .lifecycle import expire_everything, expire_obj, to_transient

if TYPE_CHECKING:
    from .session import AsyncSession


def restore(session: AsyncSession, levels: Sequence[TxLevel], whole: bool) -> None:
    """Undo the in-memory effects of the given transaction levels."""
    gone = {id(o): o for level in levels for o in (*level.inserted.values(), *level.added.values())}
    switches: dict[int, tuple[Any, Any]] = {}
    for level in levels:  # outermost first: the key from before all the work undone
        for oid, switch in level.key_switches.items():
            switches.setdefault(oid, switch)
    for obj in gone.values():
        to_transient(session, obj)
    # all keys leave the identity map before any comes back: two objects may have swapped theirs
    rekeyed = [(obj, old_key) for oid, (obj, old_key) in switches.items()
               if oid not in gone and unmap_for_key_change(session, obj, old_key)]
    for obj, old_key in rekeyed:
        claim_key(session, obj, old_key)
    for level in levels:
        for oid, obj in level.removed.items():
            if oid in gone:
                continue  # inserted and deleted within the work undone: transient, not restored
            mapper = type(obj).__aiouow_mapper__
            st = state_of(obj)
            st.status = PERSISTENT
            st.session_ref = session._token
            claim_key(session, obj, st.key)
            if st.committed is not None or st.rel_committed is not None:  # changed before its delete
                expire_obj(session, obj, mapper, None)
                session._expire_reasons[oid] = "rollback()" if whole else "rollback of a SAVEPOINT"
    if whole:
        for obj in list(session._new.values()):
            to_transient(session, obj)
        session._deleted = {}
        expire_everything(session, "rollback()")
    else:
        # begin_nested() flushed first, so every delete() not yet flushed came after the
        # SAVEPOINT, and every change held in memory was made inside it; as in SQLAlchemy,
        # what it changed is expired, not restored (both sides of a relationship were noted
        # as changed by the back_populates sync, flushed or not)
        session._deleted = {}
        reason = "rollback of a SAVEPOINT"
        for level in levels:
            for obj in level.updated.values():
                expire_held(session, obj, None, reason)
        for obj in list(session._modified.values()):
            expire_held(session, obj, None, reason)
        for level in levels:
            expire_loaded(session, level, reason)


def unmap_for_key_change(session: AsyncSession, obj: Any, old_key: Any) -> bool:
    """Undo a flushed primary-key change in memory, up to putting the object back in the
    identity map: True if it is to go back there (it was there under its new key).  The
    rolled-back row has its old key again (an expired object's key stays readable, so it
    must be the database's); a deleted object's key changes too (``removed`` restores it)."""
    st = state_of(obj)
    if st.session_ref is not session._token or st.status not in (PERSISTENT, DELETED):
        return False
    mapper: Mapper = type(obj).__aiouow_mapper__
    imap = session._identity_for(mapper)
    current = st.key if st.key is not None else mapper.pk_of(obj.__dict__)
    held = imap.get(current) is obj
    if held:
        del imap[current]
    st.key = old_key
    obj.__dict__.update(zip(mapper.pk_keys, old_key if len(mapper.pk_keys) > 1 else (old_key,)))
    if st.committed:
        for k in mapper.pk_keys:
            st.committed.pop(k, None)
    return held


def claim_key(session: AsyncSession, obj: Any, key: Any) -> None:
    """Put an object whose row the rollback brought back (its deletion or key change undone)
    into the identity map.  An object there under that key stands for a row the work undone
    made after the key came free (a core INSERT re-using it, SQLite re-uses ROWIDs): that row
    is gone, so it leaves the identity map, as objects for rows that vanished do."""
    mapper: Mapper = type(obj).__aiouow_mapper__
    imap = session._identity_for(mapper)
    other = imap.get(key)
    if other is not None and other is not obj:
        detach_vanished(session, other, mapper, key)
    imap[key] = obj


def held_persistent(session: AsyncSession, obj: Any) -> bool:
    """Persistent in this session (not expunged meanwhile, nor attached elsewhere)."""
    st = full_state(obj)
    if st is None:
        return get_slot(obj) is session._token
    return st.session_ref is session._token and st.status == PERSISTENT


def expire_held(session: AsyncSession, obj: Any, names: list[str] | None, reason: str) -> None:
    if held_persistent(session, obj):
        expire_obj(session, obj, type(obj).__aiouow_mapper__, names)
        session._expire_reasons[id(obj)] = reason


def expire_loaded(session: AsyncSession, level: TxLevel, reason: str) -> None:
    """A SAVEPOINT is rolled back: expire what it loaded that its own writes may show.

    Loaded after its writes, a value may show what the rollback took away: a collection
    or reference loaded from a table it wrote (holding a row it inserted, missing one it
    deleted), columns of a row a statement updated, an object for a row a statement
    inserted.  What it changed through its objects is expired already (``updated``).
    Other loads are still true; they pass to the enclosing SAVEPOINT, whose rollback may
    undo what they show."""
    written = with_cascades(level.written)
    rewritten = level.rewritten
    everything = ANY_TABLE in written
    for table in written - level.written:  # ON DELETE / ON UPDATE actions change columns
        rewritten.setdefault(table, set()).add(ALL_ROWS)
    parent = level.parent
    for new, loaded in ((True, level.loaded_new), (False, level.loaded)):
        keep = None
        if parent is not None and parent.parent is not None:
            keep = parent.loaded_new if new else parent.loaded
        for oid, obj in loaded.items():
            if written and held_persistent(session, obj):
                mapper = obj.__aiouow_mapper__
                rows = rewritten.get(mapper.table)
                if everything or rows is not None and (
                        ALL_ROWS in rows or (new and NEW_ROWS in rows) or mapper.pk_of(obj.__dict__) in rows):
                    expire_held(session, obj, None, reason)
                else:
                    d = obj.__dict__
                    stale = [k for k, rel in mapper.relationships.items()
                             if k in d and (rel.mapper.table in written or rel.secondary in written)]
                    if stale:
                        expire_held(session, obj, stale, reason)
            if keep is not None:
                # expired or not: an object first known here is still new to the enclosing
                # level, where it may be loaded again
                keep[oid] = obj


async def forget_vanished_rows(session: AsyncSession, level: TxLevel) -> None:
    """After a SAVEPOINT rollback: objects it first loaded from a table that a statement
    (a core INSERT, text()) inserted into may stand for rows the rollback removed; those
    whose row is gone leave the identity map (detached), as the objects a flush inserted
    there do, so that a new row with the same key is not mistaken for them."""
    if not level.written:
        return
    everything = ANY_TABLE in level.written
    by_mapper: dict[Mapper, list[Any]] = {}
    for obj in level.loaded_new.values():
        mapper = obj.__aiouow_mapper__
        rows = level.rewritten.get(mapper.table)
        if (everything or (rows is not None and NEW_ROWS in rows)) and held_persistent(session, obj):
            by_mapper.setdefault(mapper, []).append(obj)
    if not by_mapper:
        return
    conn = session._conn
    assert conn is not None
    for mapper, objs in by_mapper.items():
        cols = list(mapper.primary_key)
        single = len(cols) == 1
        keys = {mapper.pk_of(o.__dict__): o for o in objs}
        found: set[Any] = set()
        pks = list(keys)
        size = max(1, (conn.dialect.max_params - 10) // len(cols))
        for i in range(0, len(pks), size):
            chunk = pks[i:i + size]
            where = cols[0].in_(chunk) if single else or_(*[and_(*[c == v for c, v in zip(cols, k)])
                                                           for k in chunk])
            result = await conn.execute(Select(*cols).where(where))
            found.update(r[0] if single else tuple(r) for r in result.all())
        for key, obj in keys.items():
            if key not in found:
                detach_vanished(session, obj, mapper, key)


def detach_vanished(session: AsyncSession, obj: Any, mapper: Mapper, key: Any) -> None:
    imap = session._imap.get(mapper)
    if imap is not None and imap.get(key) is obj:
        del imap[key]
    oid = id(obj)
    session._modified.pop(oid, None)
    session._deleted.pop(oid, None)
    st = state_of(obj)
    st.status = DETACHED
    st.session_ref = None
    st.key = key


def loads_tracker(session: AsyncSession) -> TxLevel | None:
    """Inside a SAVEPOINT, the level where objects given values from the database are noted."""
    levels = session._levels
    return levels[-1] if len(levels) > 1 else None


def note_loaded(session: AsyncSession, objs: Iterable[Any]) -> None:
    """Objects the session already held were given values from the database."""
    level = loads_tracker(session)
    if level is not None:
        track = level.loaded
        for obj in objs:
            track[id(obj)] = obj


def note_statement(session: AsyncSession, statement: Any, keys: Iterable[Any] | None = None) -> None:
    """A statement other than a flush wrote rows inside a SAVEPOINT; ``keys``: the primary
    keys of the rows an UPDATE changed, where known."""
    level = loads_tracker(session)
    if level is None:
        return
    if not isinstance(statement, DMLStatement):
        level.written.add(ANY_TABLE)
        return
    table = statement.table
    level.written.add(table)
    if isinstance(statement, Update):
        level.rewritten.setdefault(table, set()).update((ALL_ROWS,) if keys is None else keys)
    elif not isinstance(statement, Delete):
        level.rewritten.setdefault(table, set()).add(NEW_ROWS)


def with_cascades(tables: set[Any]) -> set[Any]:
    """``tables`` plus those the database changes along with them (ON DELETE / ON UPDATE actions)."""
    out = set(tables)
    todo = [t for t in tables if t is not ANY_TABLE]
    while todo:
        target = todo.pop()
        for table in target.metadata.tables.values():
            if table not in out and any((fk.ondelete or fk.onupdate) and fk.column.table is target
                                        for fk in table.foreign_keys):
                out.add(table)
                todo.append(table)
    return out
