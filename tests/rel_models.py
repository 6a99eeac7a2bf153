"""Extra models for the relationship, cascade and loading tests (tables prefixed ``tr_``).

Each covers one relationship shape that ``tests/models.py`` does not:

* ``TrPerson`` / ``TrPassport``: one-to-one through a non-list annotation, with
  ``delete-orphan``; ``TrPerson.profile``: one-to-one through ``uselist=False``.
* ``TrTeam`` / ``TrPlayer``: one-to-many without delete cascade (players are
  un-parented when their team is deleted), ``order_by`` a column name, and a
  many-to-one annotated ``"TrTeam | None"``.
* ``TrFolder`` / ``TrFile``: ``passive_deletes=True`` over ``ON DELETE CASCADE``.
* ``TrMember`` / ``TrMessage``: two foreign keys to the same table, told apart
  with ``foreign_keys=`` (string form and attribute form).
* ``TrCategory``: self-referential with ``remote_side`` given as the column of the
  class body (``remote_side=id``), delete cascading down the tree.
* ``TrStudent`` / ``TrCourse``: many-to-many with ``secondary=`` a ``Table``
  whose foreign keys have no ``ON DELETE``.
"""

from __future__ import annotations

from typing import Any

from aiouow import Column, Engine, ForeignKey, Model, Table, column, relationship


class TrPerson(Model):
    __tablename__ = "tr_people"
    id: int = column(primary_key=True)
    name: str = column()
    passport: TrPassport | None = relationship(back_populates="person", cascade="all, delete-orphan")
    profile: TrProfile = relationship("TrProfile", uselist=False, back_populates="person")


class TrPassport(Model):
    __tablename__ = "tr_passports"
    id: int = column(primary_key=True)
    person_id: int | None = column(ForeignKey("tr_people.id"), default=None)
    number: str = column()
    person: TrPerson | None = relationship(back_populates="passport")


class TrProfile(Model):
    __tablename__ = "tr_profiles"
    id: int = column(primary_key=True)
    person_id: int | None = column(ForeignKey("tr_people.id"), default=None)
    bio: str = column(default="")
    person: TrPerson | None = relationship(back_populates="profile")


class TrTeam(Model):
    __tablename__ = "tr_teams"
    id: int = column(primary_key=True)
    name: str = column()
    players: list[TrPlayer] = relationship(back_populates="team", order_by="name")


class TrPlayer(Model):
    __tablename__ = "tr_players"
    id: int = column(primary_key=True)
    name: str = column()
    team_id: int | None = column(ForeignKey("tr_teams.id"), default=None)
    team: TrTeam | None = relationship(back_populates="players")


class TrFolder(Model):
    __tablename__ = "tr_folders"
    id: int = column(primary_key=True)
    name: str = column()
    files: list[TrFile] = relationship(back_populates="folder", cascade="all, delete-orphan",
                                       passive_deletes=True)


class TrFile(Model):
    __tablename__ = "tr_files"
    id: int = column(primary_key=True)
    folder_id: int = column(ForeignKey("tr_folders.id", ondelete="CASCADE"))
    name: str = column()
    folder: TrFolder = relationship(back_populates="files")


class TrMessage(Model):
    __tablename__ = "tr_messages"
    id: int = column(primary_key=True)
    sender_id: int = column(ForeignKey("tr_members.id"))
    recipient_id: int = column(ForeignKey("tr_members.id"))
    body: str = column()
    sender: TrMember = relationship(foreign_keys="TrMessage.sender_id", back_populates="sent")
    recipient: TrMember = relationship(foreign_keys="TrMessage.recipient_id", back_populates="received")


class TrMember(Model):
    __tablename__ = "tr_members"
    id: int = column(primary_key=True)
    name: str = column()
    # attribute form: TrMessage is defined above
    sent: list[TrMessage] = relationship(foreign_keys=[TrMessage.sender_id], back_populates="sender",
                                         order_by="TrMessage.id")
    received: list[TrMessage] = relationship(foreign_keys=TrMessage.recipient_id, back_populates="recipient",
                                             order_by="TrMessage.id")


class TrCategory(Model):
    __tablename__ = "tr_categories"
    id: int = column(primary_key=True)
    parent_id: int | None = column(ForeignKey("tr_categories.id"), default=None)
    name: str = column()
    subs: list[TrCategory] = relationship(back_populates="parent", order_by="TrCategory.id",
                                          cascade="all, delete-orphan")
    parent: TrCategory | None = relationship(back_populates="subs", remote_side=id)


# no ON DELETE here: the ORM itself must remove association rows of deleted objects
tr_enrollments = Table(
    "tr_enrollments",
    Column("student_id", int, ForeignKey("tr_students.id"), primary_key=True),
    Column("course_id", int, ForeignKey("tr_courses.id"), primary_key=True),
)


class TrStudent(Model):
    __tablename__ = "tr_students"
    id: int = column(primary_key=True)
    name: str = column()
    courses: list[TrCourse] = relationship(secondary=tr_enrollments, back_populates="students",
                                           order_by="TrCourse.title")


class TrCourse(Model):
    __tablename__ = "tr_courses"
    id: int = column(primary_key=True)
    title: str = column()
    students: list[TrStudent] = relationship(secondary=tr_enrollments, back_populates="courses",
                                             order_by="TrStudent.name")


# a many-to-many holding one object (uselist=False), through an association table
tr_badge_links = Table(
    "tr_badge_links",
    Column("holder_id", int, ForeignKey("tr_badge_holders.id"), primary_key=True),
    Column("badge_id", int, ForeignKey("tr_badges.id"), primary_key=True),
)


class TrBadge(Model):
    __tablename__ = "tr_badges"
    id: int = column(primary_key=True)
    name: str = column()


class TrBadgeHolder(Model):
    __tablename__ = "tr_badge_holders"
    id: int = column(primary_key=True)
    name: str = column()
    badge: TrBadge | None = relationship(secondary=tr_badge_links, uselist=False)


TR_TABLES = [m.__table__ for m in (TrPerson, TrPassport, TrProfile, TrTeam, TrPlayer, TrFolder, TrFile,
                                   TrMember, TrMessage, TrCategory, TrStudent, TrCourse, TrBadge,
                                   TrBadgeHolder)] + [tr_enrollments, tr_badge_links]


async def rows(engine: Engine, stmt: Any) -> list[tuple[Any, ...]]:
    """Committed rows of ``stmt``, read through a connection of its own.

    It sees committed data only (on SQLite it reads on a reader connection).
    """
    async with engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(stmt)).all()]
