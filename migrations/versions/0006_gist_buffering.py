"""PostGIS: the spatial index of ``resource`` is built by GiST's buffering method, not the
sorted one.

Since PostgreSQL 14 (with PostGIS >= 3.1 geometry) ``CREATE INDEX ... USING gist`` on a filled
table sorts the points and packs the pages in that order. It builds fast, but the pages' boxes
overlap badly: on 100k generated resources a 300 m box query visited 37 index pages instead of
8 (0.16 ms instead of 0.035 ms), and a nearest-44 KNN scan took 0.33 ms instead of 0.15 ms.
The bulk load of an empty table drops and recreates this index from its definition
(``pg_get_indexdef``), so the storage parameter set here makes every later build use the
buffering method too. The index is rebuilt once now (locks the table for its duration: about
10 s per million resources).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""
from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SpatiaLite's R*Tree has no such choice
    op.execute("ALTER INDEX idx_resource_geom SET (buffering = on)")
    op.execute("REINDEX INDEX idx_resource_geom")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER INDEX idx_resource_geom RESET (buffering)")
