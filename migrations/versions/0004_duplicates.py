"""Possible duplicates: pairs of resources from different sources, near each other with similar
names, kept for moderation (``Store.flag_duplicates``, ``mapservice duplicates``).

A pair is stored once (``resource_a_id < resource_b_id``, unique), so flagging is idempotent and
a dismissed pair is not flagged again by the next import.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "possible_duplicate",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("resource_a_id", sa.Integer, sa.ForeignKey("resource.id"), nullable=False),
        sa.Column("resource_b_id", sa.Integer, sa.ForeignKey("resource.id"), nullable=False),
        sa.Column("distance_m", sa.Float, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("status", sa.String(12), nullable=False, server_default="open"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("resource_a_id", "resource_b_id", name="uq_possible_duplicate_pair"),
        sa.CheckConstraint("resource_a_id < resource_b_id", name="ck_possible_duplicate_order"),
    )
    op.create_index("ix_possible_duplicate_status", "possible_duplicate", ["status"])
    # The unique constraint serves lookups by resource_a_id; this one those by resource_b_id
    # (a resource's pairs, and the foreign key when a resource row is touched).
    op.create_index("ix_possible_duplicate_resource_b_id", "possible_duplicate",
                    ["resource_b_id"])


def downgrade() -> None:
    op.drop_index("ix_possible_duplicate_resource_b_id", table_name="possible_duplicate")
    op.drop_index("ix_possible_duplicate_status", table_name="possible_duplicate")
    op.drop_table("possible_duplicate")
