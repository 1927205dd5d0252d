"""Lineage database on both backends: a SQLite file in a temporary folder and the
PostgreSQL server at 127.0.0.1:5432 (a fresh database per test, all dropped at
the end of the session)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from psycopg import sql
from sqlalchemy import inspect, text

from codeio.settings import Settings
from storage.lineage import (
    REDACTED,
    LineageDB,
    alembic_config,
    create_lineage_engine,
    head_revision,
    normalize_url,
    scrub_secrets,
)
from storage.models import Base

REPO_ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
TABLES = {"runs", "datasets", "dataset_parents", "dataset_locations", "run_datasets", "stage_runs", "dataset_claims",
          "alembic_version"}
RACERS = 4
RACE_TIMEOUT_S = 120

# A process that upgrades and writes as soon as the test says go (all racers are
# imported and waiting by then, so the upgrades really overlap).
RACER = """
import sys, time
from pathlib import Path
from storage.lineage import LineageDB
url, ready, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
db = LineageDB(url)
ready.touch()
deadline = time.monotonic() + 60
while not go.exists():
    if time.monotonic() > deadline:
        sys.exit("no go signal")
    time.sleep(0.002)
db.upgrade()
db.start_run("race", {}, {}, "test", "racer")
db.close()
"""

LLM_ZERO = {"requests": 0, "cached": 0, "failed": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0, "retries": 0}


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[Callable[[], str]]:
    """Makes fresh PostgreSQL databases; drops them all when the session ends."""
    try:
        admin = psycopg.connect(PG_ADMIN_DSN, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is unreachable ({exc}); start it with "
                    "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`")
    created: list[str] = []

    def make() -> str:
        name = f"codeio_test_{uuid.uuid4().hex[:12]}"
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append(name)
        return PG_URL.format(name=name)

    yield make
    for name in created:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    admin.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], str]:
    """A factory of URLs of empty databases on the parametrized backend."""
    if request.param == "sqlite":
        counter = itertools.count()
        # a nested folder that does not exist yet: LineageDB must create it
        return lambda: f"sqlite:///{tmp_path}/db{next(counter)}/nested/lineage.db"
    return request.getfixturevalue("postgres_databases")


@pytest.fixture
def db(fresh_url: Callable[[], str]) -> Iterator[LineageDB]:
    lineage = LineageDB(fresh_url())
    lineage.upgrade()
    yield lineage
    lineage.close()


def _tables(url: str) -> set[str]:
    engine = create_lineage_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _llm(**counts: float) -> dict[str, float]:
    return LLM_ZERO | counts


# ------------------------------------------------------------------ migrations


def test_upgrade_from_empty_matches_models(fresh_url: Callable[[], str]) -> None:
    url = fresh_url()
    with LineageDB(url) as db:
        assert db.revision() is None
        db.upgrade()
        assert db.revision() == head_revision()
        assert db.is_current()
    assert TABLES <= _tables(url)
    # the migrations and the typed models describe the same schema
    engine = create_lineage_engine(url)
    try:
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    finally:
        engine.dispose()


def test_upgrade_is_idempotent_and_keeps_data(fresh_url: Callable[[], str]) -> None:
    url = fresh_url()
    with LineageDB(url) as db:
        db.upgrade()
        run_id = db.start_run("pipeline", {"revision_rounds": 1}, {}, "v1", "alice")
        db.upgrade()
        db.upgrade()
        assert db.revision() == head_revision()
        assert [run["id"] for run in db.list_runs()] == [run_id]


def test_upgrade_from_older_revision(fresh_url: Callable[[], str]) -> None:
    url = fresh_url()
    with LineageDB(url) as db:
        db.upgrade()
        engine = create_lineage_engine(url)
        try:
            with engine.begin() as connection:
                config = alembic_config()
                config.attributes["connection"] = connection
                command.downgrade(config, "base")
        finally:
            engine.dispose()
        assert db.revision() is None
        assert _tables(url) == {"alembic_version"}
        db.upgrade()
        assert db.revision() == head_revision()
    assert TABLES <= _tables(url)


def test_concurrent_upgrade_processes(fresh_url: Callable[[], str], tmp_path: Path) -> None:
    url = fresh_url()
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{i}" for i in range(RACERS)]
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, url, str(flag), str(go)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for flag in ready
    ]
    try:
        deadline = time.monotonic() + RACE_TIMEOUT_S
        while not all(flag.exists() for flag in ready) and time.monotonic() < deadline:
            if any(racer.poll() is not None for racer in racers):
                break
            time.sleep(0.01)
        go.touch()
        results = [(racer.wait(timeout=RACE_TIMEOUT_S), racer.stderr.read()) for racer in racers]  # type: ignore[union-attr]
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
                racer.wait()
            for stream in (racer.stdout, racer.stderr):
                if stream is not None:
                    stream.close()
    assert [code for code, _ in results] == [0] * RACERS, "\n".join(err for _, err in results)
    with LineageDB(url) as db:
        assert db.revision() == head_revision()
        assert len(db.list_runs()) == RACERS


def test_concurrent_upgrade_threads(fresh_url: Callable[[], str]) -> None:
    url = fresh_url()
    barrier = threading.Barrier(RACERS)
    errors: list[BaseException] = []
    run_ids: list[str] = []

    def race() -> None:
        with LineageDB(url) as db:
            try:
                barrier.wait(timeout=30)
                db.upgrade()
                run_ids.append(db.start_run("race", {}, {}, "test", "thread"))
            except Exception as exc:  # collected and re-raised in the test thread
                errors.append(exc)

    threads = [threading.Thread(target=race) for _ in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=RACE_TIMEOUT_S)
    assert errors == []
    with LineageDB(url) as db:
        assert db.revision() == head_revision()
        assert sorted(run["id"] for run in db.list_runs()) == sorted(run_ids)


# ------------------------------------------------------------------ runs


def test_run_lifecycle(db: LineageDB) -> None:
    first = db.start_run("pipeline", {"revision_rounds": 1, "sources": ["unified:x.jsonl"]}, {"llm_model": "m"}, "v1", "alice")
    assert len(first) == 32 and int(first, 16) >= 0
    run = db.get_run(first)
    assert run is not None
    assert run["status"] == "running" and run["finished_at"] is None
    assert run["started_at"].tzinfo is not None and run["started_at"].utcoffset() == timedelta(0)
    assert abs(run["started_at"] - datetime.now(UTC)) < timedelta(minutes=5)
    assert run["parameters"] == {"revision_rounds": 1, "sources": ["unified:x.jsonl"]}
    assert run["settings"] == {"llm_model": "m"}
    assert (run["kind"], run["code_version"], run["user"]) == ("pipeline", "v1", "alice")

    db.finish_run(first, "completed", {"samples": 12, "pass_rate": {"1": 0.5}})
    second = db.start_run("sweep", {}, {}, "v1", "bob")
    db.finish_run(second, "failed", {}, error="Traceback: boom")

    done = db.get_run(first)
    assert done is not None
    assert done["status"] == "completed" and done["summary"] == {"samples": 12, "pass_rate": {"1": 0.5}}
    assert done["finished_at"] >= done["started_at"]
    failed = db.get_run(second)
    assert failed is not None and failed["status"] == "failed" and failed["error"] == "Traceback: boom"

    runs = db.list_runs()
    assert [r["id"] for r in runs] == [second, first]  # newest first
    assert set(runs[0]) >= {"id", "kind", "status", "started_at", "finished_at", "parameters", "totals"}
    assert runs[1]["totals"]["tokens"] == 0 and runs[1]["totals"]["cost_usd"] == 0.0
    assert [r["id"] for r in db.list_runs(limit=1)] == [second]

    assert db.get_run("0" * 32) is None
    with pytest.raises(ValueError):
        db.finish_run(first, "done", {})
    with pytest.raises(LookupError):
        db.finish_run("0" * 32, "completed", {})
    with pytest.raises(ValueError):
        db.start_run("", {}, {}, "v1", "alice")


# ------------------------------------------------------------------ datasets


def test_datasets_parents_links_and_idempotence(db: LineageDB) -> None:
    run_a = db.start_run("pipeline", {"revision_rounds": 1}, {}, "v1", "alice")
    run_b = db.start_run("pipeline", {"revision_rounds": 0}, {}, "v1", "alice")
    db.record_dataset("ing1", "ingest", "/store/datasets/ingest/ing1", {"limit": 5}, [], {"rows": 5}, "1", "c1")
    db.record_dataset("ing2", "ingest", "/store/datasets/ingest/ing2", {"limit": 9}, [], {"rows": 9}, "1", "c1")
    db.record_dataset("io1", "collect_io", "/store/datasets/collect_io/io1", {"k": 3}, ["ing2", "ing1"], {"rows": 4}, "1", "c1")
    # the same key again (a rerun; and the same dataset written to another store)
    db.record_dataset("io1", "collect_io", "/store/datasets/collect_io/io1", {"k": 3}, ["ing2", "ing1"], {"rows": 4}, "1", "c1")
    db.record_dataset("io1", "collect_io", "s3://bucket/datasets/collect_io/io1", {"k": 3}, ["ing2", "ing1"], {"rows": 4}, "1", "c1")

    io1 = db.dataset("io1")
    assert io1 is not None
    assert io1["stage"] == "collect_io" and io1["config"] == {"k": 3} and io1["counts"] == {"rows": 4}
    assert io1["uri"] == "/store/datasets/collect_io/io1"
    assert io1["locations"] == ["/store/datasets/collect_io/io1", "s3://bucket/datasets/collect_io/io1"]
    assert io1["parents"] == ["ing2", "ing1"]  # order kept
    assert io1["created_at"].tzinfo is not None
    assert db.dataset_parents("io1") == ["ing2", "ing1"]
    assert db.dataset_parents("ing1") == []
    assert db.dataset_children("ing1") == ["io1"]
    assert db.dataset("nope") is None

    assert [d["dataset_key"] for d in db.datasets_for_stage("ingest")] == ["ing2", "ing1"]  # newest first
    assert [d["dataset_key"] for d in db.datasets_for_stage("collect_io")] == ["io1"]
    assert db.datasets_for_stage("export") == []

    db.link_run_dataset(run_a, "io1", "produced")
    db.link_run_dataset(run_b, "io1", "reused")
    db.link_run_dataset(run_a, "io1", "reused")  # produced is never downgraded
    db.link_run_dataset(run_b, "io1", "produced")  # but reused can be upgraded
    db.link_run_dataset(run_b, "io1", "produced")
    roles = {r["run_id"]: r["role"] for r in db.runs_for_dataset("io1")}
    assert roles == {run_a: "produced", run_b: "produced"}
    db.link_run_dataset(run_b, "ing1", "reused")
    assert [(r["run_id"], r["role"]) for r in db.runs_for_dataset("ing1")] == [(run_b, "reused")]
    assert db.runs_for_dataset("ing2") == []
    run = db.get_run(run_b)
    assert run is not None
    assert [(d["dataset_key"], d["role"], d["stage"]) for d in run["datasets"]] == [
        ("io1", "produced", "collect_io"),
        ("ing1", "reused", "ingest"),
    ]
    with pytest.raises(ValueError):
        db.link_run_dataset(run_a, "io1", "consumed")


# ------------------------------------------------------------------ stage runs


def test_stage_totals_and_shared_computation(db: LineageDB) -> None:
    t0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    first = db.start_run("sweep-branch", {"revision_rounds": 1}, {}, "v1", "alice")
    second = db.start_run("sweep-branch", {"revision_rounds": 0}, {}, "v1", "alice")

    # first branch computes both shards of the shared collect_io dataset and synthesizes
    for shard in (0, 1):
        db.record_stage_run(
            first, "collect_io", "io1", shard, t0 + timedelta(seconds=shard), t0 + timedelta(seconds=shard + 1),
            10, 7, 3, {"nondeterministic": 1, "too_large": 2}, False, LLM_ZERO,
        )
    db.record_stage_run(
        first, "synthesize", "syn1", 0, t0 + timedelta(seconds=5), t0 + timedelta(seconds=9), 14, 13, 1,
        {"llm_failed": 1}, False,
        _llm(requests=14, failed=1, prompt_tokens=1000, completion_tokens=400, cost_usd=0.25, retries=2,
             failures_by_reason={"finish_reason=length": 1}),
    )
    db.record_stage_run(
        first, "synthesize", "syn1", 1,
        (t0 + timedelta(seconds=6)).timestamp(), (t0 + timedelta(seconds=8)).timestamp(),  # epoch seconds too
        6, 6, 0, {}, False, _llm(requests=6, cached=2, prompt_tokens=500, completion_tokens=100, cost_usd=0.05),
    )
    # a retried shard replaces its earlier record instead of double counting
    db.record_stage_run(
        first, "synthesize", "syn1", 1, t0 + timedelta(seconds=6), t0 + timedelta(seconds=8),
        6, 5, 1, {"empty": 1}, False, _llm(requests=6, cached=2, prompt_tokens=500, completion_tokens=100, cost_usd=0.05),
    )
    # the second branch finds the shared shards done and skips them
    for shard in (0, 1):
        db.record_stage_run(
            second, "collect_io", "io1", shard, t0 + timedelta(seconds=20), t0 + timedelta(seconds=20),
            10, 7, 3, {"nondeterministic": 1, "too_large": 2}, True, LLM_ZERO,
        )

    totals = db.stage_totals(first)
    assert [t["stage"] for t in totals] == ["collect_io", "synthesize"]  # in start order
    collect, synth = totals
    assert (collect["shards"], collect["cached_shards"]) == (2, 0)
    assert (collect["records_in"], collect["records_out"], collect["records_rejected"]) == (20, 14, 6)
    assert collect["rejects_by_reason"] == {"nondeterministic": 2, "too_large": 4}
    assert collect["dataset_keys"] == ["io1"]
    assert (synth["records_in"], synth["records_out"], synth["records_rejected"]) == (20, 18, 2)
    assert synth["rejects_by_reason"] == {"llm_failed": 1, "empty": 1}
    assert synth["llm"] == {
        "requests": 20, "cached": 2, "failed": 1, "prompt_tokens": 1500, "completion_tokens": 500,
        "cost_usd": 0.3, "retries": 2, "failures_by_reason": {"finish_reason=length": 1},
    }
    assert synth["started_at"] == t0 + timedelta(seconds=5) and synth["finished_at"] == t0 + timedelta(seconds=9)

    skipped = db.stage_totals(second)
    assert [(t["stage"], t["shards"], t["cached_shards"]) for t in skipped] == [("collect_io", 2, 2)]
    assert db.stage_totals("0" * 32) == []

    # the shared stage was computed once per shard across both branches
    assert db.stage_computations("io1") == 2
    assert db.stage_computations("syn1") == 2
    assert db.stage_computations("unknown") == 0

    by_id = {run["id"]: run["totals"] for run in db.list_runs()}
    assert by_id[first]["prompt_tokens"] == 1500 and by_id[first]["completion_tokens"] == 500
    assert by_id[first]["tokens"] == 2000 and by_id[first]["cost_usd"] == pytest.approx(0.3)
    assert by_id[first]["llm_requests"] == 20 and by_id[first]["stage_runs"] == 4
    assert by_id[second]["tokens"] == 0 and by_id[second]["computed_shards"] == 0

    shards = db.stage_runs(first)
    assert len(shards) == 4 and all(s["started_at"].tzinfo is not None for s in shards)

    with pytest.raises(ValueError):  # naive timestamps have no zone to trust
        db.record_stage_run(first, "verify", "v1", 0, datetime(2026, 1, 1), t0, 1, 1, 0, {}, False, LLM_ZERO)
    with pytest.raises(ValueError):
        db.record_stage_run(first, "verify", "v1", 0, t0, t0, -1, 1, 0, {}, False, LLM_ZERO)


# ------------------------------------------------------------------ secrets


def test_scrub_secrets_unit() -> None:
    scrubbed = scrub_secrets(
        {
            "llm_api_key": "sk-live-123",
            "OPENAI_API_KEY": "sk-live-123",
            "s3_secret": "hunter2",
            "db_password": "pw",
            "hf_token": "hf_abc",
            "unset_key": None,
            "llm_max_tokens": 4096,
            "llm_tokens_per_minute": 90000.0,
            "prompt_tokens": 12,
            "completion_tokens": 3,
            "storage_options": {"key": "AKIA", "secret": "s3cr3t", "client_kwargs": {"region_name": "eu"}},
            "clients": [{"token": "t0k3n", "name": "a"}],
            "database_url": "postgresql+psycopg://codeio:topsecret@db:5432/lineage",
            "ratio": float("nan"),
            "tuple": (1, 2),
        }
    )
    assert scrubbed == {
        "llm_api_key": REDACTED,
        "OPENAI_API_KEY": REDACTED,
        "s3_secret": REDACTED,
        "db_password": REDACTED,
        "hf_token": REDACTED,
        "unset_key": None,
        "llm_max_tokens": 4096,
        "llm_tokens_per_minute": 90000.0,
        "prompt_tokens": 12,
        "completion_tokens": 3,
        "storage_options": {"key": REDACTED, "secret": REDACTED, "client_kwargs": {"region_name": "eu"}},
        "clients": [{"token": REDACTED, "name": "a"}],
        "database_url": f"postgresql+psycopg://codeio:{REDACTED}@db:5432/lineage",
        "ratio": None,
        "tuple": [1, 2],
    }


def test_secrets_never_reach_the_database(db: LineageDB) -> None:
    settings = Settings(
        llm_api_key="sk-real-secret",
        s3_key="AKIAREALKEY",
        s3_secret="real-s3-secret",
        storage_options={"key": "AKIAREALKEY", "secret": "real-s3-secret", "anon": False},
    )
    public = settings.public_dump()
    public["storage_options"] = settings.storage_options  # a careless caller: raw fsspec credentials
    run_id = db.start_run(
        "pipeline",
        {"limit": 5, "llm_api_key": "sk-real-secret", "max_tokens": 4096, "teacher": {"auth_token": "tok-real"}},
        public,
        "v1",
        "alice",
    )
    db.finish_run(run_id, "completed", {"prompt_tokens": 10, "completion_tokens": 2})
    run = db.get_run(run_id)
    assert run is not None
    assert run["settings"]["llm_api_key"] == REDACTED
    assert run["settings"]["s3_key"] == REDACTED and run["settings"]["s3_secret"] == REDACTED
    assert run["settings"]["storage_options"] == {"key": REDACTED, "secret": REDACTED, "anon": False}
    assert run["settings"]["llm_max_tokens"] == 4096
    assert run["settings"]["llm_tokens_per_minute"] is None
    assert run["parameters"] == {"limit": 5, "llm_api_key": REDACTED, "max_tokens": 4096, "teacher": {"auth_token": REDACTED}}
    assert run["summary"] == {"prompt_tokens": 10, "completion_tokens": 2}

    engine = create_lineage_engine(db.url)
    try:
        with engine.connect() as connection:
            stored = repr(connection.execute(text("SELECT parameters, settings, summary FROM runs")).all())
    finally:
        engine.dispose()
    for secret in ("sk-real-secret", "AKIAREALKEY", "real-s3-secret", "tok-real"):
        assert secret not in stored


# ------------------------------------------------------------------ urls


def test_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert normalize_url("postgresql://postgres@127.0.0.1/x").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://postgres@127.0.0.1/x").drivername == "postgresql+psycopg"
    with pytest.raises(ValueError):
        normalize_url("mysql+pymysql://root@127.0.0.1/x")
    # the default relative URL creates its folder next to the working directory
    monkeypatch.chdir(tmp_path)
    with LineageDB("sqlite:///./.codeio/lineage.db") as db:
        db.upgrade()
    assert (tmp_path / ".codeio" / "lineage.db").is_file()
    assert "topsecret" not in repr(LineageDB("postgresql+psycopg://u:topsecret@127.0.0.1/x"))


# ------------------------------------------------------------------ claims


def test_dataset_claims_across_holders(db: LineageDB) -> None:
    """First come holds a dataset; others see who; release or expiry lets the next in."""
    store, key = "s3://bucket/codeio", "collect_io-abc"
    assert db.try_claim(store, key, "run-a", "a" * 32, lease_s=60) is None
    assert db.try_claim(store, key, "run-b", None, lease_s=60) == "run-a"
    assert db.try_claim(store, key, "run-a", "a" * 32, lease_s=60) is None  # its own claim: renewed
    assert db.try_claim("file:///elsewhere", key, "run-b", None, lease_s=60) is None  # another store: free
    assert db.renew_claims("run-a", lease_s=60) == 1 and db.renew_claims("nobody", lease_s=60) == 0
    db.release_claim(store, key, "run-b")  # not its claim: no effect
    assert db.try_claim(store, key, "run-b", None, lease_s=60) == "run-a"
    db.release_claim(store, key, "run-a")
    assert db.try_claim(store, key, "run-b", None, lease_s=0.2) is None
    # run-b stops renewing (a crash): once its lease is over the claim is taken over
    assert db.try_claim(store, key, "run-c", None, lease_s=60) == "run-b"
    time.sleep(0.3)
    assert db.try_claim(store, key, "run-c", None, lease_s=60) is None
    assert [(c["store_url"], c["holder"]) for c in db.claims()] == [("file:///elsewhere", "run-b"), (store, "run-c")]


def test_one_of_many_concurrent_claimers_wins(db: LineageDB) -> None:
    """Threads (each its own holder, its own transaction) race for one key: exactly one wins."""
    from concurrent.futures import ThreadPoolExecutor

    def claim(holder: str) -> str | None:
        return db.try_claim("file:///s", "k", holder, None, lease_s=60)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(claim, [f"h{i}" for i in range(16)]))
    winners = [f"h{i}" for i, owner in enumerate(results) if owner is None]
    assert len(winners) == 1
    assert all(owner == winners[0] for owner in results if owner is not None)
