"""A whole pipeline run as an unprivileged user (issue 9): ``codeio run`` on the
embedded sample corpus with the offline teacher, once as root and once as
``nobody`` (tests/unprivileged.py), gives exactly the same samples, and both
runs report full isolation (root: a leased uid; nobody: a user namespace)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from unprivileged import BASE_ENV, ROOT, Unprivileged, missing_requirement

pytestmark = pytest.mark.slow
RUN = ("-m", "flows.cli", "run", "--teacher", "offline", "--json")


def run_env(folder) -> dict[str, str]:
    return {"CODEIO_DASK_WORKERS": "0", "CODEIO_STORE": str(folder / "store"),
            "CODEIO_DATABASE_URL": f"sqlite:///{folder / 'lineage.db'}", "PREFECT_HOME": str(folder / "prefect"),
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}


def check(done: subprocess.CompletedProcess, mode: str) -> dict:
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    summary = json.loads(done.stdout)
    assert summary["reconciled"] and summary["samples"] > 0
    assert summary["sandbox"]["modes"] == [mode] and summary["sandbox"]["complete"], summary["sandbox"]
    assert summary["sandbox"]["missing"] == [] and summary["sandbox"]["shards"] > 0
    assert "SANDBOX ISOLATION INCOMPLETE" not in done.stderr
    return summary


@pytest.mark.timeout(1200)
def test_pipeline_as_nobody_gives_the_samples_of_a_root_run(tmp_path):
    reason = missing_requirement()
    if reason:
        pytest.skip(reason)
    with Unprivileged() as nobody:
        probe = nobody.run(["unshare", "--user", "--map-root-user", "--net", "--mount", "true"], {})
        if probe.returncode != 0:
            pytest.skip(f"the kernel refuses user namespaces to {nobody.user.pw_name}: {probe.stderr.strip()}")
        as_nobody = nobody.run([nobody.python, *RUN, "--out", str(nobody.home / "samples.jsonl")],
                               run_env(nobody.home))
        nobody_samples = (nobody.home / "samples.jsonl").read_bytes() if as_nobody.returncode == 0 else b""
    root_dir = tmp_path / "root"
    root_dir.mkdir()
    env = {**BASE_ENV, "HOME": str(root_dir), "PYTHONPATH": str(ROOT), **run_env(root_dir)}
    as_root = subprocess.run([sys.executable, *RUN, "--out", str(root_dir / "samples.jsonl")], cwd=root_dir,
                             env=env, capture_output=True, text=True, timeout=900)
    root, unprivileged = check(as_root, "root"), check(as_nobody, "unprivileged, user namespace")
    assert [(s["label"], s["in"], s["out"], s["rejected"]) for s in unprivileged["stages"]] == \
        [(s["label"], s["in"], s["out"], s["rejected"]) for s in root["stages"]]
    root_samples = (root_dir / "samples.jsonl").read_bytes()
    assert root_samples.count(b"\n") == root["samples"] and root["samples"] > 100  # the whole sample corpus
    assert nobody_samples == root_samples
