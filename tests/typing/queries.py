"""Statements, sessions, results, loading and scoping (checked by mypy and pyright, never run)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, assert_type

from aiouow import (
    AsyncResult,
    AsyncSession,
    Connection,
    Engine,
    Result,
    Row,
    ScalarResult,
    aliased,
    case,
    cast,
    create_engine,
    delete,
    distinct,
    except_,
    exists,
    extract,
    false,
    func,
    insert,
    intersect,
    joinedload,
    literal,
    noload,
    null,
    raiseload,
    scoped_session,
    select,
    selectinload,
    sessionmaker,
    text,
    true,
    union,
    union_all,
    update,
)
from aiouow import types as sqltypes
from aiouow.loading.options import LoaderOption
from aiouow.mapping.aliased import AliasedRelationship
from aiouow.sql import CTE, CompoundSelect, ScalarSelect, Select, Subquery
from aiouow.sql.dml import Delete, Insert, Update
from aiouow.sql.elements import Label
from aiouow.sql.expressions import Cast, Over
from aiouow.sql.subquery import SubqueryColumn
from tests.typing.models_mapped import Post, Tag, User

if TYPE_CHECKING:
    from decimal import Decimal  # noqa: F401

    from aiouow.mapping.attributes import InstrumentedAttribute  # noqa: F401
    from aiouow.sql.elements import BinaryExpression, UnaryExpression  # noqa: F401

# -- select() is generic in its row type --------------------------------------------------------
assert_type(select(User), Select[tuple[User]])
assert_type(select(User.id), Select[tuple[int]])
assert_type(select(User.id, User.name), Select[tuple[int, str]])
assert_type(select(User, Post), Select[tuple[User, Post]])
assert_type(select(User.id, User.name, User.email), Select[tuple[int, str, str | None]])
assert_type(select(User.id, User.name, User.email, Post.title), Select[tuple[int, str, str | None, str]])
assert_type(select(User.id, User.id, User.id, User.id, User.id), Select[tuple[int, int, int, int, int]])
assert_type(select(User.id, User.id, User.id, User.id, User.id, User.name),
            Select[tuple[int, int, int, int, int, str]])
assert_type(select(User.id, User.id, User.id, User.id, User.id, User.id, User.id), Select[Any])
assert_type(select(User.name.label("n")), Select[tuple[str]])
assert_type(select(literal(1)), Select[tuple[int]])
assert_type(select(func.count(User.id)), Select[tuple[Any]])
assert_type(select([User.id, User.name]), Select[Any])

# -- expressions: case, cast, constants, distinct, windows, extract ---------------------------------
assert_type(select(case((User.id > 1, "big"), else_="small")), Select[tuple[str]])
assert_type(select(case((User.id > 1, User.name), else_=User.name)), Select[tuple[str]])
assert_type(select(cast(User.id, str)), Select[tuple[str]])
assert_type(select(User.id, cast(User.name, int)), Select[tuple[int, int]])
assert_type(cast(User.id, sqltypes.Numeric(10, 2)), Cast[Any])
assert_type(select(true(), false()), Select[tuple[bool, bool]])
assert_type(select(null()), Select[tuple[None]])
assert_type(select(distinct(User.id)), Select[tuple[int]])
assert_type(select(User.name.distinct()), Select[tuple[str]])
assert_type(select(func.count(distinct(User.id))), Select[tuple[Any]])
assert_type(func.row_number().over(partition_by=User.name, order_by=User.id).label("rn"), Label[Any])
assert_type(select(extract("year", User.id)), Select[tuple[int]])
assert_type(select(User).distinct(), Select[tuple[User]])
# string concatenation stays a str; labels go in group_by() and order_by(), by name or .desc()
assert_type(select(User.name + ", " + User.name), Select[tuple[str]])
assert_type(User.name.label("n").desc(), "UnaryExpression[str]")
assert_type(select(User.name.label("n")).group_by(User.name.label("n")).order_by("n"), Select[tuple[str]])
# a func.<name>() call is untyped, as before this issue (SQLAlchemy types some: count, sum, coalesce)
assert_type(select(User.id, func.coalesce(User.name, "-")), Select[tuple[int, Any]])
assert_type(func.lag(User.id).over(order_by=User.id), Over[Any])

stmt = (
    select(User)
    .where(User.name == "ann", User.id > 1)
    .filter(User.email.is_(None))
    .filter_by(name="ann")
    .join(User.posts)
    .outerjoin(Post, Post.author_id == User.id)
    .select_from(User)
    .order_by(User.name.desc(), "name")
    .group_by(User.id)
    .having(func.count(Post.id) > 1)
    .limit(10)
    .offset(5)
    .distinct()
    .with_for_update()
    .options(selectinload(User.posts).selectinload(Post.author), joinedload(User.tags))
    .execution_options(populate_existing=True)
)
assert_type(stmt, Select[tuple[User]])
assert_type(selectinload(User.posts), LoaderOption)
assert_type(raiseload(User.posts).noload(Post.author), LoaderOption)
assert_type(noload(Post.author), LoaderOption)
selectinload("posts")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
select(User).where(User.id == 1).limit("10")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]

# -- insert / update / delete -----------------------------------------------------------------------
assert_type(insert(User).values(name="a"), Insert)
assert_type(insert(User).values(name="a").returning(User.id), Insert)
assert_type(update(User).where(User.id == 1).values(name="b"), Update)
assert_type(update(User).values({User.name: "b"}).returning(User), Update)
assert_type(delete(User).where(User.name.like("a%")), Delete)


async def session_methods(session: AsyncSession) -> None:
    # scalars() / scalar()
    users = await session.scalars(select(User))
    assert_type(users, ScalarResult[User])
    assert_type(users.all(), list[User])
    assert_type(users.first(), User | None)
    assert_type(users.one(), User)
    assert_type(users.one_or_none(), User | None)
    assert_type(users.unique(), ScalarResult[User])
    for u in users:
        assert_type(u, User)
    assert_type((await session.scalars(select(User.name))).all(), list[str])
    assert_type(await session.scalar(select(User.id)), int | None)
    await session.scalar(select(func.count(User.id)))  # Any (None for no row): checkers spell it differently
    assert_type(await session.scalars(text("select 1")), ScalarResult[Any])
    _ = (await session.scalars(select(User))).all()[0].nope  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType, reportUnknownVariableType]

    # execute(): rows typed as their columns' tuple
    result = await session.execute(select(User.id, User.name))
    assert_type(result, Result[tuple[int, str]])
    row = result.one()
    assert_type(row, Row[tuple[int, str]])
    assert_type(row._tuple(), tuple[int, str])
    assert_type(row._t, tuple[int, str])
    ident, name = row._tuple()
    assert_type(ident, int)
    assert_type(name, str)
    assert_type(result.all(), list[Row[tuple[int, str]]])
    assert_type(result.first(), Row[tuple[int, str]] | None)
    assert_type(result.one_or_none(), Row[tuple[int, str]] | None)
    assert_type(result.unique(), Result[tuple[int, str]])
    for r in result:
        assert_type(r, Row[tuple[int, str]])
    assert_type(result.scalars(), ScalarResult[Any])
    assert_type(result.mappings().all(), list[dict[str, Any]])
    one_col = await session.execute(select(User.id))
    assert_type(one_col.scalars(), ScalarResult[int])
    assert_type(one_col.scalar(), int | None)
    assert_type(one_col.scalar_one(), int)
    assert_type(one_col.scalar_one_or_none(), int | None)
    assert_type(await session.execute(insert(User).values(name="a")), Result[Any])
    assert_type(await session.execute(text("select 1")), Result[Any])
    assert_type(await session.execute(update(User).values(name="b"), {"x": 1}), Result[Any])
    await session.execute("select 1")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]

    # stream() / stream_scalars()
    streamed = await session.stream(select(User.id, User.name))
    assert_type(streamed, AsyncResult[Row[tuple[int, str]]])
    async for srow in streamed:
        assert_type(srow, Row[tuple[int, str]])
    assert_type(streamed.scalars(), AsyncResult[Any])
    assert_type((await session.stream(select(User))).scalars(), AsyncResult[User])
    stream_users = await session.stream_scalars(select(User))
    assert_type(stream_users, AsyncResult[User])
    async for su in stream_users:
        assert_type(su, User)
    assert_type(await stream_users.all(), list[User])
    # set operations stream as selects do
    assert_type(await session.stream_scalars(union_all(select(User), select(User))), AsyncResult[User])
    assert_type(await session.stream(union(select(User.id), select(User.id))), AsyncResult[Row[tuple[int]]])
    assert_type(await stream_users.first(), User | None)
    async for part in stream_users.partitions():
        assert_type(part, list[User])

    # get() / get_one() / merge() / merge_all()
    got = await session.get(User, 1)
    assert_type(got, User | None)
    _ = got.name  # type: ignore[union-attr]  # pyright: ignore[reportOptionalMemberAccess]
    assert_type(await session.get(User, 1, options=[selectinload(User.posts)]), User | None)
    assert_type(await session.get_one(User, 1), User)
    assert_type(await session.merge(User(name="m")), User)
    assert_type(await session.merge_all([User(name="m"), User(name="n")]), list[User])
    assert_type(await session.merge_all((p for p in [Post()]), load=False), list[Post])

    # explicit loading
    ann = await session.get_one(User, 1)
    assert_type(await session.load(ann, User.posts), list[Post])
    assert_type(await session.load(Post(), Post.author), User | None)
    assert_type(await session.load(ann, User.tags), list[Tag])
    assert_type(await session.load(ann, "posts"), Any)
    await session.load(ann, 3)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
    await session.load_all([ann], User.posts)
    await session.load_all([ann], "posts")
    await session.refresh(ann, ["name", "posts"])

    # the unit of work
    session.add(User(name="x"))
    session.add_all([User(name="y"), Post(title="t")])
    await session.delete(ann)
    await session.flush()
    async with session.begin_nested():
        pass
    await session.commit()
    await session.rollback()


async def makers_and_scoping() -> None:
    engine = create_engine("sqlite:///:memory:")
    Session = sessionmaker(engine, expire_on_commit=False)
    async with Session() as session:
        assert_type(session, AsyncSession)
    async with Session.begin() as session:
        assert_type(session, AsyncSession)
    db = scoped_session(Session)
    assert_type(db(), AsyncSession)
    assert_type(await db.get(User, 1), User | None)
    assert_type(await db.scalars(select(User)), ScalarResult[User])
    assert_type(await db.execute(select(User.id)), Result[tuple[int]])
    assert_type(await db.load(User(), User.posts), list[Post])
    db.add(User(name="a"))
    await db.commit()
    async with db.scope() as scoped:
        assert_type(scoped, AsyncSession)
    # what the registry proxies at run time, and only that (tests/test_scoping.py runs these)
    u = User(name="b")
    assert_type(u in db, bool)
    assert_type(list(db), list[Any])
    db.autoflush = False
    assert_type(db.bind, Engine | Connection | None)
    db.bind = None  # type: ignore[misc]  # pyright: ignore[reportAttributeAccessIssue]
    async with db:  # type: ignore[misc]  # pyright: ignore[reportGeneralTypeIssues]
        pass
    await db.remove()
    async with engine.connect() as conn:
        res = await conn.execute(select(User.name))
        assert_type(res.scalars().all(), list[Any])
    await engine.dispose()


# -- subqueries and set operations keep the row type -------------------------------------------
assert_type(select(User).where(User.id.in_(select(Post.author_id))), Select[tuple[User]])
assert_type(select(User).where(User.id.not_in(select(Post.author_id))), Select[tuple[User]])
assert_type(select(User).where(exists(select(Post.id).where(Post.author_id == User.id))), Select[tuple[User]])
assert_type(select(User).where(~select(Post.id).where(Post.author_id == User.id).exists()), Select[tuple[User]])
assert_type(select(User).where(exists().where(Post.author_id == User.id)), Select[tuple[User]])
assert_type(select(User).where(~exists(Post.id).where(Post.author_id == User.id)), Select[tuple[User]])
assert_type(select(User.id, exists().where(Post.author_id == User.id).label("wrote")), Select[tuple[int, bool]])
n_posts = select(func.count(Post.id)).where(Post.author_id == User.id).scalar_subquery()
assert_type(select(Post.id).scalar_subquery(), ScalarSelect[int])
assert_type(select(User.name, select(Post.id).limit(1).scalar_subquery()), Select[tuple[str, int]])
assert_type(select(User).order_by(n_posts.desc()).where(n_posts > 1), Select[tuple[User]])
assert_type(select(User.id).correlate(User), Select[tuple[int]])
sq = select(Post.author_id, func.count(Post.id).label("n")).group_by(Post.author_id).subquery("counts")
assert_type(sq, Subquery)
assert_type(select(User).join(sq, sq.c.author_id == User.id), Select[tuple[User]])
assert_type(select(func.count()).select_from(select(User).subquery()), Select[tuple[Any]])
# true division of integers is a Decimal; floor division and remainder stay integers
assert_type(User.id / 2, "BinaryExpression[Decimal]")
assert_type(User.id // 2, "BinaryExpression[int]")
assert_type(User.id % 2, "BinaryExpression[int]")
assert_type(select(User.id / User.id), "Select[tuple[Decimal]]")
# a subquery's columns are SubqueryColumns (column expressions), not the tables' Columns
assert_type(sq.c.n, SubqueryColumn)
assert_type(sq.c["author_id"], SubqueryColumn)
# the total-count idiom for pagination
page = select(User).order_by(User.id).limit(20).offset(40)
assert_type(select(func.count()).select_from(page.order_by(None).limit(None).offset(None).subquery()),
            Select[tuple[Any]])
assert_type(union(select(User.id), select(Post.id)), CompoundSelect[tuple[int]])
assert_type(union(select(Post.author_id), select(Post.author_id)), CompoundSelect[tuple[int | None]])
assert_type(union_all(select(User.id), select(Post.id)).order_by(User.id).limit(3), CompoundSelect[tuple[int]])
assert_type(intersect(select(User), select(User)), CompoundSelect[tuple[User]])
assert_type(except_(select(User.id), select(Post.id)), CompoundSelect[tuple[int]])
assert_type(select(User.id).union(select(Post.id)), CompoundSelect[tuple[int]])
assert_type(union(select(User.id), select(Post.id)).subquery(), Subquery)
# common table expressions: a CTE is a subquery in WITH; a recursive one completes with union_all
counts = select(Post.author_id, func.count(Post.id).label("n")).group_by(Post.author_id).cte("counts")
assert_type(counts, CTE)
assert_type(select(User).join(counts, counts.c.author_id == User.id), Select[tuple[User]])
assert_type(union(select(User.id), select(Post.id)).cte(), CTE)
tree = select(User.id, literal(0).label("depth")).where(User.id == 1).cte("tree", recursive=True)
tree = tree.union_all(select(User.id, (tree.c.depth + 1).label("depth")).join(tree, User.id == tree.c.id))
assert_type(tree, CTE)
assert_type(select(User, tree.c.depth).join(tree, User.id == tree.c.id), Select[tuple[User, Any]])
ranked = select(User.id, func.row_number().over(partition_by=User.name, order_by=User.id).label("rn")).subquery()
assert_type(select(ranked.c.id).where(ranked.c.rn == 1), Select[tuple[Any]])

# replacing and extending the column list
assert_type(select(User).add_columns(Post.id), Select[Any])
assert_type(select(User).with_only_columns(User.name), Select[tuple[str]])
assert_type(select(User).with_only_columns(User.id, Post), Select[tuple[int, Post]])
assert_type(select(User).with_only_columns(User.id, User.name, func.count(), maintain_column_froms=True),
            Select[tuple[int, str, Any]])
assert_type(select(User).with_only_columns([User.id]), Select[Any])
assert_type(select(sq.c.n).select_from(sq).where(sq.c.n > 1).order_by(sq.c.n.desc()), Select[tuple[Any]])


async def set_operations(session: AsyncSession) -> None:
    assert_type(await session.execute(union(select(User.id), select(Post.id))), Result[tuple[int]])
    assert_type(await session.scalars(union(select(User), select(User))), ScalarResult[User])
    assert_type(await session.scalar(except_(select(User.id), select(Post.id))), int | None)


# -- aliased(): typed as the model class, so its columns and selects stay typed -------------------
boss = aliased(User, name="boss")
assert_type(boss, type[User])
assert_type(boss.id, "InstrumentedAttribute[int]")
assert_type(select(User, boss), Select[tuple[User, User]])
assert_type(select(Post.title, boss.name).join(boss, Post.author_id == boss.id), Select[tuple[str, str]])
assert_type(select(Post).join(Post.author.of_type(boss)).where(boss.name == "a"), Select[tuple[Post]])
assert_type(select(Post).join(boss, Post.author), Select[tuple[Post]])
assert_type(select(boss).options(selectinload(boss.posts)), Select[tuple[User]])
assert_type(Post.author.of_type(boss), AliasedRelationship)
assert_type(boss.posts.of_type(aliased(Post)), AliasedRelationship)


async def alias_results(session: AsyncSession) -> None:
    row = (await session.execute(select(User, boss).join(boss, User.id == boss.id))).one()
    assert_type(row, Row[tuple[User, User]])
    assert_type(await session.scalars(select(boss)), ScalarResult[User])
