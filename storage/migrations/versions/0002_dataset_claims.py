"""Dataset claims: which process computes which dataset of which store right now.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY = 128
NAME = 64
URI = 2048


def upgrade() -> None:
    op.create_table(
        "dataset_claims",
        sa.Column("store_url", sa.String(URI), nullable=False),
        sa.Column("dataset_key", sa.String(KEY), nullable=False),
        sa.Column("holder", sa.String(NAME * 2), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("store_url", "dataset_key", name=op.f("pk_dataset_claims")),
    )
    op.create_index(op.f("ix_dataset_claims_holder"), "dataset_claims", ["holder"])


def downgrade() -> None:
    op.drop_table("dataset_claims")
