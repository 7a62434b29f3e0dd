"""Initial schema: sources, organisations, resources (with spatial index), versions, users.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mapservice.models import CodeList, Document

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _tz() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    if postgres:
        op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    else:
        has_meta = bind.exec_driver_sql(
            "SELECT 1 FROM sqlite_master WHERE name = 'spatial_ref_sys'").first()
        if not has_meta:
            # Inside the migration's transaction (mapservice.db begins every SQLite
            # transaction itself): one commit, not one per row, which would take ~30 s per
            # new file (SETUP-NOTES). InitSpatialMetadata(0) would try to BEGIN a second one.
            bind.exec_driver_sql("SELECT InitSpatialMetadata(0)")

    op.create_table(
        "source",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("licence", sa.String(200)),
        sa.Column("attribution", sa.Text),
        sa.Column("url", sa.String(500)),
        sa.Column("imported_at", _tz()),
    )
    op.create_table(
        "organization",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("uid", sa.String(36), nullable=False, unique=True),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("website", sa.String(500)),
        sa.Column("email", sa.String(320)),
        sa.Column("phone", sa.String(50)),
        sa.Column("source", sa.String(100)),
        sa.Column("source_id", sa.String(200)),
        sa.UniqueConstraint("source", "source_id", name="uq_organization_source"),
    )
    op.create_table(
        "resource",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("uid", sa.String(36), nullable=False, unique=True),
        sa.Column("slug", sa.String(200), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("translations", Document, nullable=False),
        sa.Column("categories", CodeList, nullable=False),
        sa.Column("audiences", CodeList, nullable=False),
        sa.Column("languages", CodeList, nullable=False),
        sa.Column("cost", sa.String(10), nullable=False),
        sa.Column("wheelchair", sa.String(10), nullable=False),
        sa.Column("opening_hours", sa.Text),
        sa.Column("address", sa.String(300)),
        sa.Column("postcode", sa.String(10)),
        sa.Column("stadtteil", sa.String(100)),
        sa.Column("bezirk", sa.String(100)),
        sa.Column("exact_lat", sa.Float),
        sa.Column("exact_lon", sa.Float),
        sa.Column("phone", sa.String(50)),
        sa.Column("email", sa.String(320)),
        sa.Column("website", sa.String(500)),
        sa.Column("organization_id", sa.Integer, sa.ForeignKey("organization.id")),
        sa.Column("location_confidential", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("last_verified", sa.Date),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("source_id", sa.String(200), nullable=False),
        sa.Column("locked_fields", sa.JSON, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", _tz(), nullable=False),
        sa.Column("updated_at", _tz(), nullable=False),
        sa.UniqueConstraint("source", "source_id", name="uq_resource_source"),
    )
    # Almost every row is published: an index over all statuses only lures the planner away
    # from the KNN scan. The moderation queues read the few unpublished rows through this one.
    unpublished = sa.text("status <> 'published'")
    op.create_index("ix_resource_unpublished", "resource", ["status"],
                    postgresql_where=unpublished, sqlite_where=unpublished)
    op.create_index("ix_resource_updated_at", "resource", ["updated_at"])
    if postgres:
        op.execute("ALTER TABLE resource ADD COLUMN geom geometry(Point, 4326) NOT NULL")
        op.execute("CREATE INDEX idx_resource_geom ON resource USING gist (geom)")
        for column in ("categories", "audiences", "languages"):
            op.execute(f"CREATE INDEX ix_resource_{column} ON resource USING gin ({column})")
    else:
        bind.exec_driver_sql("SELECT AddGeometryColumn('resource', 'geom', 4326, 'POINT', 'XY', 1)")
        bind.exec_driver_sql("SELECT CreateSpatialIndex('resource', 'geom')")

    op.create_table(
        "resource_version",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("resource_id", sa.Integer, sa.ForeignKey("resource.id"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("changed_by", sa.String(200), nullable=False),
        sa.Column("changed_at", _tz(), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("diff", sa.JSON, nullable=False),
        sa.UniqueConstraint("resource_id", "version", name="uq_resource_version"),
    )
    op.create_index("ix_resource_version_resource_id", "resource_version", ["resource_id"])
    op.create_table(
        "user_account",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("email", sa.String(320), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(300), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("organization_id", sa.Integer, sa.ForeignKey("organization.id")),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", _tz(), nullable=False),
    )
    op.create_table(
        "api_token",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("user_account.id"), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("label", sa.String(100)),
        sa.Column("created_at", _tz(), nullable=False),
        sa.Column("last_used_at", _tz()),
    )
    op.create_index("ix_api_token_user_id", "api_token", ["user_id"])


def downgrade() -> None:
    bind = op.get_bind()
    for table in ("api_token", "user_account", "resource_version"):
        op.drop_table(table)
    if bind.dialect.name == "sqlite":
        bind.exec_driver_sql("SELECT DisableSpatialIndex('resource', 'geom')")
        bind.exec_driver_sql("DROP TABLE IF EXISTS idx_resource_geom")
        bind.exec_driver_sql("SELECT DiscardGeometryColumn('resource', 'geom')")
    op.drop_table("resource")
    op.drop_table("organization")
    op.drop_table("source")
