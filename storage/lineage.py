"""The lineage database: runs, stage runs per shard, datasets and their parent edges.

One ``LineageDB`` per flow process (lineage is written from the flow process
only, so SQLite never sees writers from the Dask workers). SQLite is the
embedded default, PostgreSQL the production backend; the schema comes from the
Alembic migrations shipped in this package and ``upgrade()`` applies them, safe
when two runs start at once:

- PostgreSQL: a session-level ``pg_advisory_lock`` is held around the upgrade;
- SQLite: every write transaction is ``BEGIN IMMEDIATE`` (the database's write
  lock), and the upgrade is one such transaction, so a second process waits and
  then finds the schema at head.

Secrets are never stored: ``settings`` and ``parameters`` go through
``scrub_secrets`` even though callers pass public settings.
"""

from __future__ import annotations

import math
import re
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from pathlib import Path, PurePath
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from pydantic import BaseModel, SecretBytes, SecretStr
from sqlalchemy import Engine, case, create_engine, delete, event, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.orm import Session

from storage.liveness import ProcessIdentity
from storage.models import (Dataset, DatasetClaim, DatasetLocation, DatasetParent, EvalResult, Run, RunDataset,
                            StageRun)

MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")
SUPPORTED_BACKENDS = ("sqlite", "postgresql")
PG_DRIVER = "postgresql+psycopg"
PG_DRIVER_ALIASES = ("postgresql", "postgres")  # bare names would pick psycopg2, which we do not ship
PG_MIGRATION_LOCK_ID = 0x636F_6465_696F_0001  # "codeio" + 1: one lock for lineage migrations
SQLITE_BUSY_TIMEOUT_S = 60.0  # how long a writer waits for the SQLite write lock
READ_ONLY_OPTION = "codeio_read_only"  # execution option: SQLite read transactions use a deferred BEGIN

RUNNING = "running"
CANCELLED = "cancelled"  # stopped by the user (Ctrl-C, SIGTERM)
CRASHED = "crashed"  # its process died without finishing it (SIGKILL, OOM, power loss)
FINAL_STATUSES = ("completed", "failed", CANCELLED, CRASHED)
ROLES = ("produced", "reused")
PRODUCED = "produced"

REDACTED = "**redacted**"
SECRET_NAME_PARTS = ("key", "secret", "password", "token")
# Names (or name suffixes after "_") that match SECRET_NAME_PARTS but hold counts and limits.
NON_SECRET_NAMES = ("prompt_tokens", "completion_tokens", "total_tokens", "max_tokens", "tokens_per_minute")
# user:password@ inside any URL-looking string (database URLs, proxies).
URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]*:)(?P<password>[^/\s@]+)(?P<tail>@)")
# ?api_key=... / &token=... / &X-Amz-Signature=... query parameters in any URL-looking string.
URL_SECRET_PARAM = re.compile(r"(?P<head>[?&][^=&\s]*(?:key|secret|password|token|signature|sig)[^=&\s]*=)[^&\s]+",
                              re.IGNORECASE)

# stage_runs columns fed from the ``llm`` usage dict (codeio.llm.base.UsageTotals.as_dict()).
LLM_INT_COLUMNS = {
    "requests": "llm_requests",
    "cached": "llm_cached",
    "failed": "llm_failed",
    "prompt_tokens": "prompt_tokens",
    "completion_tokens": "completion_tokens",
    "retries": "retries",
}
LLM_COST = "cost_usd"
LLM_FAILURES = "failures_by_reason"

# Alembic keeps the running migration in module globals (``alembic.context``,
# ``alembic.op``): two upgrades in one process must not overlap, whatever the
# database. A per-process resource, not state.
_ALEMBIC_IN_PROCESS = threading.Lock()


# --------------------------------------------------------------------------- values


def _is_non_secret(name: str) -> bool:
    return any(name == allowed or name.endswith("_" + allowed) for allowed in NON_SECRET_NAMES)


def _is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(part in lowered for part in SECRET_NAME_PARTS) and not _is_non_secret(lowered)


def _to_json(value: Any, scrub: bool) -> Any:
    """A JSON-safe copy: tuples and sets become lists, non-finite floats None (PostgreSQL's
    JSON refuses NaN), paths and dates strings, models and dataclasses dicts. With
    ``scrub``, secret-named keys and URL passwords are redacted at every depth."""
    if isinstance(value, SecretStr | SecretBytes):
        return REDACTED
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        if not scrub:
            return value
        value = URL_PASSWORD.sub(r"\g<head>" + REDACTED + r"\g<tail>", value)
        return URL_SECRET_PARAM.sub(r"\g<head>" + REDACTED, value)
    if isinstance(value, Enum):
        return _to_json(value.value, scrub)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, BaseModel):
        return _to_json(value.model_dump(mode="json"), scrub)
    if is_dataclass(value) and not isinstance(value, type):
        return _to_json(asdict(value), scrub)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = str(key)
            if scrub and item is not None and _is_secret_name(name):
                out[name] = REDACTED
            else:
                out[name] = _to_json(item, scrub)
        return out
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [_to_json(item, scrub) for item in items]
    return str(value)


def scrub_secrets(value: Any) -> Any:
    """Defensive secret scrub for run settings and parameters.

    Any key whose name contains key/secret/password/token and whose value is not
    None becomes ``**redacted**`` (counts like ``prompt_tokens``, ``max_tokens``
    and ``tokens_per_minute`` are kept), at every depth; passwords inside URLs
    are redacted too. The result is JSON-safe.
    """
    return _to_json(value, scrub=True)


def _utc(value: datetime | float | int, name: str) -> datetime:
    """An aware UTC datetime from a datetime or epoch seconds (``time.time()``)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{name} is a naive datetime; pass an aware one (UTC) or epoch seconds")
        return value.astimezone(UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    raise TypeError(f"{name} must be a datetime or epoch seconds, not {type(value).__name__}")


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    return value


def _now() -> datetime:
    return datetime.now(UTC)


def _merge_counts(into: dict[str, int], more: Mapping[str, Any] | None) -> None:
    for reason, n in (more or {}).items():
        into[reason] = into.get(reason, 0) + int(n)


# --------------------------------------------------------------------------- engine


def normalize_url(url: str | URL) -> URL:
    """Parse a lineage URL; bare ``postgresql://`` (and ``postgres://``) use psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in PG_DRIVER_ALIASES:
        parsed = parsed.set(drivername=PG_DRIVER)
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise ValueError(f"lineage database must be SQLite or PostgreSQL, not {backend!r} ({parsed!r})")
    return parsed


def _sqlite_file(parsed: URL) -> Path | None:
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:") or parsed.query.get("mode") == "memory":
        return None
    return Path(database)


def create_lineage_engine(url: str | URL) -> Engine:
    """An engine set up for lineage writes on either backend.

    SQLite: the parent folder is created; pysqlite's own transaction handling is
    switched off so that write transactions start with ``BEGIN IMMEDIATE`` (they
    queue on the write lock for up to ``SQLITE_BUSY_TIMEOUT_S`` instead of failing
    on a lock upgrade), read transactions with a deferred ``BEGIN`` (readers never
    upgrade, so they only ever wait); foreign keys are on. The rollback journal is
    kept: switching to WAL is not covered by the busy timeout and fails when two
    processes open a new database at once, and WAL needs a local filesystem.
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "postgresql":
        return create_engine(parsed, pool_pre_ping=True)

    db_file = _sqlite_file(parsed)
    if db_file is not None:
        db_file.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (below)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY_OPTION, False)
        connection.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")

    return engine


def alembic_config() -> Config:
    """Alembic configuration built in code: the installed package needs no ini file."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found under {MIGRATIONS_DIR}")
    return head


# --------------------------------------------------------------------------- the database


class LineageDB:
    """Lineage of runs and datasets in a SQLite or PostgreSQL database.

    Call ``upgrade()`` once at the flow entrypoint before writing. Methods open a
    short transaction each; the object holds only its engine (``close()`` to
    release connections; also a context manager).
    """

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.backend = self.url.get_backend_name()
        self._engine = create_lineage_engine(self.url)

    def __repr__(self) -> str:
        return f"LineageDB({self.url.render_as_string(hide_password=True)!r})"

    def __enter__(self) -> LineageDB:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._engine.dispose()

    # ---------------------------------------------------------------- schema

    def upgrade(self) -> None:
        """Bring an empty or older database to the head revision; safe under races."""
        config = alembic_config()
        if self.backend == "postgresql":
            with self._engine.connect() as lock_connection:
                lock_connection.execution_options(isolation_level="AUTOCOMMIT")
                lock_connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": PG_MIGRATION_LOCK_ID})
                try:
                    self._upgrade(config)
                finally:
                    lock_connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": PG_MIGRATION_LOCK_ID})
        else:
            self._upgrade(config)  # the BEGIN IMMEDIATE transaction is the lock

    def _upgrade(self, config: Config) -> None:
        with _ALEMBIC_IN_PROCESS, self._engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def revision(self) -> str | None:
        """The database's current revision (None when never migrated)."""
        with self._read() as session:
            return MigrationContext.configure(session.connection()).get_current_revision()

    def is_current(self) -> bool:
        return self.revision() == head_revision()

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with self._engine.connect() as connection:
            connection.execution_options(**{READ_ONLY_OPTION: True})
            with Session(bind=connection) as session:
                yield session

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with Session(self._engine) as session, session.begin():
            yield session

    def _insert(self, model: type) -> Any:
        """The backend's INSERT, which has ON CONFLICT on both SQLite and PostgreSQL."""
        dialect = postgresql if self.backend == "postgresql" else sqlite
        return dialect.insert(model)

    # ---------------------------------------------------------------- runs

    def start_run(
        self, kind: str, parameters: Mapping[str, Any], settings: Mapping[str, Any], code_version: str, user: str,
        process: Mapping[str, Any] | None = None,
    ) -> str:
        """Record a run as ``running`` and return its id (uuid4 hex). ``process`` says
        which process runs it (``ProcessIdentity.as_dict()``; default: this one), so a
        later run can tell when it is gone without having ended the run."""
        if not kind:
            raise ValueError("run kind must be non-empty")
        run_id = uuid.uuid4().hex
        with self._write() as session:
            session.add(
                Run(
                    id=run_id,
                    kind=kind,
                    status=RUNNING,
                    started_at=_now(),
                    finished_at=None,
                    parameters=scrub_secrets(dict(parameters)),
                    settings=scrub_secrets(dict(settings)),
                    code_version=code_version,
                    username=user,
                    summary=None,
                    error=None,
                    process=_to_json(dict(ProcessIdentity.current().as_dict() if process is None else process),
                                     scrub=False),
                )
            )
        return run_id

    def running_runs(self) -> list[dict[str, Any]]:
        """Runs still marked ``running``, with the process recorded for each (or None)."""
        with self._read() as session:
            rows = session.execute(select(Run.id, Run.kind, Run.started_at, Run.process)
                                   .where(Run.status == RUNNING).order_by(Run.started_at)).all()
            return [{"id": i, "kind": k, "started_at": t, "process": p} for i, k, t, p in rows]

    def end_abandoned_run(self, run_id: str, status: str, error: str) -> bool:
        """Close a run its process left ``running`` (it was killed or stopped before it could
        book its end) and drop the dataset claims it held. Does nothing to a run that has
        ended meanwhile; returns whether this call ended it."""
        if status not in (CANCELLED, CRASHED):
            raise ValueError(f"an abandoned run ends {CANCELLED} or {CRASHED}, not {status!r}")
        with self._write() as session:
            result = session.execute(update(Run).where(Run.id == run_id, Run.status == RUNNING)
                                     .values(status=status, finished_at=_now(), summary={},
                                             error=scrub_secrets(error)))
            session.execute(delete(DatasetClaim).where(DatasetClaim.run_id == run_id))
            return bool(result.rowcount)

    def finish_run(self, run_id: str, status: str, summary: Mapping[str, Any], error: str | None = None) -> None:
        if status not in FINAL_STATUSES:
            raise ValueError(f"final status must be one of {FINAL_STATUSES}, not {status!r}")
        with self._write() as session:
            result = session.execute(
                update(Run)
                .where(Run.id == run_id)
                .values(status=status, finished_at=_now(), summary=_to_json(dict(summary), scrub=False),
                        error=scrub_secrets(error) if error is not None else None)
            )
            if result.rowcount == 0:
                raise LookupError(f"no run {run_id!r}")

    # ---------------------------------------------------------------- datasets

    def record_dataset(
        self,
        dataset_key: str,
        stage: str,
        uri: str,
        config: Mapping[str, Any],
        parents: Sequence[str],
        counts: Mapping[str, Any],
        schema_version: str,
        code_version: str,
    ) -> None:
        """Record a dataset and its parent edges. Idempotent: the key is a content
        hash, so a second record keeps the first row and only adds a new location."""
        now = _now()
        with self._write() as session:
            session.execute(
                self._insert(Dataset)
                .values(
                    dataset_key=dataset_key,
                    stage=stage,
                    uri=uri,
                    config=_to_json(dict(config), scrub=False),
                    counts=_to_json(dict(counts), scrub=False),
                    schema_version=schema_version,
                    code_version=code_version,
                    created_at=now,
                )
                .on_conflict_do_nothing(index_elements=["dataset_key"])
            )
            edges = [
                {"dataset_key": dataset_key, "parent_key": parent, "position": position}
                for position, parent in enumerate(dict.fromkeys(parents))
            ]
            if edges:
                session.execute(self._insert(DatasetParent).values(edges).on_conflict_do_nothing())
            session.execute(
                self._insert(DatasetLocation)
                .values(dataset_key=dataset_key, uri=uri, recorded_at=now)
                .on_conflict_do_nothing()
            )

    def link_run_dataset(self, run_id: str, dataset_key: str, role: str) -> None:
        """Say that a run produced or reused a dataset (``produced`` is never downgraded)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        statement = self._insert(RunDataset).values(
            run_id=run_id, dataset_key=dataset_key, role=role, linked_at=_now()
        )
        statement = statement.on_conflict_do_update(
            index_elements=["run_id", "dataset_key"],
            set_={"role": case((statement.excluded.role == PRODUCED, PRODUCED), else_=RunDataset.__table__.c.role)},
        )
        with self._write() as session:
            session.execute(statement)

    # ---------------------------------------------------------------- stage runs

    def record_stage_run(
        self,
        run_id: str,
        stage: str,
        dataset_key: str,
        shard: int,
        started_at: datetime | float,
        finished_at: datetime | float,
        records_in: int,
        records_out: int,
        records_rejected: int,
        rejects_by_reason: Mapping[str, int],
        cached: bool,
        llm: Mapping[str, Any],
    ) -> None:
        """Record one shard of a stage in a run. Recording the same (run, dataset,
        shard) again (a task retry) replaces the earlier row."""
        llm_json = _to_json(dict(llm), scrub=False)
        values: dict[str, Any] = {
            "run_id": run_id,
            "stage": stage,
            "dataset_key": dataset_key,
            "shard": _count(shard, "shard"),
            "started_at": _utc(started_at, "started_at"),
            "finished_at": _utc(finished_at, "finished_at"),
            "records_in": _count(records_in, "records_in"),
            "records_out": _count(records_out, "records_out"),
            "records_rejected": _count(records_rejected, "records_rejected"),
            "rejects_by_reason": {str(k): _count(v, f"rejects_by_reason[{k!r}]") for k, v in rejects_by_reason.items()},
            "cached": bool(cached),
            LLM_COST: float(llm.get(LLM_COST) or 0.0),
            "llm": llm_json,
        }
        for name, column in LLM_INT_COLUMNS.items():
            values[column] = _count(int(llm.get(name) or 0), f"llm[{name!r}]")
        statement = self._insert(StageRun).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=["run_id", "dataset_key", "shard"],
            set_={name: statement.excluded[name] for name in values if name not in ("run_id", "dataset_key", "shard")},
        )
        with self._write() as session:
            session.execute(statement)

    # ---------------------------------------------------------------- claims

    def try_claim(self, store_url: str, dataset_key: str, holder: str, run_id: str | None, lease_s: float) -> str | None:
        """Claim a dataset of a store for ``holder`` (for ``lease_s`` seconds, renewable).
        Returns None when ``holder`` has it now, else the holder that has it. An
        expired claim (its holder stopped renewing it) is taken over."""
        now = _now()
        expires_at = now + timedelta(seconds=lease_s)
        where = (DatasetClaim.store_url == store_url, DatasetClaim.dataset_key == dataset_key)
        with self._write() as session:
            session.execute(delete(DatasetClaim).where(*where, DatasetClaim.expires_at < now))
            session.execute(self._insert(DatasetClaim).values(
                store_url=store_url, dataset_key=dataset_key, holder=holder, run_id=run_id, claimed_at=now,
                expires_at=expires_at).on_conflict_do_nothing())
            owner = session.scalars(select(DatasetClaim.holder).where(*where)).one()
            if owner == holder:
                session.execute(update(DatasetClaim).where(*where).values(expires_at=expires_at))
                return None
            return owner

    def renew_claims(self, holder: str, lease_s: float) -> int:
        """Push the expiry of every claim ``holder`` has; returns how many it has."""
        with self._write() as session:
            result = session.execute(update(DatasetClaim).where(DatasetClaim.holder == holder)
                                     .values(expires_at=_now() + timedelta(seconds=lease_s)))
            return int(result.rowcount or 0)

    def release_claim(self, store_url: str, dataset_key: str, holder: str) -> None:
        with self._write() as session:
            session.execute(delete(DatasetClaim).where(
                DatasetClaim.store_url == store_url, DatasetClaim.dataset_key == dataset_key,
                DatasetClaim.holder == holder))

    def drop_claims(self, holder: str) -> None:
        """Remove every claim of a holder known to be gone."""
        with self._write() as session:
            session.execute(delete(DatasetClaim).where(DatasetClaim.holder == holder))

    def claims(self) -> list[dict[str, Any]]:
        """The claims held now (expired ones included until someone takes them over)."""
        with self._read() as session:
            rows = session.scalars(select(DatasetClaim).order_by(DatasetClaim.claimed_at)).all()
            return [{"store_url": r.store_url, "dataset_key": r.dataset_key, "holder": r.holder, "run_id": r.run_id,
                     "claimed_at": r.claimed_at, "expires_at": r.expires_at} for r in rows]

    # ---------------------------------------------------------------- queries

    @staticmethod
    def _run_dict(run: Run, totals: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": run.id,
            "kind": run.kind,
            "status": run.status,
            "started_at": run.started_at,
            "finished_at": run.finished_at,
            "parameters": run.parameters,
            "code_version": run.code_version,
            "user": run.username,
            "totals": totals,
        }

    @staticmethod
    def _empty_totals() -> dict[str, Any]:
        return {
            "stage_runs": 0,
            "computed_shards": 0,
            "llm_requests": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "tokens": 0,
            "cost_usd": 0.0,
        }

    def _totals(self, session: Session, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        rows = session.execute(
            select(
                StageRun.run_id,
                func.count(StageRun.id),
                func.sum(case((StageRun.cached.is_(False), 1), else_=0)),
                func.sum(StageRun.llm_requests),
                func.sum(StageRun.prompt_tokens),
                func.sum(StageRun.completion_tokens),
                func.sum(StageRun.cost_usd),
            )
            .where(StageRun.run_id.in_(run_ids))
            .group_by(StageRun.run_id)
        ).all()
        totals = {run_id: self._empty_totals() for run_id in run_ids}
        for run_id, n, computed, requests, prompt, completion, cost in rows:
            totals[run_id] = {
                "stage_runs": int(n),
                "computed_shards": int(computed or 0),
                "llm_requests": int(requests or 0),
                "prompt_tokens": int(prompt or 0),
                "completion_tokens": int(completion or 0),
                "tokens": int(prompt or 0) + int(completion or 0),
                "cost_usd": round(float(cost or 0.0), 6),
            }
        return totals

    def list_runs(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest runs first, each with token and cost totals from its stage runs."""
        with self._read() as session:
            runs = session.scalars(select(Run).order_by(Run.started_at.desc(), Run.id.desc()).limit(limit)).all()
            totals = self._totals(session, [run.id for run in runs])
            return [self._run_dict(run, totals[run.id]) for run in runs]

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """Everything about a run: settings, summary, error, totals and its datasets."""
        with self._read() as session:
            run = session.get(Run, run_id)
            if run is None:
                return None
            out = self._run_dict(run, self._totals(session, [run_id])[run_id])
            out.update(settings=run.settings, summary=run.summary, error=run.error)
            rows = session.execute(
                select(RunDataset.dataset_key, RunDataset.role, Dataset.stage, Dataset.uri)
                .outerjoin(Dataset, Dataset.dataset_key == RunDataset.dataset_key)
                .where(RunDataset.run_id == run_id)
                .order_by(RunDataset.linked_at, RunDataset.dataset_key)
            ).all()
            out["datasets"] = [
                {"dataset_key": key, "role": role, "stage": stage, "uri": uri} for key, role, stage, uri in rows
            ]
            return out

    def runs_for_dataset(self, dataset_key: str) -> list[dict[str, Any]]:
        """Which runs produced or reused a dataset, oldest first."""
        with self._read() as session:
            rows = session.execute(
                select(Run, RunDataset.role)
                .join(RunDataset, RunDataset.run_id == Run.id)
                .where(RunDataset.dataset_key == dataset_key)
                .order_by(Run.started_at, Run.id)
            ).all()
            return [
                {
                    "run_id": run.id,
                    "kind": run.kind,
                    "status": run.status,
                    "started_at": run.started_at,
                    "finished_at": run.finished_at,
                    "role": role,
                }
                for run, role in rows
            ]

    def _parents(self, session: Session, dataset_key: str) -> list[str]:
        return list(
            session.scalars(
                select(DatasetParent.parent_key)
                .where(DatasetParent.dataset_key == dataset_key)
                .order_by(DatasetParent.position)
            )
        )

    @staticmethod
    def _dataset_dict(row: Dataset) -> dict[str, Any]:
        return {
            "dataset_key": row.dataset_key,
            "stage": row.stage,
            "uri": row.uri,
            "config": row.config,
            "counts": row.counts,
            "schema_version": row.schema_version,
            "code_version": row.code_version,
            "created_at": row.created_at,
        }

    def dataset(self, dataset_key: str) -> dict[str, Any] | None:
        """A dataset with its parents (in order) and every location it was written to."""
        with self._read() as session:
            row = session.get(Dataset, dataset_key)
            if row is None:
                return None
            out = self._dataset_dict(row)
            out["parents"] = self._parents(session, dataset_key)
            out["locations"] = list(
                session.scalars(
                    select(DatasetLocation.uri)
                    .where(DatasetLocation.dataset_key == dataset_key)
                    .order_by(DatasetLocation.recorded_at, DatasetLocation.uri)
                )
            )
            return out

    def dataset_parents(self, dataset_key: str) -> list[str]:
        with self._read() as session:
            return self._parents(session, dataset_key)

    def dataset_children(self, dataset_key: str) -> list[str]:
        """Datasets derived directly from this one (what branches share it)."""
        with self._read() as session:
            return list(
                session.scalars(
                    select(DatasetParent.dataset_key)
                    .where(DatasetParent.parent_key == dataset_key)
                    .order_by(DatasetParent.dataset_key)
                )
            )

    def datasets_for_stage(self, stage: str) -> list[dict[str, Any]]:
        """The stage's datasets, newest first."""
        with self._read() as session:
            rows = session.scalars(
                select(Dataset)
                .where(Dataset.stage == stage)
                .order_by(Dataset.created_at.desc(), Dataset.dataset_key)
            ).all()
            return [self._dataset_dict(row) for row in rows]

    def stage_computations(self, dataset_key: str) -> int:
        """How many stage runs actually computed (not skipped as cached) a shard of
        this dataset, across all runs. Equal to the shard count when every shard
        was computed exactly once: the proof that sweep branches shared it."""
        with self._read() as session:
            return int(
                session.scalar(
                    select(func.count(StageRun.id)).where(
                        StageRun.dataset_key == dataset_key, StageRun.cached.is_(False)
                    )
                )
                or 0
            )

    def stage_runs(self, run_id: str) -> list[dict[str, Any]]:
        """The run's stage runs (one per shard), in start order."""
        with self._read() as session:
            rows = session.scalars(
                select(StageRun).where(StageRun.run_id == run_id).order_by(StageRun.started_at, StageRun.id)
            ).all()
            return [
                {
                    "stage": row.stage,
                    "dataset_key": row.dataset_key,
                    "shard": row.shard,
                    "started_at": row.started_at,
                    "finished_at": row.finished_at,
                    "records_in": row.records_in,
                    "records_out": row.records_out,
                    "records_rejected": row.records_rejected,
                    "rejects_by_reason": row.rejects_by_reason,
                    "cached": row.cached,
                    "llm": row.llm,
                }
                for row in rows
            ]

    def stage_totals(self, run_id: str) -> list[dict[str, Any]]:
        """Per stage sums for a run, in the order stages started: shards (and how many
        were cached), records in/out/rejected, rejects by reason merged, LLM usage."""
        with self._read() as session:
            rows = session.scalars(
                select(StageRun).where(StageRun.run_id == run_id).order_by(StageRun.started_at, StageRun.id)
            ).all()
        stages: dict[str, dict[str, Any]] = {}
        for row in rows:
            total = stages.get(row.stage)
            if total is None:
                total = stages[row.stage] = {
                    "stage": row.stage,
                    "dataset_keys": [],
                    "shards": 0,
                    "cached_shards": 0,
                    "records_in": 0,
                    "records_out": 0,
                    "records_rejected": 0,
                    "rejects_by_reason": {},
                    "llm": {name: 0 for name in LLM_INT_COLUMNS} | {LLM_COST: 0.0, LLM_FAILURES: {}},
                    "started_at": row.started_at,
                    "finished_at": row.finished_at,
                }
            if row.dataset_key not in total["dataset_keys"]:
                total["dataset_keys"].append(row.dataset_key)
            total["shards"] += 1
            total["cached_shards"] += int(row.cached)
            total["records_in"] += row.records_in
            total["records_out"] += row.records_out
            total["records_rejected"] += row.records_rejected
            _merge_counts(total["rejects_by_reason"], row.rejects_by_reason)
            llm = total["llm"]
            for name, column in LLM_INT_COLUMNS.items():
                llm[name] += getattr(row, column)
            llm[LLM_COST] += row.cost_usd
            _merge_counts(llm[LLM_FAILURES], (row.llm or {}).get(LLM_FAILURES))
            total["started_at"] = min(total["started_at"], row.started_at)
            total["finished_at"] = max(total["finished_at"], row.finished_at)
        for total in stages.values():
            total["llm"][LLM_COST] = round(total["llm"][LLM_COST], 6)
        return list(stages.values())

    # ---------------------------------------------------------------- evaluations

    def record_eval_result(self, run_id: str, *, model: str, teacher: str, benchmark: str, benchmark_path: str,
                           benchmark_sha256: str, prompt_version: str, prompt_hash: str, samples: int,
                           scores: Mapping[str, Any]) -> None:
        """The scores of an evaluation run (one row per run; a rerun of the row replaces it)."""
        tasks = scores.get("tasks") or {}
        values = {
            "run_id": run_id, "model": model, "teacher": teacher, "benchmark": benchmark,
            "benchmark_path": benchmark_path, "benchmark_sha256": benchmark_sha256,
            "prompt_version": prompt_version, "prompt_hash": prompt_hash, "samples": _count(samples, "samples"),
            "questions": _count((tasks.get("all") or {}).get("questions", 0), "questions"),
            "pass_at_1_output": (tasks.get("output") or {}).get("pass@1"),
            "pass_at_1_input": (tasks.get("input") or {}).get("pass@1"),
            "scores": _to_json(dict(scores), scrub=False), "created_at": _now(),
        }
        statement = self._insert(EvalResult).values(**values)
        statement = statement.on_conflict_do_update(index_elements=["run_id"],
                                                    set_={k: v for k, v in values.items() if k != "run_id"})
        with self._write() as session:
            session.execute(statement)

    @staticmethod
    def _eval_dict(row: EvalResult) -> dict[str, Any]:
        return {name: getattr(row, name) for name in (
            "run_id", "model", "teacher", "benchmark", "benchmark_path", "benchmark_sha256", "prompt_version",
            "prompt_hash", "samples", "questions", "pass_at_1_output", "pass_at_1_input", "scores", "created_at")}

    def eval_result(self, run_id: str) -> dict[str, Any] | None:
        with self._read() as session:
            row = session.get(EvalResult, run_id)
            return None if row is None else self._eval_dict(row)

    def eval_results(self, model: str | None = None, benchmark_sha256: str | None = None,
                     limit: int = 20) -> list[dict[str, Any]]:
        """Evaluation results, newest first, optionally of one model or benchmark file."""
        query = select(EvalResult)
        if model is not None:
            query = query.where(EvalResult.model == model)
        if benchmark_sha256 is not None:
            query = query.where(EvalResult.benchmark_sha256 == benchmark_sha256)
        with self._read() as session:
            rows = session.scalars(query.order_by(EvalResult.created_at.desc(), EvalResult.run_id).limit(limit)).all()
            return [self._eval_dict(row) for row in rows]
