"""The codeio-eval deployment end to end: a real `prefect server`, `prefect deploy
--all`, a process worker, and an eval run against the scripted OpenAI-compatible
server (an always-right model) that must reach Completed, publish its
artifacts and store its scores in lineage."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from eval_teacher import EvalTeacher
from llm_server import FakeLLMServer
from test_deployments import (FINAL_STATES, POLL_S, POOL, ROOT, RUN_TIMEOUT_S, _cli, _free_port, _start, _stop,
                              _wait_healthy)

CRUXEVAL = ROOT / "tests" / "data" / "eval" / "cruxeval.jsonl"


@pytest.mark.slow
def test_eval_deployment_runs_on_a_worker(tmp_path: Path):
    import os

    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId, FlowRunFilter, FlowRunFilterId

    from storage.lineage import LineageDB

    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CODEIO_", "OPENAI_"))}
    env.update({
        "PREFECT_HOME": str(tmp_path / "prefect-home"), "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "PREFECT_LOGGING_LEVEL": "INFO",
        "PREFECT_WORKER_QUERY_SECONDS": "2", "PREFECT_WORKER_PREFETCH_SECONDS": "5",
    })
    lineage_url = f"sqlite:///{tmp_path / 'lineage.db'}"
    worker_env = {**env, "CODEIO_DASK_WORKERS": "0", "CODEIO_DATABASE_URL": lineage_url,
                  "CODEIO_LLM_BACKOFF_BASE_S": "0.05"}
    processes = []
    teacher = EvalTeacher(CRUXEVAL, "cruxeval", mode="right")
    with FakeLLMServer(teacher) as llm:
        try:
            server_log = tmp_path / "server.log"
            server = _start(["server", "start", "--host", "127.0.0.1", "--port", str(port)], env, server_log,
                            tmp_path)
            processes.append(server)
            _wait_healthy(api, server, server_log)
            _cli(["work-pool", "create", POOL, "--type", "process"], env, tmp_path)
            _cli(["--no-prompt", "deploy", "--name", "codeio-eval"], env, ROOT)
            worker_log = tmp_path / "worker.log"
            processes.append(_start(["worker", "start", "--pool", POOL, "--work-queue", "default"], worker_env,
                                    worker_log, tmp_path))
            with SyncPrefectClient(api) as client:
                deployment = client.read_deployment_by_name("codeio-eval/codeio-eval")
                assert deployment.work_pool_name == POOL
                _cli(["deployment", "run", "codeio-eval/codeio-eval", "--param", f"benchmark=cruxeval:{CRUXEVAL}",
                      "--param", "teacher=openai", "--param", "model=fake-model", "--param",
                      f"llm_base_url={llm.base_url}", "--param", f"store={tmp_path / 'store'}"], env, tmp_path)
                runs = client.read_flow_runs(deployment_filter=DeploymentFilter(
                    id=DeploymentFilterId(any_=[deployment.id])))
                assert len(runs) == 1
                deadline = time.monotonic() + RUN_TIMEOUT_S * 2
                run = client.read_flow_run(runs[0].id)
                while run.state_type.value not in FINAL_STATES and time.monotonic() < deadline:
                    time.sleep(POLL_S)
                    run = client.read_flow_run(runs[0].id)
                assert run.state_type.value == "COMPLETED", (
                    f"flow run ended {run.state_type}: {run.state.message if run.state else ''}\n"
                    f"worker log:\n{worker_log.read_text()[-4000:]}")
                artifacts = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
                by_key = {a.key: a for a in artifacts}
                assert by_key["codeio-eval"].type == "markdown" and "pass@1" in by_key["codeio-eval"].data
                assert by_key["codeio-eval-scores"].type == "table"
                assert "scores.png" in by_key["codeio-eval-plot"].data
        finally:
            for process in reversed(processes):
                _stop(process)
    assert teacher.unknown == 0 and len(teacher.right) == 24 and not teacher.wrong
    with LineageDB(lineage_url) as db:
        (result,) = db.eval_results()
        assert result["model"] == "fake-model" and result["pass_at_1_output"] == 1.0
        assert result["pass_at_1_input"] == 1.0 and result["benchmark"] == "cruxeval"
    assert list((tmp_path / "store" / "eval").glob("*/scores.png"))
