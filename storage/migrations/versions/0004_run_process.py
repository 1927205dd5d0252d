"""Runs record the process that runs them (host, boot id, PID namespace, pid, start
time), so a later run can tell a run whose process is gone (``crashed``).

Revision ID: 0004_run_process
Revises: 0003_eval
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_run_process"
down_revision: str | None = "0003_eval"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("process", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("process")
