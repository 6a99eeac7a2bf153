"""A music shop mapped as an existing schema (in the spirit of the Chinook sample database).

The database spells tables and columns its own way ("mcTrack"."UnitPrice", "ReportsTo"); the
models use snake_case attributes.  Two names need quoting: the customers' "User" column (a
reserved word: unquoted, PostgreSQL reads it as current_user) and the invoices' "Billing Country"
(a space).  Employees are self-referential (a manager), playlists and tracks many-to-many, and
prices and totals are money (Numeric(10, 2)).  tests/test_music_catalogue.py seeds and queries it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from aiouow import Column, ForeignKey, Mapped, Model, Table, column, relationship
from aiouow import types as T


class Artist(Model):
    __tablename__ = "mcArtist"
    artist_id: Mapped[int] = column("ArtistId", primary_key=True)
    name: Mapped[str] = column("Name")
    albums: Mapped[list[Album]] = relationship(back_populates="artist")


class Album(Model):
    __tablename__ = "mcAlbum"
    album_id: Mapped[int] = column("AlbumId", primary_key=True)
    title: Mapped[str] = column("Title")
    artist_id: Mapped[int] = column("ArtistId", ForeignKey("mcArtist.ArtistId"))
    artist: Mapped[Artist] = relationship(back_populates="albums")
    tracks: Mapped[list[Track]] = relationship(back_populates="album")


class Genre(Model):
    __tablename__ = "mcGenre"
    genre_id: Mapped[int] = column("GenreId", primary_key=True)
    name: Mapped[str] = column("Name")


class MediaType(Model):
    __tablename__ = "mcMediaType"
    media_type_id: Mapped[int] = column(name="MediaTypeId", primary_key=True)
    name: Mapped[str] = column(name="Name")


class Track(Model):
    __tablename__ = "mcTrack"
    track_id: Mapped[int] = column("TrackId", primary_key=True)
    name: Mapped[str] = column("Name")
    album_id: Mapped[int] = column("AlbumId", ForeignKey("mcAlbum.AlbumId"))
    media_type_id: Mapped[int] = column("MediaTypeId", ForeignKey("mcMediaType.MediaTypeId"))
    genre_id: Mapped[int | None] = column("GenreId", ForeignKey("mcGenre.GenreId"))
    composer: Mapped[str | None] = column("Composer")
    milliseconds: Mapped[int] = column("Milliseconds")
    bytes: Mapped[int] = column("Bytes")
    unit_price: Mapped[Decimal] = column("UnitPrice", type_=T.Numeric(10, 2))
    album: Mapped[Album] = relationship(back_populates="tracks")
    genre: Mapped[Genre | None] = relationship()
    playlists: Mapped[list[Playlist]] = relationship(secondary="mcPlaylistTrack", back_populates="tracks")


playlist_track = Table(
    "mcPlaylistTrack",
    Column("PlaylistId", int, ForeignKey("mcPlaylist.PlaylistId"), primary_key=True),
    Column("TrackId", int, ForeignKey("mcTrack.TrackId"), primary_key=True),
)


class Playlist(Model):
    __tablename__ = "mcPlaylist"
    playlist_id: Mapped[int] = column("PlaylistId", primary_key=True)
    name: Mapped[str] = column("Name")
    tracks: Mapped[list[Track]] = relationship(secondary="mcPlaylistTrack", back_populates="playlists")


class Employee(Model):
    __tablename__ = "mcEmployee"
    employee_id: Mapped[int] = column("EmployeeId", primary_key=True)
    last_name: Mapped[str] = column("LastName")
    first_name: Mapped[str] = column("FirstName")
    title: Mapped[str] = column("Title")
    reports_to: Mapped[int | None] = column("ReportsTo", ForeignKey("mcEmployee.EmployeeId"))
    hire_date: Mapped[dt.datetime] = column("HireDate")
    country: Mapped[str] = column("Country")
    manager: Mapped[Employee | None] = relationship(remote_side="Employee.employee_id", back_populates="reports")
    reports: Mapped[list[Employee]] = relationship(back_populates="manager")


class Customer(Model):
    __tablename__ = "mcCustomer"
    customer_id: Mapped[int] = column("CustomerId", primary_key=True)
    first_name: Mapped[str] = column("FirstName")
    last_name: Mapped[str] = column("LastName")
    user_name: Mapped[str] = column("User")
    country: Mapped[str] = column("Country")
    email: Mapped[str | None] = column("Email")
    support_rep_id: Mapped[int | None] = column("SupportRepId", ForeignKey("mcEmployee.EmployeeId"))
    support_rep: Mapped[Employee | None] = relationship()


class Invoice(Model):
    __tablename__ = "mcInvoice"
    invoice_id: Mapped[int] = column("InvoiceId", primary_key=True)
    customer_id: Mapped[int] = column("CustomerId", ForeignKey("mcCustomer.CustomerId"))
    invoice_date: Mapped[dt.datetime] = column("InvoiceDate")
    billing_country: Mapped[str] = column("Billing Country")
    total: Mapped[Decimal] = column("Total", type_=T.Numeric(10, 2))
    customer: Mapped[Customer] = relationship()
    lines: Mapped[list[InvoiceLine]] = relationship(back_populates="invoice")


class InvoiceLine(Model):
    __tablename__ = "mcInvoiceLine"
    invoice_line_id: Mapped[int] = column("InvoiceLineId", primary_key=True)
    invoice_id: Mapped[int] = column("InvoiceId", ForeignKey("mcInvoice.InvoiceId"))
    track_id: Mapped[int] = column("TrackId", ForeignKey("mcTrack.TrackId"))
    unit_price: Mapped[Decimal] = column("UnitPrice", type_=T.Numeric(10, 2))
    quantity: Mapped[int] = column("Quantity")
    invoice: Mapped[Invoice] = relationship(back_populates="lines")
    track: Mapped[Track] = relationship()
