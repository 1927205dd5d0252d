"""collect_io's dataset key names the environment where pairs are collected: the
workers', not the flow process's, and a worker on another environment refuses to
write pairs under a key made for a different one."""

from __future__ import annotations

import pytest

from conftest import ROOT

FAKE_NUMPY_VERSION = "0.0.0+worker-image"


def fake_numpy_metadata(folder) -> str:
    """A folder that, first on a process's path, makes importlib.metadata report
    another numpy version (numpy itself still imports from site-packages)."""
    info = folder / f"numpy-{FAKE_NUMPY_VERSION}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: numpy\nVersion: {FAKE_NUMPY_VERSION}\n")
    return str(folder)


def test_collect_io_key_carries_the_workers_environment(prefect_harness, env, tmp_path, monkeypatch):
    from distributed import Client, LocalCluster

    from flows.pipeline import codeio_pipeline, local_cluster_kwargs
    from storage.store import DataStore
    from tasks.resources import environment_fingerprint

    rows = (ROOT / "codeio" / "corpus" / "unified.jsonl").read_text().splitlines()[:2]
    source = tmp_path / "two.jsonl"
    source.write_text("\n".join(rows) + "\n")
    site = fake_numpy_metadata(tmp_path / "worker-site")

    def install_other_numpy() -> None:  # the worker process now looks like one on another image
        import sys

        sys.path.insert(0, site)

    with LocalCluster(**local_cluster_kwargs(1)) as cluster, Client(cluster) as client:
        client.run(install_other_numpy)
        monkeypatch.setenv("CODEIO_DASK_ADDRESS", cluster.scheduler_address)
        summary = codeio_pipeline(sources=[f"unified:{source}"], revision_rounds=0)
    collect = next(s for s in summary["stages"] if s["stage"] == "collect_io")
    manifest = DataStore(str(env / "store")).manifest("collect_io", collect["key"])
    flow_side = environment_fingerprint(("numpy",))
    assert FAKE_NUMPY_VERSION not in flow_side
    assert f"numpy=={FAKE_NUMPY_VERSION}" in manifest["options"]["environment"]
    assert collect["out"] > 0


def test_a_worker_on_another_environment_writes_no_pairs(tmp_path):
    from codeio.sandbox import SandboxConfig
    from codeio.stages.collect_io import CollectConfig
    from storage.store import DataStore
    from tasks.collect_io import EnvironmentMismatch, collect_io_task
    from tasks.resources import RuntimeSpec
    from tasks.shard import DatasetRef, ShardJob

    store = DataStore(str(tmp_path / "store"))
    job = ShardJob(stage="collect_io", key="k-env", part=0, config=CollectConfig(),
                   inputs={"functions": DatasetRef("normalize", "k-fn", 1)},
                   runtime=RuntimeSpec(store=store.spec, sandbox=SandboxConfig(), llm=None),
                   options={"environment": "CPython-2.7.18:numpy==1.16.6"})
    with pytest.raises(EnvironmentMismatch, match="CPython-2.7.18"):
        collect_io_task.fn(job)
    assert store.part_marker("collect_io", "k-env", 0) is None
