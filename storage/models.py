"""Lineage tables (SQLAlchemy 2 typed models).

The schema itself is owned by the Alembic migrations in ``storage/migrations``;
these models must stay equal to them (a test compares the migrated database
with this metadata on SQLite and PostgreSQL).

Dataset keys that point elsewhere (a parent, a stage run's output, a run's
link) carry no foreign key on purpose: a parent may live in a store whose
lineage went to another database, and a stage run is recorded before its
dataset's manifest exists. Rows that belong to a run or a dataset do reference
it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names, so later migrations can address them on both backends.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

KEY_LENGTH = 128  # dataset keys are hex digests, possibly prefixed
NAME_LENGTH = 64  # stage names, run kinds
VERSION_LENGTH = 128  # code versions (git describe, package version + hash)
URI_LENGTH = 2048


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    SQLite has no time zone type: values are stored as UTC wall time and get
    their ``tzinfo`` back on load. Naive datetimes are refused, since their zone
    is a guess.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: lineage timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# An autoincrementing 64-bit id (SQLite only autoincrements INTEGER PRIMARY KEY).
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class Run(Base):
    """One flow run (pipeline, sweep, nightly...)."""

    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(NAME_LENGTH))
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(index=True)
    finished_at: Mapped[datetime | None]
    parameters: Mapped[dict[str, Any]]
    settings: Mapped[dict[str, Any]]
    code_version: Mapped[str] = mapped_column(String(VERSION_LENGTH))
    username: Mapped[str] = mapped_column(String(NAME_LENGTH * 2))
    summary: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    # who runs it (storage.liveness.ProcessIdentity): a later run marks it crashed once that process is gone
    process: Mapped[dict[str, Any] | None]


class Dataset(Base):
    """A content-addressed dataset, as first recorded (same key = same content)."""

    __tablename__ = "datasets"

    dataset_key: Mapped[str] = mapped_column(String(KEY_LENGTH), primary_key=True)
    stage: Mapped[str] = mapped_column(String(NAME_LENGTH), index=True)
    uri: Mapped[str] = mapped_column(String(URI_LENGTH))
    config: Mapped[dict[str, Any]]
    counts: Mapped[dict[str, Any]]
    schema_version: Mapped[str] = mapped_column(String(32))
    code_version: Mapped[str] = mapped_column(String(VERSION_LENGTH))
    created_at: Mapped[datetime] = mapped_column(index=True)


class DatasetParent(Base):
    """Edge child -> parent; ``position`` keeps the parents' order (it enters the key)."""

    __tablename__ = "dataset_parents"

    dataset_key: Mapped[str] = mapped_column(
        String(KEY_LENGTH), ForeignKey("datasets.dataset_key", ondelete="CASCADE"), primary_key=True
    )
    parent_key: Mapped[str] = mapped_column(String(KEY_LENGTH), primary_key=True, index=True)
    position: Mapped[int] = mapped_column(Integer)


class DatasetLocation(Base):
    """Every store a dataset was written to (the same key may live in several)."""

    __tablename__ = "dataset_locations"

    dataset_key: Mapped[str] = mapped_column(
        String(KEY_LENGTH), ForeignKey("datasets.dataset_key", ondelete="CASCADE"), primary_key=True
    )
    uri: Mapped[str] = mapped_column(String(URI_LENGTH), primary_key=True)
    recorded_at: Mapped[datetime]


class RunDataset(Base):
    """Which run produced or reused which dataset (``produced`` wins over ``reused``)."""

    __tablename__ = "run_datasets"

    run_id: Mapped[str] = mapped_column(String(32), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    dataset_key: Mapped[str] = mapped_column(String(KEY_LENGTH), primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(16))
    linked_at: Mapped[datetime]


class StageRun(Base):
    """One shard of one stage in one run: timings, counts, LLM usage.

    ``cached`` is true when the shard was already done and skipped. The LLM
    counters are columns so totals are SQL sums; ``llm`` keeps the whole usage
    dict (failures by reason and anything a newer client adds).
    """

    __tablename__ = "stage_runs"
    __table_args__ = (
        UniqueConstraint("run_id", "dataset_key", "shard"),
        Index("ix_stage_runs_run_id_stage", "run_id", "stage"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(32), ForeignKey("runs.id", ondelete="CASCADE"))
    stage: Mapped[str] = mapped_column(String(NAME_LENGTH))
    dataset_key: Mapped[str] = mapped_column(String(KEY_LENGTH), index=True)
    shard: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime]
    records_in: Mapped[int] = mapped_column(Integer)
    records_out: Mapped[int] = mapped_column(Integer)
    records_rejected: Mapped[int] = mapped_column(Integer)
    rejects_by_reason: Mapped[dict[str, Any]]
    cached: Mapped[bool] = mapped_column(Boolean)
    llm_requests: Mapped[int] = mapped_column(Integer)
    llm_cached: Mapped[int] = mapped_column(Integer)
    llm_failed: Mapped[int] = mapped_column(Integer)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger)
    completion_tokens: Mapped[int] = mapped_column(BigInteger)
    cost_usd: Mapped[float] = mapped_column(Float)
    retries: Mapped[int] = mapped_column(Integer)
    llm: Mapped[dict[str, Any]]


class DatasetClaim(Base):
    """A process computing a dataset of a store right now. Others that need the same
    dataset wait for the claim to go, then reuse what it produced. The holder renews
    its claim while it works; a claim left by a crashed process expires."""

    __tablename__ = "dataset_claims"

    store_url: Mapped[str] = mapped_column(String(URI_LENGTH), primary_key=True)
    dataset_key: Mapped[str] = mapped_column(String(KEY_LENGTH), primary_key=True)
    holder: Mapped[str] = mapped_column(String(NAME_LENGTH * 2), index=True)
    run_id: Mapped[str | None] = mapped_column(String(32))
    claimed_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class EvalResult(Base):
    """The scores of one evaluation run (``codeio eval``), with what they depend on:
    the model, the benchmark file's content hash and the prompt templates."""

    __tablename__ = "eval_results"

    run_id: Mapped[str] = mapped_column(String(32), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    model: Mapped[str] = mapped_column(String(NAME_LENGTH * 4), index=True)
    teacher: Mapped[str] = mapped_column(String(16))
    benchmark: Mapped[str] = mapped_column(String(NAME_LENGTH))
    benchmark_path: Mapped[str] = mapped_column(String(URI_LENGTH))
    benchmark_sha256: Mapped[str] = mapped_column(String(64), index=True)
    prompt_version: Mapped[str] = mapped_column(String(VERSION_LENGTH))
    prompt_hash: Mapped[str] = mapped_column(String(64))
    samples: Mapped[int] = mapped_column(Integer)
    questions: Mapped[int] = mapped_column(Integer)
    pass_at_1_output: Mapped[float | None] = mapped_column(Float)
    pass_at_1_input: Mapped[float | None] = mapped_column(Float)
    scores: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
