"""Districts: Stadtteil and Bezirk polygons for point-in-polygon (``mapservice import-boundaries``).

``district`` holds one MultiPolygon (EPSG:4326) per Stadtteil or Bezirk with a spatial index
(PostGIS: GiST; SpatiaLite: R*Tree ``idx_district_geom``, read by the store's window hook).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    op.create_table(
        "district",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("level", sa.String(10), nullable=False),
        sa.Column("code", sa.String(50), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("bezirk", sa.String(100)),
        sa.UniqueConstraint("level", "code", name="uq_district_level_code"),
    )
    if bind.dialect.name == "postgresql":
        op.execute("ALTER TABLE district ADD COLUMN geom geometry(MultiPolygon, 4326) NOT NULL")
        op.execute("CREATE INDEX idx_district_geom ON district USING gist (geom)")
    else:
        bind.exec_driver_sql(
            "SELECT AddGeometryColumn('district', 'geom', 4326, 'MULTIPOLYGON', 'XY', 1)")
        bind.exec_driver_sql("SELECT CreateSpatialIndex('district', 'geom')")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        bind.exec_driver_sql("SELECT DisableSpatialIndex('district', 'geom')")
        bind.exec_driver_sql("DROP TABLE IF EXISTS idx_district_geom")
        bind.exec_driver_sql("SELECT DiscardGeometryColumn('district', 'geom')")
    op.drop_table("district")
