"""Models for tests/test_self_m2m.py: many-to-many relationships whose association table has two
foreign keys to the same table.

* ``SmUser`` follows ``SmUser`` through ``sm_follows(follower_id, following_id)``; the
  relationships say which column points at the parent with ``foreign_keys=`` (a ``Table`` column
  on one side, its string form on the other).
* ``SmPerson`` is a fan of ``SmPerson`` through ``sm_fans(fan_id, idol_id)``, configured with
  SQLAlchemy's ``primaryjoin=`` / ``secondaryjoin=``: a lambda, the string form, and a comparison
  with the ``column()`` spec written inside the class body.
* ``SmWorker`` / ``SmTask`` through ``sm_assignments(task_id, worker_id, assigned_by)``: not
  self-referential, but two foreign keys to ``sm_workers``; each side names ``worker_id``.

No association table has ON DELETE: the ORM itself must remove the rows of deleted objects.
"""

from __future__ import annotations

from aiouow import Column, ForeignKey, Model, Table, column, relationship

sm_follows = Table(
    "sm_follows",
    Column("follower_id", int, ForeignKey("sm_users.id"), primary_key=True),
    Column("following_id", int, ForeignKey("sm_users.id"), primary_key=True),
)


class SmUser(Model):
    __tablename__ = "sm_users"
    id: int = column(primary_key=True)
    name: str = column()
    following: list[SmUser] = relationship(secondary=sm_follows, foreign_keys=sm_follows.c.follower_id,
                                           back_populates="followers", order_by="SmUser.name")
    followers: list[SmUser] = relationship(secondary="sm_follows", foreign_keys="sm_follows.c.following_id",
                                           back_populates="following", order_by="SmUser.name")


sm_fans = Table(
    "sm_fans",
    Column("fan_id", int, ForeignKey("sm_people.id"), primary_key=True),
    Column("idol_id", int, ForeignKey("sm_people.id"), primary_key=True),
)


class SmPerson(Model):
    __tablename__ = "sm_people"
    id: int = column(primary_key=True)
    name: str = column()
    # the people this one is a fan of
    idols: list[SmPerson] = relationship(
        secondary=sm_fans, back_populates="fans", order_by="SmPerson.name",
        primaryjoin=lambda: SmPerson.id == sm_fans.c.fan_id,
        secondaryjoin=lambda: SmPerson.id == sm_fans.c.idol_id,
    )
    fans: list[SmPerson] = relationship(
        secondary=sm_fans, back_populates="idols", order_by="SmPerson.name",
        primaryjoin=id == sm_fans.c.idol_id,  # the column() spec of this class body
        secondaryjoin="SmPerson.id == sm_fans.c.fan_id",
    )


sm_assignments = Table(
    "sm_assignments",
    Column("task_id", int, ForeignKey("sm_tasks.id"), primary_key=True),
    Column("worker_id", int, ForeignKey("sm_workers.id"), primary_key=True),
    Column("assigned_by", int, ForeignKey("sm_workers.id"), nullable=True),
)


class SmWorker(Model):
    __tablename__ = "sm_workers"
    id: int = column(primary_key=True)
    name: str = column()
    tasks: list[SmTask] = relationship(secondary=sm_assignments, foreign_keys="sm_assignments.worker_id",
                                       back_populates="workers", order_by="SmTask.title")


class SmTask(Model):
    __tablename__ = "sm_tasks"
    id: int = column(primary_key=True)
    title: str = column()
    workers: list[SmWorker] = relationship(secondary=sm_assignments, foreign_keys=[sm_assignments.c.worker_id],
                                           back_populates="tasks", order_by="SmWorker.name")
