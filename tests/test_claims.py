"""Two runs at the same time on one store and one lineage database (two `codeio
run` processes, as a nightly run and a manual one would be): every dataset is
computed by one of them, the other waits for its claim and reuses the dataset.

The test holds the first dataset's claim itself until both runs are waiting
for it, so they really overlap whatever the machine's speed; then it lets go.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT

CODEIO = Path(sys.executable).with_name("codeio")
HOLDER = "claims-test-holder"
WAIT_S = 180.0  # upper bound for a run to reach the claim or finish (a failure, not a timing assertion)


def cli_env(tmp: Path, store: Path, database_url: str) -> dict[str, str]:
    from prefect.settings import get_current_settings

    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEIO_") and k != "OPENAI_API_KEY"}
    env.update({
        "CODEIO_STORE": str(store),
        "CODEIO_DATABASE_URL": database_url,
        "CODEIO_DASK_WORKERS": "0",
        "PREFECT_API_URL": str(get_current_settings().api.url),
        "PREFECT_HOME": str(tmp / "prefect-home"),
        "PREFECT_LOGGING_LEVEL": "WARNING",
    })
    return env


def wait_for(condition, processes: list[subprocess.Popen], logs: list[Path], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if any(p.poll() is not None for p in processes) or time.monotonic() > deadline:
            for process in processes:
                if process.poll() is None:
                    process.kill()
            pytest.fail(f"{what} did not happen:\n" + "\n".join(log.read_text()[-2000:] for log in logs))
        time.sleep(0.1)


def test_two_runs_at_once_compute_each_dataset_once(prefect_harness, env, monkeypatch):
    from flows.pipeline import codeio_pipeline
    from storage.lineage import LineageDB

    if not CODEIO.exists():
        pytest.skip(f"the codeio console script is not installed next to {sys.executable}")
    # dataset keys do not depend on the store: learn the first computed dataset's key on another one
    probe = codeio_pipeline()
    first = next(s for s in probe["stages"] if s["stage"] != "ingest")

    store, database_url = env / "shared-store", f"sqlite:///{env / 'shared.db'}"
    lineage = LineageDB(database_url)
    lineage.upgrade()
    assert lineage.try_claim(str(store), first["key"], HOLDER, None, lease_s=600) is None

    cli = cli_env(env, store, database_url)
    logs = [env / "a.log", env / "b.log"]
    runs = [subprocess.Popen([str(CODEIO), "run", "--out", str(env / f"{name}.jsonl")], env=cli, cwd=str(ROOT),
                             stdout=log.open("wb"), stderr=subprocess.STDOUT)
            for name, log in zip("ab", logs)]
    try:
        wait_for(lambda: all(HOLDER in log.read_text() for log in logs), runs, logs,
                 "both runs waiting for the held claim")
        lineage.release_claim(str(store), first["key"], HOLDER)
        for run, log in zip(runs, logs):
            assert run.wait(WAIT_S) == 0, log.read_text()[-3000:]
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()

    assert (env / "a.jsonl").read_text() == (env / "b.jsonl").read_text() != ""
    recorded = lineage.list_runs()
    assert sorted(r["status"] for r in recorded) == ["completed", "completed"]
    computed = {r["id"]: {row["stage"] for row in lineage.stage_runs(r["id"]) if not row["cached"]} - {"ingest"}
                for r in recorded}
    winner, loser = sorted(computed.values(), key=len, reverse=True)
    assert winner == {s["stage"] for s in probe["stages"]} - {"ingest"} and loser == set()
    # every shard of every dataset computed once across both runs
    for item in probe["stages"]:
        if item["stage"] != "ingest":
            assert lineage.stage_computations(item["key"]) == item["parts"], item["label"]
    assert lineage.claims() == []
    lineage.close()


def test_a_holder_is_gone_only_when_its_process_on_this_host_is():
    import socket

    from flows.orchestrator import holder_is_gone

    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()  # reaped: its pid names no process now (the kernel does not reuse it this soon)
    host = socket.gethostname()
    assert holder_is_gone(f"{host}:{finished.pid}:0a1b2c3d")
    assert not holder_is_gone(f"{host}:{os.getpid()}:0a1b2c3d")
    assert not holder_is_gone(f"another-host.example:{finished.pid}:0a1b2c3d")  # its lease decides
    assert not holder_is_gone("claims-test-holder")


HOLD_IN_NAMESPACE = """
import sys, time
from flows.orchestrator import LineageClaims
from storage.lineage import LineageDB

lineage = LineageDB(sys.argv[1])
claims = LineageClaims(lineage, None, lease_s=3.0)
with claims.hold(sys.argv[2], "k-held", "held"):
    print(claims.holder, flush=True)
    time.sleep(3600)
"""


def test_a_live_holder_in_another_pid_namespace_is_not_taken_over(tmp_path):
    """Two containers on one host often share its host name; a holder's pid then names
    no process (or another one) here. Its claim must run to the end of its lease."""
    import socket
    import threading

    from flows.orchestrator import LineageClaims, holder_is_gone
    from storage.lineage import LineageDB

    if shutil.which("unshare") is None:
        pytest.skip("util-linux unshare is not installed")
    database_url = f"sqlite:///{tmp_path / 'claims.db'}"
    lineage = LineageDB(database_url)
    lineage.upgrade()
    # a new PID namespace whose pids are past this namespace's pid_max: the holder's pid is no process here
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    script = f'echo {pid_max + 1000} > /proc/sys/kernel/ns_last_pid && "$0" -c "$1" "$2" store'
    holder_process = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", script,
                                       sys.executable, HOLD_IN_NAMESPACE, database_url],
                                      cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      start_new_session=True)
    try:
        line = holder_process.stdout.readline().strip()
        if not line:
            pytest.skip(f"cannot start a process in a new PID namespace here: {holder_process.stderr.read()[-500:]}")
        host, pid = line.split(":")[:2]
        assert host == socket.gethostname() and int(pid) > pid_max  # same host name, a pid that is no process here
        assert not holder_is_gone(line)

        waiting, entered = threading.Event(), threading.Event()
        claims = LineageClaims(lineage, None, lease_s=3.0, poll_s=0.05, on_wait=lambda label, owner: waiting.set())

        def take() -> None:
            with claims.hold("store", "k-held", "held"):
                entered.set()

        taker = threading.Thread(target=take, daemon=True)
        taker.start()
        while not (waiting.is_set() or entered.is_set()):
            time.sleep(0.01)
        assert waiting.is_set() and not entered.is_set()
        assert [c["holder"] for c in lineage.claims()] == [line]
    finally:
        os.killpg(holder_process.pid, 9)
        holder_process.wait(30)
    taker.join(60)  # the killed holder's lease runs out, then the claim is ours
    assert entered.is_set()
    lineage.close()
