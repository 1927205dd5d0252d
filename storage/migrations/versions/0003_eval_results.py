"""Evaluation results: one row per `codeio eval` run (model, benchmark file hash,
prompt version, scores).

Revision ID: 0003_eval
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_eval"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = 64
VERSION = 128
URI = 2048


def upgrade() -> None:
    op.create_table(
        "eval_results",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("model", sa.String(NAME * 4), nullable=False),
        sa.Column("teacher", sa.String(16), nullable=False),
        sa.Column("benchmark", sa.String(NAME), nullable=False),
        sa.Column("benchmark_path", sa.String(URI), nullable=False),
        sa.Column("benchmark_sha256", sa.String(64), nullable=False),
        sa.Column("prompt_version", sa.String(VERSION), nullable=False),
        sa.Column("prompt_hash", sa.String(64), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("questions", sa.Integer(), nullable=False),
        sa.Column("pass_at_1_output", sa.Float(), nullable=True),
        sa.Column("pass_at_1_input", sa.Float(), nullable=True),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_eval_results_run_id_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_eval_results")),
    )
    op.create_index(op.f("ix_eval_results_benchmark_sha256"), "eval_results", ["benchmark_sha256"])
    op.create_index(op.f("ix_eval_results_model"), "eval_results", ["model"])


def downgrade() -> None:
    op.drop_table("eval_results")
