"""The ingestion flow end to end: a Parquet/JSONL corpus on S3 (a moto server on
127.0.0.1) read shard by shard on a Dask LocalCluster, CodeMix + PyEdu-R
selection, dedup across shards and sources, decontamination; the pipeline
running it as its first step; the CLI failing loudly on an empty result."""

from __future__ import annotations

import io
import json

import polars as pl
import pytest
import s3fs
import zstandard
from s3_server import moto_s3  # noqa: F401 - the fixture
from test_ingest_select import BUBBLE, HUMANEVAL, SIMULATION
from test_s3_store import CREDENTIAL_VARS

from storage.store import DataStore


def python_edu_rows(n: int, offset: int = 0) -> list[dict]:
    """Python-Edu style rows: distinct simulations (kept), plus what must go."""
    rows = []
    for i in range(offset, offset + n):
        # distinct programs: each has its own constants and names (no two are near duplicates)
        body = SIMULATION.replace("Bank", f"Branch{i}").replace("tellers", f"tellers_{i}").replace(
            "randint(0, 3)", f"randint({i}, {i + 3 + i % 5})").replace("minute", f"tick_{i}").replace(
            "served", f"served_{i}").replace("waiting", f"queue_{i}").replace("longest", f"peak_{i}")
        rows.append({"blob_id": f"blob{i:04d}", "repo_name": f"org/repo{i % 4}", "path": f"/sim/m{i}.py",
                     "length_bytes": len(body), "score": 3.2 + (i % 3) / 10, "int_score": 3 + i % 2, "content": body})
    return rows


@pytest.fixture
def s3_corpus(moto_s3, monkeypatch, tmp_path):  # noqa: F811 - pytest fixture injection
    """A bucket holding a dataset the way it is downloaded: Parquet shards (several
    row groups) and a zstd JSONL shard; the store and lineage stay local."""
    for name in CREDENTIAL_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in moto_s3.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CODEIO_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("CODEIO_DATABASE_URL", f"sqlite:///{tmp_path / 'lineage.db'}")
    for name in ("CODEIO_LLM_BASE_URL", "CODEIO_LLM_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    bucket = moto_s3.create_bucket()
    fs = s3fs.S3FileSystem(**moto_s3.storage_options())
    first = python_edu_rows(12)
    first[3]["content"] = first[0]["content"].replace("\n", "  \n")  # exact duplicate (whitespace only)
    first[5]["int_score"] = 1  # below the educational threshold
    first[7]["content"] = BUBBLE * 2  # pure algorithm implementation
    first[8]["content"] = "x = 1\n"  # too small
    second = python_edu_rows(10, offset=100)
    # near duplicate, across shards: the same program with one comment and one line changed
    second[2]["content"] = first[1]["content"].replace('"""Advance the simulation by one minute."""', "# one step") \
        .replace("return len", "return 0 + len")
    second[4]["content"] = "import math\n" + HUMANEVAL["prompt"] + HUMANEVAL["canonical_solution"] + \
        "\n\ndef simulate_orbit(mass, velocity):\n    return mass * velocity * math.pi\n"  # contaminated
    second[6]["content"] = "print 'old python', 1\n" * 3 + "def f(x):\n    print x\n    return x\n"  # Python 2
    for name, rows, group in (("a.parquet", first, 4), ("b.parquet", second, 10)):
        buffer = io.BytesIO()
        pl.DataFrame(rows).write_parquet(buffer, row_group_size=group)
        fs.pipe(f"{bucket}/edu/{name}", buffer.getvalue())
    third = python_edu_rows(3, offset=200) + [first[2]]  # exact duplicate across files
    fs.pipe(f"{bucket}/edu/c.jsonl.zst",
            zstandard.ZstdCompressor().compress("".join(json.dumps(r) + "\n" for r in third).encode()))
    evals = tmp_path / "humaneval.jsonl"
    evals.write_text(json.dumps(HUMANEVAL) + "\n")
    return bucket, evals, tmp_path


OPTIONS = {"codemix": {"min_functions": 1}, "pyedu": {"min_int_score": 3}, "dedup": {"threshold": 0.7}}


@pytest.mark.slow
def test_s3_corpus_ingests_in_parallel_with_reasons_and_reconciles(prefect_harness, s3_corpus, monkeypatch):
    bucket, evals, tmp_path = s3_corpus
    monkeypatch.setenv("CODEIO_DASK_WORKERS", "2")  # a real LocalCluster: shards on two worker processes
    monkeypatch.setenv("CODEIO_SHARD_SIZE", "4")  # a.parquet: 3 units of 4 rows (row groups of 4)
    from flows.ingest import codeio_ingest

    options = dict(OPTIONS, decontam=[f"humaneval={evals}"])
    summary = codeio_ingest(sources=[f"corpus:s3://{bucket}/edu"], options=options)
    stages = {s["label"]: s for s in summary["stages"]}
    select, dedup, final = stages["ingest select"], stages["ingest dedup"], stages["ingest"]
    assert select["parts"] == 3 + 1 + 1 and select["shards_computed"] == 5  # a: 3 row-group units, b, c
    assert dedup["parts"] == 1 and final["parts"] == 5
    assert summary["rows_read"] == 12 + 10 + 4
    assert select["rejects_by_reason"] == {"low_edu_score": 1, "low_reasoning_focus": 1, "too_small": 1,
                                           "python2": 1, "contaminated": 1}
    assert final["rejects_by_reason"] == {"exact_duplicate": 2, "near_duplicate": 1}
    assert summary["kept"] == 26 - 5 - 3 and summary["reconciled"]
    assert summary["contaminated"] == {f"corpus:s3://{bucket}/edu / humaneval": 1}
    assert summary["kept_by_rule"]["read"] == 26 and summary["kept_by_rule"]["codemix"] == 26 - 2
    assert summary["kept_by_rule"]["pyedu_int_score"] == 24 - 1 and summary["kept_by_rule"]["pyedu_reasoning"] == 22

    store = DataStore(str(tmp_path / "store"))
    key = summary["dataset"]["key"]
    kept = pl.concat(list(store.iter_frames("ingest", key))).to_dicts()
    assert len(kept) == summary["kept"] and len({r["source_id"] for r in kept}) == len(kept)
    origin = json.loads(next(r for r in kept if json.loads(r["origin"])["blob_id"] == "blob0000")["origin"])
    assert {"blob_id", "repo", "path", "length_bytes", "score", "int_score", "row", "file"} <= set(origin)
    assert origin["int_score"] == 3 and origin["repo"] == "org/repo0" and origin["path"] == "/sim/m0.py"
    assert origin["selection"]["ast_nodes"] > 30 and "reasoning_score" in origin["selection"]
    rejects = [r for part in range(final["parts"]) for r in store.read_rejects("ingest", key, part)]
    near = next(r for r in rejects if r["reason"] == "near_duplicate")
    assert "/sim/m1.py" in near["detail"] and "kept copy" in near["detail"]  # the kept copy is named
    exact = [r["detail"] for r in rejects if r["reason"] == "exact_duplicate"]
    assert any("/sim/m0.py" in d for d in exact) and any("/sim/m2.py" in d for d in exact)
    select_rejects = [r for part in range(select["parts"]) for r in store.read_rejects("ingest_select", select["key"], part)]
    assert "HumanEval/0" in next(r["detail"] for r in select_rejects if r["reason"] == "contaminated")

    again = codeio_ingest(sources=[f"corpus:s3://{bucket}/edu"], options=options)
    assert all(s["reused"] for s in again["stages"]) and again["dataset"] == summary["dataset"]


@pytest.mark.slow
def test_pipeline_runs_ingestion_first_and_keeps_sample_keys(prefect_harness, env, tmp_path):
    """``codeio run`` with ingest options goes through the ingestion stages (rows of
    the sample corpus: unified functions pass the CodeMix filters untouched and
    yield samples); without options the sample corpus keeps its ingest key."""
    from flows.pipeline import codeio_pipeline

    plain = codeio_pipeline(limit=6, revision_rounds=0)
    assert [s["stage"] for s in plain["stages"]][:2] == ["ingest", "normalize"]
    selected = codeio_pipeline(limit=6, revision_rounds=0, ingest={"codemix": True, "dedup": {"threshold": 0.8}})
    labels = [s["label"] for s in selected["stages"]]
    assert labels[:4] == ["ingest select", "ingest dedup", "ingest", "normalize"]
    assert selected["samples"] == plain["samples"] > 0
    assert selected["reconciled"]
