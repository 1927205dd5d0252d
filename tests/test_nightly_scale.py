"""The nightly flow over ``git:`` working trees and ``corpus:`` shards: a second night
takes only the files added to the tree and the shard files added to the corpus
folder; the corpus rows are read by the ingestion stages, never by the night."""

from __future__ import annotations

import subprocess
from pathlib import Path

import polars as pl
import pytest

from flows.spec import RunSpec
from s3_server import moto_s3  # noqa: F401 - the fixture

from storage.lineage import LineageDB


def _git(tree: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(tree), *args], check=True, capture_output=True)


def _rows(prefix: str, n: int) -> list[dict]:
    return [{"blob_id": f"{prefix}{i}", "repo_name": "org/edu", "path": f"/{prefix}/m{i}.py", "int_score": 4,
             "content": f"def {prefix}_{i}(x):\n    return x * {i + 2} + {len(prefix)}\n"} for i in range(n)]


@pytest.fixture
def sources(env):
    tree = env / "tree"
    tree.mkdir()
    _git(tree, "init", "-q")
    (tree / "a.py").write_text("def inc(x):\n    return x + 1\n")
    (tree / "pkg").mkdir()
    (tree / "pkg" / "b.py").write_text("def dec(x):\n    return x - 1\n")
    (tree / "untracked.py").write_text("def nope():\n    return 0\n")  # not in git: not a source
    _git(tree, "add", "a.py", "pkg/b.py")
    corpus = env / "corpus"
    corpus.mkdir()
    pl.DataFrame(_rows("a", 3)).write_parquet(corpus / "a.parquet")
    return tree, corpus


def _ingested(lineage: LineageDB, run_id: str) -> int:
    return next(s for s in lineage.stage_totals(run_id) if s["stage"] == "ingest")["records_out"]


@pytest.mark.slow
def test_second_night_takes_only_new_git_files_and_new_corpus_shards(env, prefect_harness, sources):
    from flows.nightly import read_ledger, run_nightly
    from flows.pipeline import open_store
    from codeio.settings import load_settings

    tree, corpus = sources
    spec = RunSpec(sources=(f"git:{tree}", f"corpus:{corpus}"), teacher="offline")
    settings = load_settings()
    state = str(env / "state")

    first = run_nightly(settings, spec, state_dir=state)
    assert (first["new_sources"], first["already_processed"], first["new_corpus_files"]) == (2, 0, 1)
    with LineageDB(settings.database_url) as lineage:
        assert _ingested(lineage, first["run_id"]) == 2 + 3

    quiet = run_nightly(settings, spec, state_dir=state)
    assert (quiet["new_sources"], quiet["already_processed"], quiet["new_corpus_files"], quiet["run_id"]) == \
        (0, 2, 0, None)

    (tree / "c.py").write_text("def twice(x):\n    return 2 * x\n")
    _git(tree, "add", "c.py")
    pl.DataFrame(_rows("b", 2)).write_parquet(corpus / "b.parquet")
    second = run_nightly(settings, spec, state_dir=state)
    assert (second["new_sources"], second["already_processed"], second["new_corpus_files"]) == (1, 2, 1)
    assert second["corpus_files"] == 2 and len(second["nights"]) == 2
    with LineageDB(settings.database_url) as lineage:
        assert _ingested(lineage, second["run_id"]) == 1 + 2  # only the new file and the new shard's rows
    ledger = read_ledger(open_store(settings), "default")
    assert [Path(path).name for entry in ledger for path, _ in entry["corpus_files"]] == ["a.parquet", "b.parquet"]
    assert any(s.startswith("corpus:") and s.endswith("b.parquet") for s in ledger[1]["sources"])


@pytest.mark.slow
def test_s3_corpus_shards_dry_run_and_nights(env, prefect_harness, moto_s3, monkeypatch):  # noqa: F811
    """Shards on S3 (a moto server on loopback): the dry run counts rows from the Parquet
    footer; a night takes the shard by its ETag, the next night only the new shard."""
    import io

    import s3fs
    from test_s3_store import CREDENTIAL_VARS

    from codeio.settings import load_settings
    from flows.estimate import estimate_run
    from flows.nightly import run_nightly

    for name in CREDENTIAL_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in moto_s3.env().items():
        monkeypatch.setenv(name, value)
    bucket = moto_s3.create_bucket()
    fs = s3fs.S3FileSystem(**moto_s3.storage_options())

    def put(name: str, rows: list[dict]) -> None:
        buffer = io.BytesIO()
        pl.DataFrame(rows).write_parquet(buffer, row_group_size=2)
        fs.pipe(f"{bucket}/edu/{name}", buffer.getvalue())

    put("a.parquet", _rows("a", 5))
    spec = RunSpec(sources=(f"corpus:s3://{bucket}/edu",), teacher="offline")
    settings = load_settings()
    estimate = estimate_run(settings, spec)
    assert (estimate["corpus_files"], estimate["scale_rows"], estimate["scale_rows_estimated"]) == (1, 5, False)

    first = run_nightly(settings, spec, state_dir=str(env / "state"))
    assert (first["new_corpus_files"], first["new_sources"]) == (1, 0)
    put("b.parquet", _rows("b", 3))
    second = run_nightly(settings, spec, state_dir=str(env / "state"))
    assert (second["corpus_files"], second["new_corpus_files"]) == (2, 1)
    with LineageDB(settings.database_url) as lineage:
        assert _ingested(lineage, first["run_id"]) == 5 and _ingested(lineage, second["run_id"]) == 3
    assert second["summary"]["stages"][0]["label"] == "ingest select"  # read by the ingestion stages
