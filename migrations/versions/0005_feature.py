"""Each resource keeps its public GeoJSON Feature, serialised, in ``resource.feature``.

A page of search results is then the stored texts joined, not a thousand rows of 25 columns
decoded and re-encoded per request (docs/benchmarks.md, "Search"). The column is a cache the
database keeps honest:

- The store writes it (``Store._fill_features``, and the bulk insert of new rows) from exactly
  what the public columns hold; NULL means "not built yet".
- Triggers set it to NULL whenever the row changes without a new ``feature`` being written in
  the same statement, and for every resource of an organisation whose name changes. A writer
  that does not know about the column (a moderator tool, hand-written SQL) therefore can never
  leave a stale feature behind.
- Readers use the stored text where there is one and build the feature from the columns where
  it is NULL; a partial index finds the NULL ones for the next fill.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_SQLITE_TRIGGERS = ("resource_feature_stale", "organization_feature_stale")


def upgrade() -> None:
    op.add_column("resource", sa.Column("feature", sa.Text, nullable=True))
    where = sa.text("feature IS NULL")
    op.create_index("ix_resource_feature_stale", "resource", ["id"],
                    postgresql_where=where, sqlite_where=where)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("""CREATE FUNCTION mapservice_resource_feature_stale() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                NEW.feature := NULL;
                RETURN NEW;
            END $$""")
        op.execute("""CREATE TRIGGER resource_feature_stale BEFORE UPDATE ON resource
            FOR EACH ROW WHEN (OLD.feature IS NOT NULL
                               AND NEW.feature IS NOT DISTINCT FROM OLD.feature)
            EXECUTE FUNCTION mapservice_resource_feature_stale()""")
        op.execute("""CREATE FUNCTION mapservice_organization_feature_stale() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                UPDATE resource SET feature = NULL
                WHERE organization_id = NEW.id AND feature IS NOT NULL;
                RETURN NULL;
            END $$""")
        op.execute("""CREATE TRIGGER organization_feature_stale AFTER UPDATE OF name
            ON organization FOR EACH ROW WHEN (OLD.name IS DISTINCT FROM NEW.name)
            EXECUTE FUNCTION mapservice_organization_feature_stale()""")
    else:
        # SQLite triggers cannot assign to NEW: the row is updated once more. That UPDATE of
        # ``feature`` alone fires no other trigger of ours (they name their columns), and
        # SQLite does not run a trigger recursively.
        op.execute("""CREATE TRIGGER resource_feature_stale AFTER UPDATE ON resource
            WHEN OLD.feature IS NOT NULL AND NEW.feature IS OLD.feature BEGIN
            UPDATE resource SET feature = NULL WHERE id = NEW.id;
        END""")
        op.execute("""CREATE TRIGGER organization_feature_stale AFTER UPDATE OF name
            ON organization WHEN OLD.name IS NOT NEW.name BEGIN
            UPDATE resource SET feature = NULL
            WHERE organization_id = NEW.id AND feature IS NOT NULL;
        END""")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS organization_feature_stale ON organization")
        op.execute("DROP TRIGGER IF EXISTS resource_feature_stale ON resource")
        op.execute("DROP FUNCTION IF EXISTS mapservice_organization_feature_stale()")
        op.execute("DROP FUNCTION IF EXISTS mapservice_resource_feature_stale()")
    else:
        for trigger in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.drop_index("ix_resource_feature_stale", table_name="resource")
    op.execute("ALTER TABLE resource DROP COLUMN feature")  # SQLite >= 3.35 can, in place
