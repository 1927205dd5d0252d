"""infra/stack.sh: the local production-like stack comes up on free loopback
ports, every endpoint answers, the pipeline runs through the printed settings
(S3 store, PostgreSQL lineage, Dask workers, Prefect server with results on
S3), and ``down`` leaves nothing running."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest
from conftest import PG_ADMIN_URL, ROOT, TOY
from s3_server import free_port

STACK = ROOT / "infra" / "stack.sh"
UP_TIMEOUT_S = 180
RUN_TIMEOUT_S = 240
EXPECTED = {"CODEIO_STORE", "CODEIO_S3_ENDPOINT_URL", "CODEIO_S3_REGION", "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY", "CODEIO_DATABASE_URL", "CODEIO_DASK_ADDRESS", "PREFECT_API_URL",
            "PREFECT_RESULTS_PERSIST_BY_DEFAULT", "PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK"}


def parse_exports(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, value = words[1].split("=", 1)
            values[name] = value
    return values


def stack(command: str, env: dict[str, str], timeout: float = UP_TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run([str(STACK), command], env=env, capture_output=True, text=True, timeout=timeout)


def alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie nobody reaped yet."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def group_members(pgid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def stack_env(tmp_path):
    psycopg = pytest.importorskip("psycopg")
    try:
        psycopg.connect(PG_ADMIN_URL, connect_timeout=5).close()
    except psycopg.OperationalError as error:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is not reachable: {error}")
    database = f"codeio_stack_{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CODEIO_", "AWS_", "PREFECT_API_URL", "PREFECT_RESULTS"))}
    env.update({
        "CODEIO_STACK_DIR": str(tmp_path / "stack"),
        "CODEIO_STACK_S3_PORT": str(free_port()), "CODEIO_STACK_PREFECT_PORT": str(free_port()),
        "CODEIO_STACK_DASK_PORT": str(free_port()), "CODEIO_STACK_DASHBOARD_PORT": str(free_port()),
        "CODEIO_STACK_DATABASE": database,
    })
    try:
        yield env
    finally:
        stack("down", env)  # whatever happened above
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@pytest.mark.slow
def test_stack_up_serves_a_pipeline_run_and_down_stops_everything(stack_env, tmp_path):
    up = stack("up", stack_env)
    assert up.returncode == 0, up.stderr
    exports = parse_exports(up.stdout)
    assert EXPECTED <= set(exports), up.stdout
    state = json.loads((tmp_path / "stack" / "stack.json").read_text())
    pids = [service["pid"] for service in state["services"]]
    assert {s["name"] for s in state["services"]} == {"s3", "prefect", "dask-scheduler", "dask-workers"}
    assert state["postgres"] == "reused" and all(alive(pid) for pid in pids)

    # each endpoint answers
    import boto3
    import psycopg
    from distributed import Client

    bucket = exports["CODEIO_STORE"].removeprefix("s3://").split("/")[0]
    s3 = boto3.client("s3", endpoint_url=exports["CODEIO_S3_ENDPOINT_URL"], region_name=exports["CODEIO_S3_REGION"],
                      aws_access_key_id=exports["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=exports["AWS_SECRET_ACCESS_KEY"])
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    with urllib.request.urlopen(f"{exports['PREFECT_API_URL']}/health", timeout=10) as response:
        assert response.status == 200
    dashboard = f"http://127.0.0.1:{stack_env['CODEIO_STACK_DASHBOARD_PORT']}"
    with urllib.request.urlopen(f"{dashboard}/status", timeout=10) as response:
        assert response.status == 200
    with Client(exports["CODEIO_DASK_ADDRESS"], timeout=30) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        # no every-10-ms stack sampler in the workers (it takes CPU from the sandbox)
        profiler = client.run(lambda: __import__("dask").config.get("distributed.worker.profile.enabled"))
        assert set(profiler.values()) == {False}
    with psycopg.connect(exports["CODEIO_DATABASE_URL"].replace("+psycopg", ""), connect_timeout=5) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == stack_env["CODEIO_STACK_DATABASE"]

    # `env` repeats the settings; a second `up` starts nothing new
    assert parse_exports(stack("env", stack_env).stdout) == exports
    again = stack("up", stack_env)
    assert again.returncode == 0 and parse_exports(again.stdout) == exports
    assert [s["pid"] for s in json.loads((tmp_path / "stack" / "stack.json").read_text())["services"]] == pids

    # the pipeline through exactly the printed settings, as a user's shell would run it
    run_env = dict(stack_env, **exports)
    work = tmp_path / "work"
    work.mkdir()
    codeio = Path(sys.executable).with_name("codeio")
    # the authors' toy data when present (4 functions), else the shipped sample corpus
    source = ["--source", f"unified:{TOY / 'unified_with_ios.jsonl'}", "--limit", "4"] if TOY.is_dir() else []
    run = subprocess.run([str(codeio), "run", *source, "--out", "out.jsonl"],
                         cwd=work, env=run_env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = (work / "out.jsonl").read_text().splitlines()
    assert rows
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", ())]
    assert any(k.startswith("store/datasets/assemble/") for k in keys)
    assert any(k.startswith("store/cache/exec/") for k in keys)
    assert any(k.startswith("prefect-results/") for k in keys)  # Prefect's persisted results on S3
    with psycopg.connect(exports["CODEIO_DATABASE_URL"].replace("+psycopg", "")) as conn:
        assert conn.execute("SELECT status FROM runs").fetchall() == [("completed",)]
    assert not (work / ".codeio").exists()  # nothing fell back to the embedded defaults

    # down stops every process it started (and their children), frees the ports
    down = stack("down", stack_env)
    assert down.returncode == 0, down.stderr
    assert not any(alive(pid) for pid in pids)
    assert not any(group_members(pid) for pid in pids)
    ports = [int(stack_env[f"CODEIO_STACK_{name}_PORT"]) for name in ("S3", "PREFECT", "DASK", "DASHBOARD")]
    assert not any(port_open(port) for port in ports)
    assert not (tmp_path / "stack" / "stack.json").exists()
    assert stack("status", stack_env).returncode == 1


def load_stack_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("codeio_infra_stack", ROOT / "infra" / "stack.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_private_postgres_when_none_is_running():
    """No server on the port: `up` initializes a private cluster as the postgres
    user and `down` stops it (the other services are covered above)."""
    import shutil
    import tempfile

    import psycopg

    stack_module = load_stack_module()
    try:
        stack_module.pg_bin("initdb")
    except stack_module.StackError as error:
        pytest.skip(str(error))
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser")
    # the postgres user must reach the state directory: not under pytest's 0700 tmp
    state = Path(tempfile.mkdtemp(prefix="codeio-stack-", dir="/tmp"))
    try:
        stack = stack_module.Stack(state_dir=str(state), s3_port=0, prefect_port=0, dask_port=0, dashboard_port=0,
                                   pg_port=free_port(), workers=0, bucket="b", database="codeio", region="r",
                                   access_key="k", secret_key="s")
        stack_module.start_postgres(stack)
        (service,) = stack.services
        assert stack.postgres == "private" and alive(service.pid)
        with psycopg.connect(stack.database_url.replace("+psycopg", ""), connect_timeout=5) as conn:
            assert conn.execute("SELECT current_database()").fetchone()[0] == "codeio"
        stack_module.stop(stack)
        assert not alive(service.pid) and not port_open(stack.pg_port)
    finally:
        shutil.rmtree(state, ignore_errors=True)
