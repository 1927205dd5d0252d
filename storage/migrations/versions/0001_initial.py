"""Initial lineage schema: runs, datasets, parent edges, locations, run links, stage runs.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY = 128
NAME = 64
VERSION = 128
URI = 2048


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(NAME), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("code_version", sa.String(VERSION), nullable=False),
        sa.Column("username", sa.String(NAME * 2), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    op.create_index(op.f("ix_runs_started_at"), "runs", ["started_at"])

    op.create_table(
        "datasets",
        sa.Column("dataset_key", sa.String(KEY), nullable=False),
        sa.Column("stage", sa.String(NAME), nullable=False),
        sa.Column("uri", sa.String(URI), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("schema_version", sa.String(32), nullable=False),
        sa.Column("code_version", sa.String(VERSION), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("dataset_key", name=op.f("pk_datasets")),
    )
    op.create_index(op.f("ix_datasets_stage"), "datasets", ["stage"])
    op.create_index(op.f("ix_datasets_created_at"), "datasets", ["created_at"])

    op.create_table(
        "dataset_parents",
        sa.Column("dataset_key", sa.String(KEY), nullable=False),
        sa.Column("parent_key", sa.String(KEY), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_key"],
            ["datasets.dataset_key"],
            name=op.f("fk_dataset_parents_dataset_key_datasets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("dataset_key", "parent_key", name=op.f("pk_dataset_parents")),
    )
    op.create_index(op.f("ix_dataset_parents_parent_key"), "dataset_parents", ["parent_key"])

    op.create_table(
        "dataset_locations",
        sa.Column("dataset_key", sa.String(KEY), nullable=False),
        sa.Column("uri", sa.String(URI), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_key"],
            ["datasets.dataset_key"],
            name=op.f("fk_dataset_locations_dataset_key_datasets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("dataset_key", "uri", name=op.f("pk_dataset_locations")),
    )

    op.create_table(
        "run_datasets",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("dataset_key", sa.String(KEY), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_run_datasets_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "dataset_key", name=op.f("pk_run_datasets")),
    )
    op.create_index(op.f("ix_run_datasets_dataset_key"), "run_datasets", ["dataset_key"])

    op.create_table(
        "stage_runs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("stage", sa.String(NAME), nullable=False),
        sa.Column("dataset_key", sa.String(KEY), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("records_in", sa.Integer(), nullable=False),
        sa.Column("records_out", sa.Integer(), nullable=False),
        sa.Column("records_rejected", sa.Integer(), nullable=False),
        sa.Column("rejects_by_reason", sa.JSON(), nullable=False),
        sa.Column("cached", sa.Boolean(), nullable=False),
        sa.Column("llm_requests", sa.Integer(), nullable=False),
        sa.Column("llm_cached", sa.Integer(), nullable=False),
        sa.Column("llm_failed", sa.Integer(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column("llm", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_stage_runs_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stage_runs")),
        sa.UniqueConstraint("run_id", "dataset_key", "shard", name=op.f("uq_stage_runs_run_id_dataset_key_shard")),
    )
    op.create_index(op.f("ix_stage_runs_dataset_key"), "stage_runs", ["dataset_key"])
    op.create_index("ix_stage_runs_run_id_stage", "stage_runs", ["run_id", "stage"])


def downgrade() -> None:
    op.drop_table("stage_runs")
    op.drop_table("run_datasets")
    op.drop_table("dataset_locations")
    op.drop_table("dataset_parents")
    op.drop_table("datasets")
    op.drop_table("runs")
