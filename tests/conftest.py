"""Shared fixtures: the Prefect test harness, paths to ../shared, PostgreSQL."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
TOY = SHARED / "data" / "codeio-toy"
TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def needs_toy():
    return pytest.mark.skipif(not TOY.is_dir(), reason=f"the authors' toy data is not at {TOY} (../shared absent)")


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect API for the whole session (starting one costs seconds)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A private store and SQLite lineage; shards run on threads of this process;
    no LLM endpoint or key leaks in from the developer's environment."""
    monkeypatch.setenv("CODEIO_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("CODEIO_DATABASE_URL", f"sqlite:///{tmp_path / 'lineage.db'}")
    monkeypatch.setenv("CODEIO_DASK_WORKERS", "0")
    for name in ("CODEIO_LLM_BASE_URL", "CODEIO_LLM_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def pg_database():
    """A fresh PostgreSQL database at 127.0.0.1:5432 for one test, dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    name = f"codeio_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is not reachable: {error}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
