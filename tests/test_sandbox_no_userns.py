"""Where the kernel refuses user namespaces (Docker's default seccomp profile,
hardened kernels), for real: as ``nobody`` under a seccomp filter that makes
unshare/clone with CLONE_NEWUSER fail with EPERM (tests/no_userns.py). The
sandbox still runs code, says which guarantees are missing and why (the
executor's report, and a whole ``codeio run``: stderr, the summary, --json,
lineage), and CODEIO_SANDBOX_REQUIRE_ISOLATION=true turns that into one clear
error line and a non-zero exit."""

from __future__ import annotations

import json
import sqlite3

import pytest

from unprivileged import Unprivileged, missing_requirement

pytestmark = pytest.mark.slow
NAMESPACES = ("user_namespace", "network_namespace", "mount_namespace", "ipc_namespace", "pid_namespace",
              "filesystem_view")
PROBE = r'''
import json
from codeio.execution import Limits, RunRequest
from codeio.sandbox import SandboxConfig, create_executor
from codeio.sandbox.pool import IsolationUnavailable

CODE = """
import socket
def main_solution(x):
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock = "created"
    except OSError as exc:
        sock = type(exc).__name__
    return {"double": 2 * x, "socket": sock}
"""
out = {}
with create_executor(SandboxConfig(workers=1, preload=("math", "json"))) as ex:
    out["report"] = ex.isolation_report()
    out["info"] = {k: ex.server_info()[k] for k in ("userns", "netns", "mountns", "pidns", "fs_view", "seccomp")}
    result = ex.run(RunRequest(code=CODE, inputs_json=('{"x": 21}',), limits=Limits(timeout_s=5.0)))[0]
    out["run"] = [result.status.value, result.value_json]
try:
    create_executor(SandboxConfig(workers=1, preload=("math",), require_isolation=True)).close()
    out["required"] = None
except IsolationUnavailable as exc:
    out["required"] = str(exc)
print(json.dumps(out))
'''


@pytest.fixture(scope="module")
def nobody():
    reason = missing_requirement()
    if reason:
        pytest.skip(reason)
    with Unprivileged() as env:
        yield env


def refused(nobody: Unprivileged, argv: list[str], env: dict[str, str] | None = None):
    """``argv`` as nobody, where the kernel refuses user namespaces."""
    return nobody.run([nobody.python, f"{nobody.src}/tests/no_userns.py", *argv], env or {})


def test_the_filter_refuses_user_namespaces_and_nothing_else(nobody):
    done = refused(nobody, ["unshare", "--user", "--map-root-user", "true"])
    assert done.returncode != 0 and "Operation not permitted" in done.stderr, done.stderr
    plain = nobody.run(["unshare", "--user", "--map-root-user", "true"], {})
    assert plain.returncode == 0, plain.stderr  # without the filter this kernel allows them to nobody


def test_sandbox_runs_and_names_every_missing_guarantee(nobody):
    done = refused(nobody, [nobody.python, "-c", PROBE])
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    report = out["report"]
    assert report["modes"] == ["unprivileged, no user namespace"]
    missing = {item["guarantee"]: item for item in report["missing"]}
    assert set(NAMESPACES) <= set(missing), missing
    assert missing["user_namespace"]["reason"] == "unshare: Operation not permitted (EPERM)"
    assert all("EPERM" in missing[name]["reason"] for name in NAMESPACES)
    assert all(item["effect"] for item in report["missing"])
    assert "seccomp" not in missing  # the sandbox's own filter still loads without privileges...
    assert out["info"] == {"userns": False, "netns": False, "mountns": False, "pidns": False, "fs_view": False,
                           "seccomp": True}
    # ... so the code still runs, and still cannot create a socket
    assert out["run"] == ["ok", json.dumps({"double": 42, "socket": "PermissionError"})], out["run"]
    assert "SANDBOX ISOLATION INCOMPLETE: no user namespace (unshare: Operation not permitted (EPERM))" in done.stderr
    assert out["required"].startswith("sandbox isolation is incomplete and CODEIO_SANDBOX_REQUIRE_ISOLATION is set; "
                                      "missing: user_namespace (unshare: Operation not permitted (EPERM)); ")


def codeio_run(nobody: Unprivileged, folder: str, *args: str, require: bool = False):
    work = nobody.home / folder
    env = {"CODEIO_DASK_WORKERS": "0", "CODEIO_STORE": str(work / "store"),
           "CODEIO_DATABASE_URL": f"sqlite:///{nobody.home / 'lineage.db'}",
           "PREFECT_HOME": str(nobody.home / "prefect"),
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}
    if require:
        env["CODEIO_SANDBOX_REQUIRE_ISOLATION"] = "true"
    return refused(nobody, [nobody.python, "-m", "flows.cli", "run", "--limit", "3", "--teacher", "offline",
                            "--revision-rounds", "0", *args], env)


def lineage_summary(nobody: Unprivileged, status: str) -> tuple[dict, str | None]:
    with sqlite3.connect(nobody.home / "lineage.db") as db:
        row = db.execute("SELECT summary, error FROM runs WHERE status = ? ORDER BY started_at DESC LIMIT 1",
                         (status,)).fetchone()
    assert row is not None, f"no {status} run in lineage"
    return json.loads(row[0]) if row[0] else {}, row[1]


def check_sandbox_summary(sandbox: dict) -> None:
    assert sandbox["modes"] == ["unprivileged, no user namespace"] and not sandbox["complete"]
    names = [item["guarantee"] for item in sandbox["missing"]]
    assert set(NAMESPACES) <= set(names)
    assert sandbox["shards"] >= 3 and {"collect_io", "synthesize r1", "verify r1"} <= set(sandbox["stages"])
    first = sandbox["missing"][0]
    assert first["guarantee"] == "user_namespace" and first["reason"] == "unshare: Operation not permitted (EPERM)"


def test_codeio_run_completes_and_says_loudly_what_is_missing(nobody):
    done = codeio_run(nobody, "text", "--out", str(nobody.home / "text" / "samples.jsonl"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = (nobody.home / "text" / "samples.jsonl").read_text().splitlines()
    assert rows and all(json.loads(row)["sample_id"] for row in rows)
    # stderr: the warning block, every missing guarantee on a line with the kernel's reason
    assert "SANDBOX ISOLATION INCOMPLETE (unprivileged, no user namespace)" in done.stderr, done.stderr[-3000:]
    assert "  - user_namespace (unshare: Operation not permitted (EPERM)):" in done.stderr
    for name in NAMESPACES:
        assert f"  - {name} (" in done.stderr
    assert "CODEIO_SANDBOX_REQUIRE_ISOLATION=true" in done.stderr
    # the end-of-run summary
    assert "ISOLATION INCOMPLETE, missing: user_namespace, network_namespace" in done.stdout, done.stdout[-3000:]
    summary, _ = lineage_summary(nobody, "completed")  # stored with the run
    check_sandbox_summary(summary["sandbox"])
    assert summary["samples"] == len(rows)
    # the Prefect summary artifact (the run's ephemeral API keeps it in PREFECT_HOME)
    with sqlite3.connect(nobody.home / "prefect" / "prefect.db") as db:
        artifacts = [json.loads(row[0]) for row in db.execute("SELECT data FROM artifact WHERE key = 'codeio-summary'")]
    assert len(artifacts) == 1 and "## Sandbox isolation incomplete" in artifacts[0], artifacts
    assert "| user_namespace | unshare: Operation not permitted (EPERM) |" in artifacts[0]

    as_json = codeio_run(nobody, "json", "--json")
    assert as_json.returncode == 0, as_json.stderr[-3000:]
    data = json.loads(as_json.stdout)
    assert data["samples"] == len(rows)
    check_sandbox_summary(data["sandbox"])
    assert {s["label"]: bool(s["sandbox"]) for s in data["stages"] if s["stage"] in ("normalize", "collect_io")} == \
        {"normalize": False, "collect_io": True}  # per stage: only the stages that ran code
    assert "SANDBOX ISOLATION INCOMPLETE (unprivileged, no user namespace)" in as_json.stderr


def test_codeio_eval_reports_it_too(nobody):
    env = {"CODEIO_DASK_WORKERS": "0", "CODEIO_STORE": str(nobody.home / "eval" / "store"),
           "CODEIO_DATABASE_URL": f"sqlite:///{nobody.home / 'eval.db'}", "PREFECT_HOME": str(nobody.home / "prefect"),
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}
    done = refused(nobody, [nobody.python, "-m", "flows.cli", "eval", "--benchmark",
                            f"cruxeval:{nobody.src}/tests/data/eval/cruxeval.jsonl", "--teacher", "offline",
                            "--limit", "3", "--json"], env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["questions"] > 0 and report["sandbox"]["modes"] == ["unprivileged, no user namespace"]
    assert set(NAMESPACES) <= {item["guarantee"] for item in report["sandbox"]["missing"]}
    assert report["sandbox"]["stages"] == ["answer s0", "eval_judge"], report["sandbox"]  # offline answers run code
    assert "SANDBOX ISOLATION INCOMPLETE (unprivileged, no user namespace)" in done.stderr
    assert "  - user_namespace (unshare: Operation not permitted (EPERM)):" in done.stderr


REQUIRED_ERROR = ("sandbox isolation is incomplete and CODEIO_SANDBOX_REQUIRE_ISOLATION is set; missing: "
                  "user_namespace (unshare: Operation not permitted (EPERM)); network_namespace (needs the user "
                  "namespace: unshare: Operation not permitted (EPERM)); mount_namespace (needs the user "
                  "namespace: unshare: Operation not permitted (EPERM)); ipc_namespace (needs the user namespace: "
                  "unshare: Operation not permitted (EPERM)); pid_namespace (needs the user namespace: unshare: "
                  "Operation not permitted (EPERM)); filesystem_view (needs the user namespace: unshare: "
                  "Operation not permitted (EPERM))")


def test_required_isolation_fails_with_one_clear_line(nobody):
    done = codeio_run(nobody, "required", require=True)
    assert done.returncode == 3, done.stdout[-2000:] + done.stderr[-3000:]
    assert done.stderr.strip().splitlines() == [f"error: {REQUIRED_ERROR}"], done.stderr[-3000:]
    assert not (nobody.home / "required" / "store").exists()  # refused before anything started


def test_required_isolation_fails_the_flow_where_the_workers_check(nobody):
    """A deployment runs the flow without the CLI's check: the workers' pools refuse to
    start, the flow fails with that message, and lineage books the run as failed."""
    flow = ("from codeio.sandbox.pool import IsolationUnavailable\n"
            "from flows.pipeline import codeio_pipeline\n"
            "from flows.spec import RunSpec\n"
            "try:\n"
            "    codeio_pipeline(spec=RunSpec(limit=3, teacher='offline', revision_rounds=0))\n"
            "except IsolationUnavailable as exc:\n"
            "    print('REFUSED', exc)\n")
    env = {"CODEIO_DASK_WORKERS": "0", "CODEIO_STORE": str(nobody.home / "flow" / "store"),
           "CODEIO_DATABASE_URL": f"sqlite:///{nobody.home / 'flow.db'}", "PREFECT_HOME": str(nobody.home / "prefect"),
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120", "CODEIO_SANDBOX_REQUIRE_ISOLATION": "true"}
    done = refused(nobody, [nobody.python, "-c", flow], env)
    assert f"REFUSED {REQUIRED_ERROR}" in done.stdout.splitlines(), done.stdout[-2000:] + done.stderr[-3000:]
    with sqlite3.connect(nobody.home / "flow.db") as db:
        rows = db.execute("SELECT status, error FROM runs").fetchall()
    assert len(rows) == 1 and rows[0][0] == "failed" and rows[0][1] == f"IsolationUnavailable: {REQUIRED_ERROR}", rows
