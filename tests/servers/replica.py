"""A PostgreSQL streaming replica of the running server, on a loopback port, for the tests.

``start_replica(primary_url)`` lets replication connections from loopback in
(``ensure_replication_hba``: two ``trust`` lines appended to the primary's
``pg_hba.conf`` when missing, then a configuration reload; the existing lines
are left as they are), copies the primary with ``pg_basebackup -R`` into a
temporary folder owned by ``postgres``, and starts it with ``pg_ctl`` on a free
port (its unix socket in that folder too).  ``Replica.stop()`` stops it and
removes the folder.  PostgreSQL refuses to run as root, so as root the server
commands run through ``runuser -u postgres``.

``.ci/run`` calls ``python -m tests.servers.replica check`` first: it prepares
``pg_hba.conf`` and says whether a replica can be made here.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import asyncpg

HBA_LINES = ("local replication all trust", "host replication all 127.0.0.1/32 trust")
#: settings a hot standby must have at least as high as its primary
_AT_LEAST_PRIMARY = ("max_connections", "max_worker_processes", "max_wal_senders",
                     "max_prepared_transactions", "max_locks_per_transaction")


def bin_dir() -> Path | None:
    """The PostgreSQL server binaries (``PG_BINDIR``, else the newest Debian ones)."""
    env = os.environ.get("PG_BINDIR")
    if env:
        return Path(env) if (Path(env) / "pg_ctl").exists() else None
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    return found[-1].parent if found else None


def unavailable_reason() -> str | None:
    """Why no replica can be made on this machine, or None."""
    bins = bin_dir()
    if bins is None or not (bins / "pg_basebackup").exists():
        return "the PostgreSQL server binaries (pg_ctl, pg_basebackup) are not installed"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser: PostgreSQL cannot be started as root"
    return None


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _run(cmd: list[str], timeout: float = 120) -> None:
    # from a folder the postgres user may enter
    proc = subprocess.run(_as_postgres(cmd), capture_output=True, text=True, timeout=timeout, cwd="/")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")


async def ensure_replication_hba(primary_url: str) -> None:
    """Let loopback replication connections in (idempotent; other lines untouched)."""
    conn = await asyncpg.connect(primary_url)
    try:
        hba = Path(await conn.fetchval("SHOW hba_file"))
        text = hba.read_text()
        present = {" ".join(line.split()) for line in text.splitlines()}
        missing = [line for line in HBA_LINES if line not in present]
        if missing:
            with hba.open("a") as f:
                f.write(("" if text.endswith("\n") or not text else "\n")
                        + "# added by aiouow's tests/servers/replica.py: a streaming replica on loopback\n"
                        + "".join(line + "\n" for line in missing))
            await conn.fetchval("SELECT pg_reload_conf()")
            # the postmaster rereads the file asynchronously
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Replica:
    folder: Path
    port: int
    primary_url: str

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def url(self) -> str:
        """The primary's URL (same database and user) with the replica's port."""
        u = urllib.parse.urlsplit(self.primary_url)
        netloc = u.netloc.rsplit("@", 1)
        host = f"127.0.0.1:{self.port}"
        return urllib.parse.urlunsplit(u._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))

    def start(self) -> None:
        bins = bin_dir()
        assert bins is not None
        try:
            _run([str(bins / "pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "log"), "-w", "-t", "60",
                  "-o", f"-p {self.port}", "start"])
        except RuntimeError as err:
            log = self.folder / "log"
            tail = log.read_text()[-2000:] if log.exists() else "(no log)"
            raise RuntimeError(f"{err}\nthe replica's log ends with:\n{tail}") from None

    def stop(self) -> None:
        bins = bin_dir()
        if bins is not None and (self.data / "postmaster.pid").exists():
            _run([str(bins / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "-t", "60", "stop"])

    def remove(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    async def wait_replayed(self, timeout: float = 30) -> None:
        """Wait until the replica has replayed everything the primary had written when called
        (replica reads lag: a read there sees a commit only once it is replayed)."""
        primary = await asyncpg.connect(self.primary_url)
        try:
            target = await primary.fetchval("SELECT pg_current_wal_lsn()")
        finally:
            await primary.close()
        replica = await asyncpg.connect(self.url())
        try:
            async with asyncio.timeout(timeout):
                while await replica.fetchval("SELECT pg_last_wal_replay_lsn() < $1::pg_lsn", target):
                    await asyncio.sleep(0.02)
        finally:
            await replica.close()


async def start_replica(primary_url: str) -> Replica:
    """A streaming replica of the server at ``primary_url``, started (see the module docstring)."""
    reason = unavailable_reason()
    if reason is not None:
        raise RuntimeError(reason)
    await ensure_replication_hba(primary_url)
    u = urllib.parse.urlsplit(primary_url)
    conn = await asyncpg.connect(primary_url)
    try:
        settings = {r["name"]: r["setting"] for r in await conn.fetch(
            "SELECT name, setting FROM pg_settings WHERE name = ANY($1::text[])", list(_AT_LEAST_PRIMARY))}
    finally:
        await conn.close()
    folder = Path(tempfile.mkdtemp(prefix="aiouow-replica-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    folder.chmod(0o700)
    replica = Replica(folder, free_port(), primary_url)
    try:
        bins = bin_dir()
        assert bins is not None
        backup = [str(bins / "pg_basebackup"), "-h", u.hostname or "127.0.0.1", "-p", str(u.port or 5432),
                  "-U", urllib.parse.unquote(u.username or "postgres"), "-D", str(replica.data),
                  "-R", "-X", "stream", "-c", "fast"]
        for attempt in range(3):
            try:
                _run(backup, timeout=300)
                break
            except RuntimeError as err:
                # Under heavy writes (another test run on the same server), the primary may
                # recycle a WAL segment before the backup's WAL stream has its temporary slot;
                # pg_basebackup removes its data directory then, so trying again is clean.
                if "has already been removed" not in str(err) or attempt == 2:
                    raise
        conf = [f"port = {replica.port}", "listen_addresses = '127.0.0.1'",
                f"unix_socket_directories = '{folder}'", "hot_standby = on", "ssl = off",
                f"hba_file = '{replica.data / 'pg_hba.conf'}'", f"ident_file = '{replica.data / 'pg_ident.conf'}'",
                "shared_buffers = 16MB", "fsync = off", "logging_collector = off",
                *(f"{k} = {v}" for k, v in settings.items())]
        files = {"postgresql.conf": "\n".join(conf) + "\n",
                 "pg_hba.conf": "local all all trust\nhost all all 127.0.0.1/32 trust\n",
                 "pg_ident.conf": ""}
        for name, text in files.items():
            path = replica.data / name
            path.write_text(text)
            if os.geteuid() == 0:
                shutil.chown(path, "postgres", "postgres")
        for stale in ("postmaster.pid", "postmaster.opts"):
            (replica.data / stale).unlink(missing_ok=True)
        replica.start()
    except BaseException:
        replica.remove()
        raise
    return replica


def main(argv: list[str]) -> int:
    url = os.environ.get("AIOUOW_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
    if argv[:1] == ["check"]:
        reason = unavailable_reason()
        if reason is not None:
            print(f"no PostgreSQL replica: {reason}")
            return 1
        asyncio.run(ensure_replication_hba(url))
        print("pg_hba.conf lets loopback replication connections in; a replica can be made")
        return 0
    if argv[:1] == ["try"]:  # start one, report, stop it
        async def go() -> None:
            r = await start_replica(url)
            try:
                await r.wait_replayed()
                print(f"replica up on port {r.port} ({r.folder})")
            finally:
                r.remove()
        asyncio.run(go())
        return 0
    print("usage: python -m tests.servers.replica check|try", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
