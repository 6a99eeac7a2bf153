"""Behind a real PgBouncer in transaction pooling mode: create_engine(prepared_statements=False).

The fixture starts Debian's ``pgbouncer`` (1.18: no ``max_prepared_statements``) on a free
loopback port in front of the test server, with ``default_pool_size=3``, so the 20 client
connections of the workload below really share three server sessions.  Without the option,
asyncpg's named prepared statements land on server sessions that never prepared them; with it,
every statement is unnamed and parsed again with its Bind, and streams use DECLARE/FETCH.
The binary missing skips the PostgreSQL half (a failure under CI=true, which installs it).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

import aiouow
from aiouow import create_engine, exc, func, select, sessionmaker, text, update

from .conftest import IN_CI, PG_URL, _pg_available
from .models import Post, Tag, User

TASKS = 20
SERVER_POOL = 3


@dataclass
class Bouncer:
    url: str
    log_path: str

    @property
    def single_url(self) -> str:
        """The same database through a pool of one server session: every client shares it."""
        return self.url.rsplit("/", 1)[0] + "/aiouow_single"

    def log(self) -> str:
        try:
            with open(self.log_path) as f:
                return f.read()[-2000:]
        except OSError:
            return ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_bouncer() -> tuple[subprocess.Popen[bytes], Bouncer, str]:
    binary = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None)
    if binary is None:
        reason = "pgbouncer is not installed (apt-get install -y pgbouncer; .ci/run does it)"
        if IN_CI:
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)
    pg = urllib.parse.urlsplit(PG_URL)
    user = pg.username or "postgres"
    dbname = pg.path.lstrip("/") or "postgres"
    port = _free_port()
    # not pytest's tmp_path: pgbouncer refuses to run as root, and the user it switches to must read this
    workdir = tempfile.mkdtemp(prefix="aiouow-pgbouncer-")
    os.chmod(workdir, 0o755)
    conf = os.path.join(workdir, "pgbouncer.ini")
    users = os.path.join(workdir, "users.txt")
    with open(users, "w") as f:
        f.write(f'"{user}" ""\n')
    server = f"host={pg.hostname or '127.0.0.1'} port={pg.port or 5432} dbname={dbname} user={user}"
    if pg.password:
        server += f" password={pg.password}"
    with open(conf, "w") as f:
        f.write(f"""[databases]
{dbname} = {server}
aiouow_single = {server} pool_size=1
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {users}
pool_mode = transaction
default_pool_size = {SERVER_POOL}
max_client_conn = 200
""")
    for path in (conf, users):
        os.chmod(path, 0o644)
    cmd = [binary, conf]
    if os.geteuid() == 0:
        cmd[1:1] = ["-u", "postgres"]
    log_path = os.path.join(workdir, "pgbouncer.log")
    log = open(log_path, "wb")  # noqa: SIM115 - the process writes it until stopped
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    netloc = f"{user}@127.0.0.1:{port}" if not pg.password else f"{user}:{pg.password}@127.0.0.1:{port}"
    bouncer = Bouncer(f"postgresql://{netloc}/{dbname}", log_path)
    deadline = time.monotonic() + 10
    while True:
        if proc.poll() is not None:
            shutil.rmtree(workdir, ignore_errors=True)
            pytest.fail(f"pgbouncer exited with {proc.returncode}: {bouncer.log()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"pgbouncer did not listen on 127.0.0.1:{port} within 10 s: {bouncer.log()}")
            time.sleep(0.05)
    return proc, bouncer, workdir


@pytest.fixture(scope="module")
def bouncer() -> Iterator[Bouncer]:
    proc, b, workdir = _start_bouncer()
    try:
        yield b
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
async def target(db: aiouow.Engine, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """The URL the workload connects to: PgBouncer in front of the test database, or the SQLite file."""
    if db.dialect.name == "sqlite":
        yield db.url.raw
        return
    if await _pg_available() is not None:
        pytest.skip("PostgreSQL is not reachable")
    yield request.getfixturevalue("bouncer").url


async def _task(Session: sessionmaker, i: int, pids: set[int]) -> None:
    """One client: the statement cache's repeated shapes, with different values each time."""
    async with Session.begin() as session:
        user = User(name=f"u{i}", email=f"u{i}@example.com")
        user.posts = [Post(title=f"p{i}.{k}") for k in range(5)]
        session.add(user)  # a batch: keys reserved, then one unnest INSERT per table
        if Session.kw["bind"].dialect.name == "postgresql":
            pids.add(await session.scalar(select(func.pg_backend_pid())))
    uid = user.id
    for rnd in range(3):
        async with Session() as session:
            for j in range(TASKS):  # the same SELECT, cached once, with 20 different values
                found = (await session.scalars(select(User).where(User.name == f"u{j}"))).all()
                assert len(found) <= 1
            got = await session.get_one(User, uid)
            assert got.name.startswith(f"u{i}")
            got.name = f"u{i}-r{rnd}"
            for post in (await session.scalars(select(Post).where(Post.author_id == uid).order_by(Post.id))):
                post.title = f"p{i}.{post.id}.r{rnd}"  # a batch UPDATE (unnest) with version checks
            await session.commit()
        async with Session() as session, session.begin():
            titles = [p.title async for p in await session.stream_scalars(
                select(Post).where(Post.author_id == uid).order_by(Post.id), chunk_size=2)]
            assert titles == sorted(titles, key=lambda t: int(t.split(".")[1])) and len(titles) == 5 - rnd
            assert all(t.endswith(f".r{rnd}") for t in titles)
            first = (await session.scalars(select(Post).where(Post.author_id == uid).order_by(Post.id))).first()
            assert first is not None
            await session.delete(first)  # one DELETE per round: 5, 4, 3 posts left
            await session.execute(update(User).where(User.id == uid).values(email=f"u{i}.{rnd}@example.com"))


async def _workload(url: str, prepared_statements: bool) -> list[BaseException]:
    engine = create_engine(url, pool_size=TASKS, pool_timeout=60, prepared_statements=prepared_statements)
    pids: set[int] = set()
    try:
        Session = sessionmaker(engine)
        results = await asyncio.gather(*(_task(Session, i, pids) for i in range(TASKS)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if not errors:
            async with Session.begin() as session:  # one flush of 1200 rows goes by COPY
                session.add_all([Tag(name=f"t{n}") for n in range(1200)])
            async with Session() as session:
                assert await session.scalar(select(func.count(Tag.id))) == 1200
                assert await session.scalar(select(func.count(Post.id))) == TASKS * 2
                names = set((await session.scalars(select(User.name))).all())
                assert names == {f"u{i}-r2" for i in range(TASKS)}
            if engine.dialect.name == "postgresql":
                # 20 clients, three server sessions: the pooler really shared them
                assert 1 <= len(pids) <= SERVER_POOL, pids
        return errors
    finally:
        await engine.dispose()


async def test_session_workload_behind_pgbouncer_transaction_mode(target: str) -> None:
    errors = await _workload(target, prepared_statements=False)
    assert errors == []


async def test_single_statement_transactions_behind_pgbouncer_transaction_mode(target: str) -> None:
    """A commit of one statement goes alone (autocommitted) and the read before it without BEGIN:
    through the pooler each is a server transaction of its own, whichever server session it gets
    (asyncpg's unnamed Parse/Describe ends with a Flush, not a Sync, so its Bind/Execute stays on
    the same one)."""
    engine = create_engine(target, pool_size=TASKS, pool_timeout=60, prepared_statements=False)
    try:
        Session = sessionmaker(engine)

        async def client(i: int) -> None:
            async with Session(expire_on_commit=False) as session:
                tag = Tag(name=f"a{i}")
                session.add(tag)
                await session.commit()  # INSERT ... RETURNING alone
            for k in range(3):
                async with Session() as session:
                    got = await session.get_one(Tag, tag.id)  # SELECT, no BEGIN
                    got.name = f"a{i}-{k}"
                    await session.commit()  # UPDATE alone

        start = engine.round_trips
        await asyncio.gather(*(client(i) for i in range(TASKS)))
        assert engine.round_trips - start == TASKS * (1 + 3 * 2)
        async with Session() as session:
            names = sorted((await session.scalars(select(Tag.name))).all())
            assert names == sorted(f"a{i}-2" for i in range(TASKS))
            session.add(Tag(name="a0-2"))  # taken: the autocommitted INSERT fails, writes nothing
            with pytest.raises(exc.IntegrityError):
                await session.commit()
            await session.rollback()
            assert await session.scalar(select(func.count(Tag.id))) == TASKS
    finally:
        await engine.dispose()


async def test_without_the_option_prepared_statements_break(target: str, db: aiouow.Engine) -> None:
    if db.dialect.name == "sqlite":
        # nothing is prepared on a server: the option changes nothing there
        assert await _workload(target, prepared_statements=True) == []
        return
    errors = await _workload(target, prepared_statements=True)
    assert errors, "asyncpg's named prepared statements survived transaction pooling: the test proves nothing"
    for err in errors:
        assert isinstance(err, exc.OperationalError), repr(err)
        assert "prepared statement" in str(err) and ("does not exist" in str(err) or "already exists" in str(err))
        assert "prepared_statements=False" in str(err)


def test_prepared_statements_option_and_connect_args_agree(db: aiouow.Engine) -> None:
    url = db.url.raw
    off = create_engine(url, prepared_statements=False)
    assert off.prepared_statements is False
    if db.dialect.name == "postgresql":
        # the spelling of API.md section 9 means the same
        same = create_engine(url, connect_args={"statement_cache_size": 0})
        assert same.prepared_statements is False
        assert create_engine(url).prepared_statements is True
        with pytest.raises(exc.ArgumentError, match="statement_cache_size"):
            create_engine(url, prepared_statements=False, connect_args={"statement_cache_size": 100})
    with pytest.raises(exc.ArgumentError, match="prepared_statements"):
        create_engine(url, prepared_statements="no")  # type: ignore[arg-type]


async def test_stream_without_prepared_statements_leaves_no_statement_on_the_server(db: aiouow.Engine) -> None:
    """Directly on the server (no pooler): with the option, a stream (DECLARE/FETCH), a batch
    flush and repeated selects leave no prepared statement behind in the session."""
    engine = create_engine(db.url.raw, prepared_statements=False)
    try:
        Session = sessionmaker(engine)
        async with Session.begin() as session:
            session.add_all([User(name=f"s{n}") for n in range(7)])
        async with Session() as session, session.begin():
            names = [u.name async for u in await session.stream_scalars(select(User).order_by(User.id), chunk_size=3)]
            assert names == [f"s{n}" for n in range(7)]
            first = await (await session.stream_scalars(select(User.name).order_by(User.id), chunk_size=2)).first()
            assert first == "s0"  # left mid-way: its cursor is closed, the transaction goes on
            partial = await session.stream_scalars(select(User.id), chunk_size=2)
            async for _ in partial:
                break
            await partial.close()
            assert await session.scalar(select(func.count(User.id))) == 7
            if engine.dialect.name == "postgresql":
                left = await session.scalar(text("SELECT count(*) FROM pg_prepared_statements"))
                cursors = (await session.scalars(text(
                    "SELECT name FROM pg_cursors WHERE name LIKE 'aiouow_cursor_%' ORDER BY name"))).all()
                # the streams left mid-way were closed; the exhausted one ends with the transaction
                assert (left, cursors) == (0, ["aiouow_cursor_1"])
    finally:
        await engine.dispose()



async def test_a_stream_leaves_nothing_on_the_shared_server_session(target: str, db: aiouow.Engine,
                                                                     request: pytest.FixtureRequest) -> None:
    """asyncpg's own cursor prepares a named statement, and closes it only with that client's next
    statement, by then on another server session: the name stays behind on this one, where another
    process's asyncpg may pick the same name ("already exists").  DECLARE/FETCH leaves nothing."""
    url = request.getfixturevalue("bouncer").single_url if db.dialect.name == "postgresql" else target
    streaming = create_engine(url, prepared_statements=False)
    other = create_engine(url, prepared_statements=False)
    try:
        async with sessionmaker(streaming).begin() as session:
            session.add_all([User(name=f"x{n}") for n in range(5)])
        async with sessionmaker(streaming)() as session, session.begin():
            partial = await session.stream_scalars(select(User.name).order_by(User.id), chunk_size=2)
            assert await partial.first() == "x0"
            assert [u.name async for u in await session.stream_scalars(select(User), chunk_size=2)] == \
                [f"x{n}" for n in range(5)]
        if db.dialect.name == "postgresql":
            async with sessionmaker(other)() as session:  # the one server session, lent to another client
                names = (await session.scalars(text("SELECT name FROM pg_prepared_statements"))).all()
                cursors = (await session.scalars(text("SELECT name FROM pg_cursors WHERE name <> ''"))).all()
                assert (names, cursors) == ([], [])
    finally:
        await streaming.dispose()
        await other.dispose()
