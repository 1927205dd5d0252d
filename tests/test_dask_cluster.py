"""The pipeline on a real Dask cluster: a ``dask scheduler`` and two ``dask worker``
processes started here (the way any deployment runs them: Kubernetes, Slurm,
a VM), and once on the default LocalCluster. The samples equal a run on the
flow process' own threads; the shard tasks run in the worker processes, each
with its own sandbox pool; the dashboard answers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
from conftest import TOY, needs_toy
from s3_server import TEST_KEY, TEST_SECRET, free_port, moto_s3  # noqa: F401 - the fixture

from codeio.settings import load_settings

HOST = "127.0.0.1"
DASK = Path(sys.executable).with_name("dask")
WORKER_PROCESSES = 2
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
SHARD_SIZE = 4  # 8 functions -> 2 shards per stage, so both workers can get work
LIMIT = 8
SANDBOX_SERVER = "codeio.sandbox.server"


@dataclass
class DaskCluster:
    address: str
    dashboard: str
    workdir: Path
    procs: list[subprocess.Popen]

    def stop(self) -> None:
        """Workers first, then the scheduler (idempotent)."""
        for proc in reversed(self.procs):
            _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    """Terminate a process group we started (the worker CLI runs nannies and workers)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(STOP_TIMEOUT_S)


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory) -> Iterator[DaskCluster]:
    if not DASK.exists():
        pytest.skip(f"{DASK} is not installed")
    from distributed import Client

    workdir = tmp_path_factory.mktemp("dask-workers")  # the workers' cwd: not the flow's
    port, dashboard_port = free_port(), free_port()
    address = f"tcp://{HOST}:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CODEIO_", "AWS_"))}
    env["DASK_TEMPORARY_DIRECTORY"] = str(workdir / "scratch")
    logs = [open(workdir / name, "wb") for name in ("scheduler.log", "worker.log")]  # noqa: SIM115
    cluster = DaskCluster(address, f"http://{HOST}:{dashboard_port}", workdir, [])
    try:
        cluster.procs.append(subprocess.Popen(
            [str(DASK), "scheduler", "--host", HOST, "--port", str(port),
             "--dashboard-address", f"{HOST}:{dashboard_port}"],
            cwd=workdir, env=env, stdout=logs[0], stderr=subprocess.STDOUT, start_new_session=True))
        cluster.procs.append(subprocess.Popen(
            [str(DASK), "worker", address, "--nworkers", str(WORKER_PROCESSES), "--nthreads", "1",
             "--memory-limit", "2GiB", "--host", HOST, "--local-directory", str(workdir / "scratch")],
            cwd=workdir, env=env, stdout=logs[1], stderr=subprocess.STDOUT, start_new_session=True))
        with Client(address, timeout=START_TIMEOUT_S) as client:
            client.wait_for_workers(WORKER_PROCESSES, timeout=START_TIMEOUT_S)
        yield cluster
    finally:
        cluster.stop()
        for log in logs:
            log.close()


def worker_state(address: str) -> dict[str, dict]:
    """Per worker process: its pid, cwd and which per-process resources it built."""
    from distributed import Client

    def probe() -> dict:
        from tasks import resources

        return {"pid": os.getpid(), "cwd": os.getcwd(),
                "resources": sorted({kind for kind, _ in resources._resources})}

    with Client(address, timeout=START_TIMEOUT_S) as client:
        return client.run(probe)


def sandbox_server_parents() -> dict[int, int]:
    """Running sandbox fork servers: pid -> the pid of the process whose pool started it."""
    found: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if SANDBOX_SERVER.encode() in argv and argv[-1 if argv[-1] else -2].startswith(b"{"):
            config = json.loads(argv[-1 if argv[-1] else -2])
            found[int(entry.name)] = int(config["parent_pid"])
    return found


def run_in_flow(out: Path, sources: list[str]) -> dict:
    from prefect import flow

    from flows.pipeline import run_pipeline
    from flows.spec import RunSpec

    @flow(name="codeio-dask-test")
    def wrapper() -> dict:
        return run_pipeline(load_settings(), RunSpec(sources=tuple(sources), limit=LIMIT, out=str(out)),
                            progress=False)

    return wrapper()


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def clear_codeio_env(patch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CODEIO_") or name == "OPENAI_API_KEY":
            patch.delenv(name)
    patch.setenv("CODEIO_SHARD_SIZE", str(SHARD_SIZE))


@pytest.fixture
def base_env(monkeypatch, tmp_path):
    clear_codeio_env(monkeypatch)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def toy_sources() -> list[str]:
    return [f"unified:{TOY / 'unified_with_ios.jsonl'}"]


@pytest.fixture(scope="module")
def local_rows(prefect_harness, toy_sources, tmp_path_factory) -> list[dict]:
    """The reference, computed once: the same input on the flow process' own threads."""
    if not TOY.is_dir():
        pytest.skip(f"the authors' toy data is not at {TOY}")
    where = tmp_path_factory.mktemp("local-run")
    with pytest.MonkeyPatch.context() as patch:
        clear_codeio_env(patch)
        patch.setenv("CODEIO_DASK_WORKERS", "0")
        patch.setenv("CODEIO_STORE", str(where / "store"))
        patch.setenv("CODEIO_DATABASE_URL", f"sqlite:///{where / 'lineage.db'}")
        summary = run_in_flow(where / "local.jsonl", toy_sources)
    rows = read_rows(where / "local.jsonl")
    assert summary["samples"] == len(rows) > 0
    return rows


@pytest.mark.slow
@needs_toy()
def test_pipeline_on_a_dask_scheduler_with_two_worker_processes(dask_cluster, moto_s3, local_rows, base_env,
                                                               toy_sources, monkeypatch):
    """Workers share nothing with the flow process but the scheduler and the
    store: an S3 bucket whose credentials travel in the store spec (the workers'
    environment has no CODEIO_* or AWS_* variables)."""
    before = worker_state(dask_cluster.address)
    assert len(before) == WORKER_PROCESSES
    assert all(info["pid"] != os.getpid() and info["cwd"] != os.getcwd() for info in before.values())

    bucket = moto_s3.create_bucket()
    for name, value in moto_s3.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CODEIO_STORE", f"s3://{bucket}/dask")
    monkeypatch.setenv("CODEIO_DATABASE_URL", f"sqlite:///{base_env / 'dask.db'}")
    monkeypatch.setenv("CODEIO_DASK_ADDRESS", dask_cluster.address)
    summary = run_in_flow(base_env / "dask.jsonl", toy_sources)

    assert read_rows(base_env / "dask.jsonl") == local_rows
    assert summary["samples"] == len(local_rows)
    assert any(key.startswith("dask/datasets/assemble/") for key in moto_s3.keys(bucket))
    computed = [s for s in summary["stages"] if s["stage"] != "ingest"]
    assert computed and all(s["shards_computed"] == s["parts"] == 2 for s in computed), computed

    # the shard tasks ran in the worker processes, and every worker that ran a
    # sandbox stage built its own pool: fork servers whose parent is that worker
    after = worker_state(dask_cluster.address)
    with_sandbox = {info["pid"] for info in after.values() if "sandbox" in info["resources"]}
    assert with_sandbox, after
    parents = set(sandbox_server_parents().values())
    assert with_sandbox <= parents, (with_sandbox, parents)
    assert all("llm" not in info["resources"] for info in after.values())  # offline teacher: no client

    # the credentials reached the workers inside the store spec, and no log shows them
    for log in ("scheduler.log", "worker.log"):
        text = (dask_cluster.workdir / log).read_text(errors="replace")
        assert TEST_KEY not in text and TEST_SECRET not in text, log

    # the dashboard (bokeh) serves the status page
    with urllib.request.urlopen(f"{dask_cluster.dashboard}/status", timeout=30) as response:
        assert response.status == 200
        assert b"bokeh" in response.read().lower()


def test_a_relative_local_store_reaches_workers_as_an_absolute_path(dask_cluster, base_env, monkeypatch):
    """A worker's working directory is not the flow's: the spec it receives names
    the store absolutely."""
    from distributed import Client

    from flows.pipeline import open_store

    monkeypatch.setenv("CODEIO_STORE", "./relative-store")
    store = open_store(load_settings())
    store.write_json("probe.json", {"from": "flow"})
    with Client(dask_cluster.address, timeout=START_TIMEOUT_S) as client:
        seen = client.submit(lambda spec: spec.open().read_json("probe.json"), store.spec, pure=False).result()
    assert seen == {"from": "flow"}
    assert not (dask_cluster.workdir / "relative-store").exists()


@pytest.mark.slow
@needs_toy()
def test_default_local_cluster(local_rows, base_env, toy_sources, monkeypatch):
    """No CODEIO_DASK_ADDRESS and no CODEIO_DASK_WORKERS: a LocalCluster of worker
    processes sized to the machine (spawned: this only works because nothing
    runs at import time)."""
    monkeypatch.setenv("CODEIO_STORE", str(base_env / "cluster-store"))
    monkeypatch.setenv("CODEIO_DATABASE_URL", f"sqlite:///{base_env / 'cluster.db'}")
    summary = run_in_flow(base_env / "cluster.jsonl", toy_sources)
    assert read_rows(base_env / "cluster.jsonl") == local_rows
    assert all(s["shards_computed"] == s["parts"] for s in summary["stages"] if s["stage"] != "ingest")


def test_worker_sandboxes_end_with_the_workers(dask_cluster):
    """Stopping the workers (last in this module) leaves no fork server behind:
    each pool dies with the worker process that owns it."""
    from distributed import Client

    def use_the_sandbox() -> int:
        """A shard task's first sandbox call in this worker (the pool exists already
        when the pipeline test ran here)."""
        from codeio.execution import run_one
        from codeio.sandbox import SandboxConfig
        from storage.store import StoreSpec
        from tasks import resources

        runtime = resources.RuntimeSpec(store=StoreSpec(os.getcwd()), sandbox=SandboxConfig(workers=1),
                                        llm=None, exec_cache=False)
        run_one(resources.sandbox(runtime), "def main_solution(x):\n    return x + 1\n", '{"x": 1}',
                limits=runtime.sandbox.limits)
        return os.getpid()

    with Client(dask_cluster.address, timeout=START_TIMEOUT_S) as client:
        worker_pids = set(client.run(use_the_sandbox).values())
    assert worker_pids <= set(sandbox_server_parents().values())
    dask_cluster.stop()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while worker_pids & set(sandbox_server_parents().values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not worker_pids & set(sandbox_server_parents().values())


def test_local_cluster_workers_use_the_flows_api_and_run_no_profiler(prefect_harness):
    """The embedded cluster's worker processes report task runs to the flow's Prefect
    API (not an ephemeral one each) and skip Dask's every-10-ms stack sampler."""
    import dask
    from distributed import Client, LocalCluster

    from flows.pipeline import api_url_for_workers, local_cluster_kwargs

    def probe() -> tuple:
        return os.environ.get("PREFECT_API_URL"), dask.config.get("distributed.worker.profile.enabled")

    api_url = api_url_for_workers()
    assert api_url and api_url.startswith("http://127.0.0.1")
    with LocalCluster(**local_cluster_kwargs(1)) as cluster, Client(cluster) as client:
        seen = list(client.run(probe).values())
    assert seen == [(api_url, False)]
    assert dask.config.get("distributed.worker.profile.enabled") is True  # this process' config is untouched
