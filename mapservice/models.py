"""The schema: SQLAlchemy 2 typed models. Nothing else lives here.

List-valued fields (categories, audiences, languages) are PostgreSQL ``text[]`` (GIN-indexed) and
JSON arrays on SQLite; the store's dialect modules know how to filter each.
"""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (JSON, Boolean, CheckConstraint, Date, DateTime, Float, ForeignKey, Index,
                        Integer, String, Text, UniqueConstraint, func, text)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

STATUSES = ("draft", "pending", "published", "archived")
COSTS = ("free", "reduced", "paid", "unknown")
WHEELCHAIR = ("yes", "limited", "no", "unknown")
ROLES = ("admin", "moderator", "partner", "trainer")

CodeList = JSON().with_variant(ARRAY(String(32)), "postgresql")
Document = JSON().with_variant(JSONB(), "postgresql")


def _uuid() -> str:
    return str(uuid.uuid4())


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Base(DeclarativeBase):
    pass


class Source(Base):
    """Where resources come from (an importer run's ``--source``), with its licence."""

    __tablename__ = "source"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    licence: Mapped[str | None] = mapped_column(String(200))
    attribution: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(String(500))
    imported_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class Organization(Base):
    __tablename__ = "organization"
    __table_args__ = (UniqueConstraint("source", "source_id", name="uq_organization_source"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(36), unique=True, default=_uuid)
    name: Mapped[str] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(Text)
    website: Mapped[str | None] = mapped_column(String(500))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(50))
    source: Mapped[str | None] = mapped_column(String(100))
    source_id: Mapped[str | None] = mapped_column(String(200))

    resources: Mapped[list[Resource]] = relationship(back_populates="organization")


class Resource(Base):
    """One service at one place (HSDS ``service_at_location``), flattened for a map.

    ``geom`` is the point the public sees. For a confidential location it is only an approximate
    area (a grid cell centre) and the exact point is kept in ``exact_lat``/``exact_lon``, which no
    public output reads.
    """

    __tablename__ = "resource"
    __table_args__ = (
        UniqueConstraint("source", "source_id", name="uq_resource_source"),
        Index("ix_resource_unpublished", "status",
              postgresql_where=text("status <> 'published'"),
              sqlite_where=text("status <> 'published'")),
        Index("ix_resource_feature_stale", "id", postgresql_where=text("feature IS NULL"),
              sqlite_where=text("feature IS NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(36), unique=True, default=_uuid)
    slug: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(Text)
    translations: Mapped[dict[str, Any]] = mapped_column(Document, default=dict)
    categories: Mapped[list[str]] = mapped_column(CodeList, default=list)
    audiences: Mapped[list[str]] = mapped_column(CodeList, default=list)
    languages: Mapped[list[str]] = mapped_column(CodeList, default=list)
    cost: Mapped[str] = mapped_column(String(10), default="unknown")
    wheelchair: Mapped[str] = mapped_column(String(10), default="unknown")
    opening_hours: Mapped[str | None] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(String(300))
    postcode: Mapped[str | None] = mapped_column(String(10))
    stadtteil: Mapped[str | None] = mapped_column(String(100))
    bezirk: Mapped[str | None] = mapped_column(String(100))
    geom = mapped_column(Geometry("POINT", srid=4326, spatial_index=False), nullable=False)
    exact_lat: Mapped[float | None] = mapped_column(Float)
    exact_lon: Mapped[float | None] = mapped_column(Float)
    phone: Mapped[str | None] = mapped_column(String(50))
    email: Mapped[str | None] = mapped_column(String(320))
    website: Mapped[str | None] = mapped_column(String(500))
    organization_id: Mapped[int | None] = mapped_column(ForeignKey("organization.id"))
    location_confidential: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(12), default="published")
    last_verified: Mapped[dt.date | None] = mapped_column(Date)
    source: Mapped[str] = mapped_column(String(100))
    source_id: Mapped[str] = mapped_column(String(200))
    locked_fields: Mapped[list[str]] = mapped_column(JSON, default=list)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now,
                                                    index=True)
    # The public GeoJSON Feature, serialised: a cache that triggers reset to NULL on every
    # change (migration 0005) and the store refills. Never loaded with the object.
    feature: Mapped[str | None] = mapped_column(Text, deferred=True)

    organization: Mapped[Organization | None] = relationship(back_populates="resources")
    versions: Mapped[list[ResourceVersion]] = relationship(
        back_populates="resource", order_by="ResourceVersion.version")


class ResourceVersion(Base):
    """One change to a resource: who, when, the full state after, and the fields that changed."""

    __tablename__ = "resource_version"
    __table_args__ = (UniqueConstraint("resource_id", "version", name="uq_resource_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resource.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    changed_by: Mapped[str] = mapped_column(String(200))
    changed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    diff: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    resource: Mapped[Resource] = relationship(back_populates="versions")


class User(Base):
    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(20), default="partner")
    organization_id: Mapped[int | None] = mapped_column(ForeignKey("organization.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user")


class ApiToken(Base):
    """An API token; only its SHA-256 hash is stored."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    user: Mapped[User] = relationship(back_populates="tokens")


DISTRICT_LEVELS = ("stadtteil", "bezirk")


class District(Base):
    """A Stadtteil or Bezirk polygon (``mapservice import-boundaries``). Resources take their
    ``stadtteil``/``bezirk`` from these by point-in-polygon; ``bezirk`` on a Stadtteil names its
    Bezirk, which also covers Stadtteile the Bezirk layer leaves out (Neuwerk)."""

    __tablename__ = "district"
    __table_args__ = (UniqueConstraint("level", "code", name="uq_district_level_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    level: Mapped[str] = mapped_column(String(10))
    code: Mapped[str] = mapped_column(String(50))
    name: Mapped[str] = mapped_column(String(100))
    bezirk: Mapped[str | None] = mapped_column(String(100))
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False)


DUPLICATE_STATUSES = ("open", "dismissed", "merged")


class PossibleDuplicate(Base):
    """Two resources from different sources that are near each other and have similar names.

    Flagged for moderation, never merged silently (``Store.flag_duplicates``). A pair is stored
    once, ``resource_a_id < resource_b_id``, so re-imports do not flag it again — not even
    after a moderator dismissed it.
    """

    __tablename__ = "possible_duplicate"
    __table_args__ = (
        UniqueConstraint("resource_a_id", "resource_b_id", name="uq_possible_duplicate_pair"),
        CheckConstraint("resource_a_id < resource_b_id", name="ck_possible_duplicate_order"),
        Index("ix_possible_duplicate_status", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    resource_a_id: Mapped[int] = mapped_column(ForeignKey("resource.id"))
    resource_b_id: Mapped[int] = mapped_column(ForeignKey("resource.id"), index=True)
    distance_m: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(12), default="open")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)

    resource_a: Mapped[Resource] = relationship(foreign_keys=[resource_a_id])
    resource_b: Mapped[Resource] = relationship(foreign_keys=[resource_b_id])


__all__ = ["Base", "Source", "Organization", "Resource", "ResourceVersion", "User", "ApiToken",
           "District", "DISTRICT_LEVELS", "PossibleDuplicate", "DUPLICATE_STATUSES",
           "STATUSES", "COSTS", "WHEELCHAIR", "ROLES", "func"]
