"""The deployments in prefect.yaml, end to end: a real `prefect server`, the work
pool, `prefect deploy --all`, a process worker, and a parameterized pipeline run
that must reach Completed and publish its summary artifacts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PREFECT = Path(sys.executable).with_name("prefect")
POOL = "codeio-pool"
DEPLOYMENTS = {"codeio-pipeline": "codeio-pipeline", "codeio-nightly": "codeio-nightly",
               "codeio-ablation-sweep": "codeio-ablation-sweep", "codeio-eval": "codeio-eval",
               "codeio-ingest": "codeio-ingest"}  # deployment -> flow
SERVER_START_S = 90.0
RUN_TIMEOUT_S = 150.0
POLL_S = 1.0
FINAL_STATES = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


def test_prefect_yaml_declares_the_deployments():
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in config["deployments"]}
    assert set(deployments) == set(DEPLOYMENTS)
    for name, deployment in deployments.items():
        assert deployment["work_pool"]["name"] == POOL
        path, _, function = deployment["entrypoint"].partition(":")
        assert (ROOT / path).is_file() and f"def {function}(" in (ROOT / path).read_text()
    assert {"sources", "limit", "teacher", "model", "revision_rounds", "pairs_per_function",
            "rejection_sampling"} <= set(deployments["codeio-pipeline"]["parameters"])
    schedule = deployments["codeio-nightly"]["schedules"][0]
    assert len(schedule["cron"].split()) == 5 and schedule["active"]
    pull = config["pull"][0]["prefect.deployments.steps.set_working_directory"]
    assert pull["directory"] == "{{ project_root.stdout }}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(args: list[str], env: dict[str, str], log: Path, cwd: Path) -> subprocess.Popen:
    handle = log.open("wb")
    try:
        return subprocess.Popen([str(PREFECT), *args], env=env, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT,
                                start_new_session=True)
    finally:
        handle.close()


def _stop(process: subprocess.Popen) -> None:
    """End the process group this test started (the worker's flow-run children too)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run([str(PREFECT), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"prefect {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _wait_healthy(api: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"prefect server exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"prefect server not healthy after {SERVER_START_S}s:\n{log.read_text()[-3000:]}")


@pytest.mark.slow
def test_deploy_and_run_the_pipeline_on_a_worker(tmp_path):
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId, FlowRunFilter, FlowRunFilterId

    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CODEIO_"))}
    env.update({
        "PREFECT_HOME": str(tmp_path / "prefect-home"), "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "PREFECT_LOGGING_LEVEL": "INFO",
        "PREFECT_WORKER_QUERY_SECONDS": "2", "PREFECT_WORKER_PREFETCH_SECONDS": "5",
    })
    worker_env = {**env, "CODEIO_DASK_WORKERS": "0",
                  "CODEIO_DATABASE_URL": f"sqlite:///{tmp_path / 'lineage.db'}"}
    processes: list[subprocess.Popen] = []
    try:
        server_log = tmp_path / "server.log"
        server = _start(["server", "start", "--host", "127.0.0.1", "--port", str(port)], env, server_log, tmp_path)
        processes.append(server)
        _wait_healthy(api, server, server_log)

        _cli(["work-pool", "create", POOL, "--type", "process"], env, tmp_path)
        _cli(["--no-prompt", "deploy", "--all"], env, ROOT)
        worker_log = tmp_path / "worker.log"
        # the default queue only: the nightly schedule's runs (queue "nightly") are not this test's
        processes.append(_start(["worker", "start", "--pool", POOL, "--work-queue", "default"], worker_env,
                                worker_log, tmp_path))

        store = tmp_path / "store"
        with SyncPrefectClient(api) as client:
            deployments = {name: client.read_deployment_by_name(f"{flow}/{name}") for name, flow in DEPLOYMENTS.items()}
            assert all(d.work_pool_name == POOL for d in deployments.values())
            nightly = deployments["codeio-nightly"]
            assert nightly.schedules and nightly.schedules[0].schedule.cron == "0 2 * * *"
            assert nightly.work_queue_name == "nightly" and nightly.global_concurrency_limit.limit == 1
            assert deployments["codeio-pipeline"].pull_steps[0]["prefect.deployments.steps.set_working_directory"][
                "directory"] == str(ROOT)

            _cli(["deployment", "run", "codeio-pipeline/codeio-pipeline", "--param", "limit=5",
                  "--param", "teacher=offline", "--param", "revision_rounds=1", "--param", "pairs_per_function=2",
                  "--param", f"store={store}", "--param", 'sources=["sample"]'], env, tmp_path)
            runs = client.read_flow_runs(deployment_filter=DeploymentFilter(
                id=DeploymentFilterId(any_=[deployments["codeio-pipeline"].id])))
            assert len(runs) == 1
            run_id = runs[0].id
            deadline = time.monotonic() + RUN_TIMEOUT_S
            run = client.read_flow_run(run_id)
            while run.state_type.value not in FINAL_STATES and time.monotonic() < deadline:
                time.sleep(POLL_S)
                run = client.read_flow_run(run_id)
            assert run.state_type.value == "COMPLETED", (
                f"flow run ended {run.state_type}: {run.state.message if run.state else ''}\n"
                f"worker log:\n{worker_log.read_text()[-4000:]}")
            assert run.parameters["limit"] == 5 and run.parameters["pairs_per_function"] == 2

            artifacts = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
            by_key = {a.key: a for a in artifacts}
            assert by_key["codeio-summary"].type == "markdown"
            assert "codeio run" in by_key["codeio-summary"].data
            assert by_key["codeio-stages"].type == "table"
            assert "assemble" in str(by_key["codeio-stages"].data)
        # the run wrote into the store it was given, from the project root
        assert (store / "datasets" / "assemble").is_dir()
        assert (tmp_path / "lineage.db").is_file()
    finally:
        for process in reversed(processes):
            _stop(process)
