"""What every benchmarked system implements: one coroutine per workload."""

from __future__ import annotations

from typing import Any

from .schema import Backend, PostData, UserData

W8_PAGE = 20  # users read after each get in W8
MERGE_BATCH = 100  # detached users merged per transaction in T4 and T5


class NotAvailable(Exception):
    """This system cannot run this workload (yet); reported as "n/a", not as a failure."""


class System:
    name = "?"
    label = "?"
    note = ""  # how this system ran, printed under the results when not empty

    async def open(self, backend: Backend) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def w1_insert(self, users: list[UserData], posts: list[PostData]) -> int:
        """Insert every user with its one post (posts[i] belongs to users[i]) and commit."""
        raise NotImplementedError

    async def load_users(self) -> list[Any]:
        """Load every user into objects (driver rows for raw), returned so memory can be measured."""
        raise NotImplementedError

    async def w2_load(self) -> int:
        return len(await self.load_users())

    async def w3_update(self) -> int:
        """Load every user, change its name, commit."""
        raise NotImplementedError

    async def w4_get(self, keys: list[int]) -> int:
        """Look every key up by primary key, then every key again, in one session."""
        raise NotImplementedError

    async def w5_eager(self) -> int:
        """Load every user with its posts; return the number of posts reached."""
        raise NotImplementedError

    async def w6_task(self, task: int, keys: list[int]) -> int:
        """One of the concurrent tasks: per key, a transaction that gets the user, renames it, commits."""
        raise NotImplementedError

    async def w8_task(self, task: int, keys: list[int]) -> int:
        """One of the concurrent tasks of the read-heavy mix: per key, a transaction that gets the
        user and reads the next W8_PAGE users; every fifth also renames the user and commits."""
        raise NotAvailable(f"{self.name} has no W8")

    async def w7_delete(self, count: int) -> int:
        """Load the first ``count`` users by id, delete them (posts go by ON DELETE CASCADE), commit."""
        raise NotImplementedError

    # -- per-transaction workloads (T1-T5): every transaction is its own session or statement --------
    async def t1_add(self, users: list[UserData]) -> int:
        """Per user, a transaction that adds it and commits."""
        raise NotImplementedError

    async def t2_change(self, keys: list[int]) -> int:
        """Per key, a transaction that gets the user, renames it ``c<i>``, commits."""
        raise NotImplementedError

    async def t3_delete(self, keys: list[int]) -> int:
        """Per key, a transaction that gets the user, deletes it, commits."""
        raise NotImplementedError

    async def detached_users(self, keys: list[int]) -> list[Any]:
        """The users with these keys, loaded and detached (untimed: the input of T4 and T5)."""
        raise NotImplementedError

    async def t4_merge(self, batches: list[list[Any]]) -> int:
        """Per batch, a transaction that merges each detached user in a loop of ``merge()``, renames
        the merged object ``m<i>``, commits."""
        raise NotImplementedError

    async def t5_merge_all(self, batches: list[list[Any]]) -> int:
        """T4 with the batch merged in one call (``merge_all()`` or the system's equivalent)."""
        raise NotAvailable(f"{self.name} has no batched merge")
