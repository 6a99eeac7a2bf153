"""After a flush, a commit or an ORM UPDATE/DELETE: bring objects and book-keeping in line.

Nothing here does I/O.  ``apply()`` runs after a successful flush: inserted
objects get their generated keys and enter the identity map (clean, with the
session's token in their slot), updated ones forget their history, deleted
ones become ``DELETED``; the innermost transaction level records each, for a
rollback to undo.  ``after_commit()`` detaches the deleted objects for good and
expires the rest (``expire_on_commit``).  ``sync_dml()`` keeps held objects in
step with an ORM ``update()`` / ``delete()`` (SQLAlchemy's
``synchronize_session="auto"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat
from typing import TYPE_CHECKING, Any

from ..mapping import state as _state
from ..mapping.relationships import MANYTOONE
from ..mapping.state import DELETED, DETACHED, InstanceState, full_state, state_of
from ..sql.dml import Delete, Update
from ..sql.elements import BindParameter
from .levels import ALL_ROWS, TxLevel
from .lifecycle import expire_everything, expire_obj
from .restore import note_statement
from .unitofwork import AssocBatch, DeleteBatch, FlushPlan, InsertBatch, ParentGone, UpdateBatch

if TYPE_CHECKING:
    from .session import AsyncSession


def apply(session: AsyncSession, plan: FlushPlan, generated: dict[int, list[Any]]) -> None:
    """Bring objects and book-keeping in line with a successful flush."""
    level = session._levels[-1]
    token = session._token
    set_slot = _state.set_slot
    # a SAVEPOINT notes the tables it wrote: what it loads afterwards may show its own rows
    written = level.written if level.parent is not None else None
    for i, step in enumerate(plan.steps):
        if isinstance(step, ParentGone):
            if written is not None:
                table = step.rel.secondary if step.purge else step.rel.mapper.table
                written.add(table)
                if not step.purge:  # a bulk SET NULL, on rows not all held: any may be loaded later
                    level.rewritten.setdefault(table, set()).add(ALL_ROWS)
            if not step.purge:
                unparent_children(session, step, level)
            continue
        if isinstance(step, AssocBatch):
            if written is not None:
                written.add(step.table)
            continue
        mapper = step.mapper
        if written is not None:
            written.add(mapper.table)
        imap = session._identity_for(mapper)
        if isinstance(step, InsertBatch):
            ids = generated.get(i)
            auto = mapper.autoincrement_key
            keys = step.keys
            rels = mapper.relationships
            rel_keys = rels.keys()
            new = session._new
            inserted = level.inserted
            for obj, row, ident in zip(step.objs, step.rows, ids if ids is not None else repeat(None)):
                d = obj.__dict__
                if ident is not None:
                    # the generated key is the identity (a table with one has a one-column key)
                    d[auto] = ident
                    d.update(zip(keys, row))
                else:
                    d.update(zip(keys, row))
                    ident = mapper.pk_of(d)
                if rels and not d.keys() >= rel_keys:
                    fill_unset_relationships(obj, d, rels)
                oid = id(obj)
                imap[ident] = obj
                del new[oid]
                inserted[oid] = obj
                set_slot(obj, token)
        elif isinstance(step, UpdateBatch):
            vk = mapper.version_key
            keys, mode = step.keys, step.version_mode
            # the identity changes only when the UPDATE writes a primary-key column
            moves = any(k in mapper.pk_keys for k in keys)
            modified, updated = session._modified, level.updated
            get_slot = _state.get_slot  # full_state() without a Python call per object
            for j, (obj, row) in enumerate(zip(step.objs, step.rows)):
                d = obj.__dict__
                d.update(zip(keys, row))
                st = get_slot(obj)
                if mode == "check":
                    d[vk] = step.old_versions[j] + 1
                elif mode == "bump":
                    d.pop(vk, None)  # the database incremented a value we never loaded
                full = st.__class__ is InstanceState
                if moves or not full or st.key is None:
                    new_pk = mapper.pk_of(d)
                    old_pk = st.key if full and st.key is not None else new_pk
                    if new_pk != old_pk:
                        if imap.get(old_pk) is obj:
                            del imap[old_pk]
                        imap[new_pk] = obj
                        level.key_switches.setdefault(id(obj), (obj, old_pk))  # for a rollback
                else:
                    new_pk = st.key
                oid = id(obj)
                modified.pop(oid, None)
                updated[oid] = obj
                if full:
                    st.committed = None
                    st.rel_committed = None
                    st.key = new_pk
                    set_slot(obj, token)  # clean again: back to the compact form
        else:
            assert isinstance(step, DeleteBatch)
            single = len(mapper.pk_keys) == 1
            deleted, modified, removed = session._deleted, session._modified, level.removed
            get_slot = _state.get_slot  # full_state() without a Python call per object
            for obj, pk in zip(step.objs, step.pks):
                key = pk[0] if single else pk  # the identity the plan deleted by
                st = get_slot(obj)
                if st is token:  # the compact state (clean, persistent here): promote it directly
                    set_slot(obj, InstanceState(mapper, DELETED, key, token))
                else:
                    st = state_of(obj)
                    st.status = DELETED
                    st.key = key
                if imap.get(key) is obj:
                    del imap[key]
                oid = id(obj)
                deleted.pop(oid, None)
                modified.pop(oid, None)
                removed[oid] = obj
    updated = level.updated
    for obj in plan.unchanged:
        st = full_state(obj)
        if st is not None:
            st.committed = None
            st.rel_committed = None
        oid = id(obj)
        session._modified.pop(oid, None)
        # no UPDATE, but its relationship changes were flushed (association rows, the other
        # side's foreign keys): a SAVEPOINT rollback must expire it as well
        updated[oid] = obj


def unparent_children(session: AsyncSession, step: ParentGone, level: TxLevel) -> None:
    """Mirror a bulk ``SET fk = NULL`` on the children this session holds."""
    rel = step.rel
    parent_col, child_col = rel.pairs[0]
    gone = {p.__dict__.get(parent_col.key) for p in step.parents}
    objs = session._imap.get(rel.mapper)
    if not objs:
        return
    back = rel.back
    for child in objs.values():
        d = child.__dict__
        if d.get(child_col.key) in gone:
            d[child_col.key] = None
            if back is not None and back.key in d and not back.uselist:
                d[back.key] = None
            level.updated[id(child)] = child  # changed by the flush: a SAVEPOINT rollback expires it


def after_commit(session: AsyncSession) -> None:
    for level in session._levels:
        level.closed = True
        for obj in level.removed.values():
            st = _state.get_slot(obj)  # a full state (promoted when deleted), read without a call
            if st.__class__ is not InstanceState:
                st = state_of(obj)
            st.status = DETACHED
            st.session_ref = None
    session._levels = []
    session._failure = None
    if session.expire_on_commit:
        expire_everything(session, "commit()")



def fill_unset_relationships(obj: Any, d: dict[str, Any], rels: dict[str, Any]) -> None:
    """A row just inserted: relationships never set stay loaded, empty (API.md section 9); a
    many-to-one whose foreign key was set by hand stays unloaded, for an explicit load."""
    for key, rel in rels.items():
        if key in d:
            continue
        if rel.uselist:
            d[key] = rel.empty_value(obj)
        elif rel.direction != MANYTOONE or all(d.get(local.key) is None for local, _ in rel.pairs):
            d[key] = None


def sync_dml(session: AsyncSession, stmt: Update | Delete, rows: Sequence[Any] | None,
             fetched_at: dict[str, int]) -> None:
    """An ORM UPDATE/DELETE ran: ``rows`` (primary key first, then the values fetched back for
    ``fetched_at``'s columns) are the rows it changed, or None where unknown (an UPDATE with
    its own RETURNING: the columns it set are expired in every held object)."""
    mapper = stmt.table.mapper
    assert mapper is not None
    if rows is None:
        if isinstance(stmt, Update):
            names = [c.key for c, _ in stmt._values]
            for obj in list(session._identity_for(mapper).values()):
                expire_obj(session, obj, mapper, names)
        return
    imap = session._identity_for(mapper)
    npk = len(mapper.pk_keys)
    single = npk == 1
    level = session._levels[-1]
    note_statement(session, stmt, [r[0] if single else tuple(r[:npk]) for r in rows])
    for r in rows:
        obj = imap.get(r[0] if single else tuple(r[:npk]))
        if obj is None:
            continue
        if isinstance(stmt, Update):
            d = obj.__dict__
            st = full_state(obj)
            level.updated[id(obj)] = obj  # a SAVEPOINT rollback must expire it
            for col, value in stmt._values:
                if isinstance(value, BindParameter):
                    d[col.key] = value.value
                else:
                    d[col.key] = r[fetched_at[col.key]]
                if st is not None and st.committed:
                    st.committed.pop(col.key, None)
        else:
            st = state_of(obj)
            del imap[st.key if st.key is not None else mapper.pk_of(obj.__dict__)]
            st.status = DELETED
            oid = id(obj)
            session._deleted.pop(oid, None)
            session._modified.pop(oid, None)
            level.removed[oid] = obj
