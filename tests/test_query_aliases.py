"""aliased(): self-joins and one table joined twice, on a seeded staff and an order book,
each checked against the same query written in raw SQL, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from typing import Any

import pytest

from aiouow import AsyncSession, Engine, ForeignKey, Model, aliased, column, func, relationship, select
from aiouow.exc import ArgumentError

from .query_support import orm_rows, raw_sql


class AlEmployee(Model):
    __tablename__ = "al_employees"
    id: int = column(primary_key=True)
    name: str = column()
    dept: str = column()
    reports_to: int | None = column(ForeignKey("al_employees.id"))
    manager: AlEmployee | None = relationship(remote_side="AlEmployee.id", back_populates="reports")
    reports: list[AlEmployee] = relationship(back_populates="manager")


class AlPart(Model):
    """Database names that differ from the attribute names, aliased."""

    __tablename__ = "al_parts"
    id: int = column("PartId", primary_key=True)
    label: str = column("Label")
    parent_id: int | None = column("ParentId", ForeignKey("al_parts.PartId"))
    parent: AlPart | None = relationship(remote_side="AlPart.id")


class AlAddress(Model):
    __tablename__ = "al_addresses"
    id: int = column(primary_key=True)
    city: str = column()


class AlOrder(Model):
    __tablename__ = "al_orders"
    id: int = column(primary_key=True)
    billing_id: int = column(ForeignKey("al_addresses.id"))
    shipping_id: int = column(ForeignKey("al_addresses.id"))


def _staff() -> list[tuple[int, str, str, int | None]]:
    rnd = random.Random(1212)
    rows: list[tuple[int, str, str, int | None]] = []
    for i in range(1, 201):
        # the first ten have no manager; everyone else reports to someone hired before
        boss = None if i <= 10 else rnd.randint(1, min(i - 1, 60))
        rows.append((i, f"emp{i:03}", rnd.choice(["ops", "dev", "sales"]), boss))
    return rows


STAFF = _staff()
CITIES = ["Berlin", "Lyon", "Austin", "Porto", "Oslo", "Graz"]


@pytest.fixture
async def staff(db: Engine) -> Engine:
    rnd = random.Random(7)
    async with AsyncSession(db) as s:
        for i, n, d, b in STAFF:
            s.add(AlEmployee(id=i, name=n, dept=d, reports_to=b))
            if i % 20 == 0:
                await s.flush()  # a manager row exists before its reports point to it
        s.add_all([AlAddress(id=i, city=c) for i, c in enumerate(CITIES, 1)])
        await s.flush()
        s.add_all([AlOrder(id=i, billing_id=rnd.randint(1, 6), shipping_id=rnd.randint(1, 6))
                   for i in range(1, 121)])
        await s.commit()
    return db


def _sql(engine: Engine, stmt: Any) -> str:
    return engine.dialect.compile(stmt)[0].sql


async def test_self_join_pairs_are_identity_mapped_objects(staff: Engine) -> None:
    m = aliased(AlEmployee, name="manager")
    stmt = select(AlEmployee, m).join(m, AlEmployee.reports_to == m.id).order_by(AlEmployee.id)
    raw = await raw_sql(staff, "SELECT e.id, mg.id FROM al_employees e JOIN al_employees mg "
                            "ON e.reports_to = mg.id ORDER BY e.id")
    async with AsyncSession(staff) as s:
        pairs = (await s.execute(stmt)).all()
        assert [(e.id, mg.id) for e, mg in pairs] == raw and len(raw) == 190
        assert all(type(mg) is AlEmployee for _, mg in pairs)
        by_id = {e.id: e for e, _ in pairs}
        for _, mg in pairs:
            # the same row as employee and as manager is one object, and the one get() returns
            assert mg is await s.get(AlEmployee, mg.id)
            if mg.id in by_id:
                assert by_id[mg.id] is mg
        assert pairs[0][1].name == f"emp{pairs[0][1].id:03}"


async def test_alias_renders_with_its_name(staff: Engine) -> None:
    m = aliased(AlEmployee, name="manager")
    stmt = select(m.name).where(m.id == 3)
    sql = _sql(staff, stmt)
    assert 'SELECT "manager"."name" FROM "al_employees" AS "manager" WHERE "manager"."id" = ' in sql
    assert await orm_rows(staff, stmt) == [("emp003",)]


async def test_two_aliases_where_and_order_by_on_alias_columns(staff: Engine) -> None:
    e = aliased(AlEmployee, name="e")
    m = aliased(AlEmployee)
    stmt = (select(e.name, m.name).join(m, e.reports_to == m.id)
            .where(m.dept == "dev", e.dept != m.dept).order_by(m.name.desc(), e.id))
    raw = await raw_sql(staff, "SELECT e.name, m.name FROM al_employees e JOIN al_employees m "
                            "ON e.reports_to = m.id WHERE m.dept = 'dev' AND e.dept <> m.dept "
                            "ORDER BY m.name DESC, e.id")
    assert await orm_rows(staff, stmt) == raw and raw
    assert 'JOIN "al_employees" AS "al_employees_alias_' in _sql(staff, stmt)


async def test_select_alias_alone_and_filter_by(staff: Engine) -> None:
    m = aliased(AlEmployee, name="boss")
    async with AsyncSession(staff) as s:
        got = (await s.scalars(select(m).where(m.reports_to.is_(None)).order_by(m.id))).all()
        assert [x.id for x in got] == list(range(1, 11))
        assert got[0] is await s.get(AlEmployee, 1)
        one = (await s.scalars(select(m).filter_by(name="emp042"))).one()
        assert one.id == 42


async def test_outerjoin_to_alias(staff: Engine) -> None:
    m = aliased(AlEmployee, name="m")
    stmt = (select(AlEmployee.id, m.name).outerjoin(m, AlEmployee.reports_to == m.id)
            .where(AlEmployee.id < 30).order_by(AlEmployee.id))
    raw = await raw_sql(staff, "SELECT e.id, m.name FROM al_employees e LEFT OUTER JOIN al_employees m "
                            "ON e.reports_to = m.id WHERE e.id < 30 ORDER BY e.id")
    got = await orm_rows(staff, stmt)
    assert got == raw and got[0][1] is None


async def test_group_by_manager_counts(staff: Engine) -> None:
    m = aliased(AlEmployee, name="m")
    stmt = (select(m.name, func.count(AlEmployee.id)).join(m, AlEmployee.reports_to == m.id)
            .group_by(m.name).order_by(func.count(AlEmployee.id).desc(), m.name).limit(10))
    raw = await raw_sql(staff, "SELECT m.name, count(e.id) FROM al_employees e JOIN al_employees m "
                            "ON e.reports_to = m.id GROUP BY m.name ORDER BY count(e.id) DESC, m.name LIMIT 10")
    assert await orm_rows(staff, stmt) == raw and raw


async def test_join_along_relationship_to_alias(staff: Engine) -> None:
    m = aliased(AlEmployee, name="m")
    raw = await raw_sql(staff, "SELECT e.id, m.id FROM al_employees e JOIN al_employees m "
                            "ON e.reports_to = m.id WHERE m.dept = 'ops' ORDER BY e.id")
    for stmt in (select(AlEmployee.id, m.id).join(m, AlEmployee.manager).where(m.dept == "ops"),
                 select(AlEmployee.id, m.id).join(AlEmployee.manager.of_type(m)).where(m.dept == "ops")):
        assert await orm_rows(staff, stmt.order_by(AlEmployee.id)) == raw and raw
    stmt = (select(AlEmployee, m).outerjoin(AlEmployee.manager.of_type(m))
            .where(AlEmployee.id.in_([1, 2, 150])).order_by(AlEmployee.id))
    async with AsyncSession(staff) as s:
        rows = (await s.execute(stmt)).all()
        assert [(e.id, mg) for e, mg in rows[:2]] == [(1, None), (2, None)]
        assert rows[2][1] is await s.get(AlEmployee, STAFF[149][3])


async def test_join_along_one_to_many_to_alias(staff: Engine) -> None:
    r = aliased(AlEmployee, name="r")
    stmt = (select(AlEmployee.id, func.count(r.id)).join(AlEmployee.reports.of_type(r))
            .group_by(AlEmployee.id).order_by(AlEmployee.id))
    raw = await raw_sql(staff, "SELECT m.id, count(r.id) FROM al_employees m JOIN al_employees r "
                            "ON r.reports_to = m.id GROUP BY m.id ORDER BY m.id")
    assert await orm_rows(staff, stmt) == raw and raw


async def test_relationship_join_from_alias(staff: Engine) -> None:
    e = aliased(AlEmployee, name="e")
    m = aliased(AlEmployee, name="m")
    stmt = select(e.id, m.name).join(e.manager.of_type(m)).where(e.id > 190).order_by(e.id)
    raw = await raw_sql(staff, "SELECT e.id, m.name FROM al_employees e JOIN al_employees m "
                            "ON e.reports_to = m.id WHERE e.id > 190 ORDER BY e.id")
    assert await orm_rows(staff, stmt) == raw and raw


async def test_self_referential_join_aliases_the_target_automatically(staff: Engine) -> None:
    stmt = select(AlEmployee).join(AlEmployee.manager).where(AlEmployee.id > 195).order_by(AlEmployee.id)
    raw = await raw_sql(staff, "SELECT e.id FROM al_employees e JOIN al_employees m "
                            "ON e.reports_to = m.id WHERE e.id > 195 ORDER BY e.id")
    async with AsyncSession(staff) as s:
        got = (await s.scalars(stmt)).all()
        assert [(x.id,) for x in got] == raw and raw
    # joined twice from the plain entity: each join reaches an alias of its own
    two = select(AlEmployee.id).join(AlEmployee.manager).join(AlEmployee.manager).where(AlEmployee.id > 195)
    sql = _sql(staff, two)
    assert 'JOIN "al_employees" AS "al_employees_1" ON "al_employees"."reports_to" = "al_employees_1"."id"' in sql
    assert 'JOIN "al_employees" AS "al_employees_2" ON "al_employees"."reports_to" = "al_employees_2"."id"' in sql


async def test_one_table_joined_twice(staff: Engine) -> None:
    bill = aliased(AlAddress, name="bill")
    ship = aliased(AlAddress, name="ship")
    stmt = (select(AlOrder.id, bill.city, ship.city)
            .join(bill, AlOrder.billing_id == bill.id).join(ship, AlOrder.shipping_id == ship.id)
            .where(bill.city != ship.city).order_by(AlOrder.id))
    raw = await raw_sql(staff, "SELECT o.id, b.city, s.city FROM al_orders o "
                               "JOIN al_addresses b ON o.billing_id = b.id "
                               "JOIN al_addresses s ON o.shipping_id = s.id WHERE b.city <> s.city ORDER BY o.id")
    assert await orm_rows(staff, stmt) == raw and raw
    async with AsyncSession(staff) as s:
        rows = (await s.execute(select(AlOrder, bill, ship).join(bill, AlOrder.billing_id == bill.id)
                                .join(ship, AlOrder.shipping_id == ship.id).order_by(AlOrder.id))).all()
        assert len(rows) == 120
        for o, b, sh in rows:
            assert (b.id, sh.id) == (o.billing_id, o.shipping_id)
            assert b is await s.get(AlAddress, b.id)
            if b.id == sh.id:
                assert b is sh


async def test_alias_of_a_model_with_database_column_names(db: Engine) -> None:
    async with AsyncSession(db) as s:
        s.add(AlPart(id=1, label="frame"))
        await s.flush()
        s.add_all([AlPart(id=2, label="wheel", parent_id=1), AlPart(id=3, label="spoke", parent_id=2)])
        await s.commit()
    up = aliased(AlPart, name="up")
    stmt = select(AlPart.label, up.label).join(AlPart.parent.of_type(up)).order_by(AlPart.id)
    raw = await raw_sql(db, 'SELECT p."Label", u."Label" FROM al_parts p JOIN al_parts u ON p."ParentId" = u."PartId" '
                         "ORDER BY p.\"PartId\"")
    assert await orm_rows(db, stmt) == raw == [("wheel", "frame"), ("spoke", "wheel")]
    async with AsyncSession(db) as s:
        row = (await s.execute(select(AlPart, up).join(up, AlPart.parent_id == up.id).where(up.label == "wheel"))).one()
        assert (row[0].label, row[1].label) == ("spoke", "wheel")
        assert row[1] is await s.get(AlPart, 2)


def test_errors() -> None:
    with pytest.raises(ArgumentError, match="mapped model"):
        aliased(AlAddress.__table__)  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match="alias of"):
        AlEmployee.manager.of_type(aliased(AlAddress))
    m = aliased(AlEmployee, name="m")
    with pytest.raises(AttributeError):
        m.nope  # type: ignore[attr-defined]  # noqa: B018


async def test_loader_options_through_an_alias(staff: Engine, sql: Any) -> None:
    """selectinload(m.reports) loads the alias's objects' relationship; the plain option loads
    the unaliased entity's; joinedload through an alias loads like selectinload."""
    from aiouow import inspect, joinedload, selectinload

    e = aliased(AlEmployee, name="e")
    m = aliased(AlEmployee, name="m")
    expected = {mid: sorted(i for i, _, _, b in STAFF if b == mid) for mid in range(1, 201)}
    async with AsyncSession(staff) as s:
        stmt = (select(e, m).join(m, e.reports_to == m.id).where(e.id.between(50, 60))
                .options(selectinload(m.reports)).order_by(e.id))
        with sql(staff) as log:
            pairs = (await s.execute(stmt)).all()
        assert log.count("SELECT") == 2
        assert pairs
        boss_ids = {b.id for _, b in pairs}
        for emp, boss in pairs:
            assert sorted(r.id for r in boss.reports) == expected[boss.id]
            if emp.id not in boss_ids:  # the option loaded the managers' reports only
                assert "reports" in inspect(emp).unloaded

    async with AsyncSession(staff) as s:
        pairs = (await s.execute(select(e, m).join(m, e.reports_to == m.id).where(e.id.between(50, 60))
                                 .options(selectinload(AlEmployee.reports)).order_by(e.id))).all()
        # a plain option applies to the first entity selected from the model (here via alias e)
        for emp, _ in pairs:
            assert sorted(r.id for r in emp.reports) == expected[emp.id]

    async with AsyncSession(staff) as s:
        with sql(staff) as log:
            bosses = (await s.scalars(select(m).where(m.id <= 10).order_by(m.id)
                                      .options(joinedload(m.reports)))).all()
        assert log.count("SELECT") == 2
        assert [sorted(r.id for r in b.reports) for b in bosses] == [expected[i] for i in range(1, 11)]


async def test_loader_option_through_an_alias_not_selected(staff: Engine) -> None:
    from aiouow import selectinload

    m = aliased(AlEmployee, name="m")
    async with AsyncSession(staff) as s:
        with pytest.raises(ArgumentError, match="through 'm' does not apply"):
            await s.execute(select(AlEmployee).options(selectinload(m.reports)))
    with pytest.raises(ArgumentError, match="of_type"):
        selectinload(AlEmployee.manager.of_type(m))
    with pytest.raises(ArgumentError, match="first step"):
        selectinload(AlEmployee.reports).selectinload(m.reports)


def test_inspect_an_alias() -> None:
    from aiouow import inspect

    m = aliased(AlPart, name="up")
    info = inspect(m)
    assert info.is_aliased_class and info.class_ is AlPart and info.mapper is inspect(AlPart)
    assert info.name == "up" and info.selectable is info.table
    assert list(info.columns) == ["id", "label", "parent_id"]
    assert info.columns["label"] is m.label
    assert info.columns["label"].name == "Label"
