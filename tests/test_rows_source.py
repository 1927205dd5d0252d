"""rows: sources on object storage: dataset rows (LeetCodeDataset, HumanEval and
MBPP layouts, written by these tests) as Parquet on S3 (a moto server on
127.0.0.1), read by the ingestion flow shard by shard, one problem per row,
unknown layouts rejected by name, counts reconciled."""

from __future__ import annotations

import io
import json
from pathlib import Path

import polars as pl
import pytest
import s3fs
from s3_server import moto_s3  # noqa: F401 - the fixture
from test_ingest_flow import s3_corpus  # noqa: F401 - the fixture: env pointing at a moto bucket, local store

from flows.spec import RunSpec
from storage.store import DataStore

ROWS = Path(__file__).resolve().parent / "data" / "rows" / "problems.jsonl"


@pytest.mark.slow
def test_rows_on_s3_parquet_are_ingested_one_problem_per_row(prefect_harness, moto_s3, s3_corpus):  # noqa: F811
    bucket, _, tmp_path = s3_corpus  # the bucket also holds a corpus under edu/: rows/ is read alone
    fs = s3fs.S3FileSystem(**moto_s3.storage_options())
    rows = [json.loads(line) for line in ROWS.read_text().splitlines()]
    # one Parquet file per layout family (a Parquet file holds one schema), as datasets ship them
    families = {"lcd": rows[:2], "humaneval": rows[2:3], "mbpp": rows[3:4], "other": rows[4:]}
    for name, part in families.items():
        buffer = io.BytesIO()
        pl.DataFrame(part).write_parquet(buffer)
        fs.pipe(f"{bucket}/rows/{name}.parquet", buffer.getvalue())
    from flows.ingest import codeio_ingest

    summary = codeio_ingest(sources=[f"rows:s3://{bucket}/rows"])
    stages = {s["label"]: s for s in summary["stages"]}
    select = stages["ingest select"]
    assert select["parts"] == 4 and summary["rows_read"] == 5
    assert select["rejects_by_reason"] == {"unrecognised_row_layout": 1}
    assert summary["kept"] == 4 and summary["reconciled"]
    kept = pl.concat(list(DataStore(str(tmp_path / "store")).iter_frames("ingest", summary["dataset"]["key"]))).to_dicts()
    assert {r["kind"] for r in kept} == {"problem"}
    payloads = sorted((json.loads(r["unified"])["layout"], json.loads(r["unified"])["title"]) for r in kept)
    assert payloads == [("humaneval", "Toy/0"), ("leetcodedataset", "merge-two-chains"),
                        ("leetcodedataset", "pair-sum-indices"), ("mbpp", "MBPP 7")]
    pair_sum = next(r for r in kept if "pairSum" in r["content"])
    examples = json.loads(pair_sum["unified"])["examples"]
    assert examples[0] == {"input": "nums = [2,7,11,15], target = 9", "output": "[0, 1]"}
    assert json.loads(pair_sum["origin"])["file"].endswith("rows/lcd.parquet")


def test_dry_run_counts_rows_sources_from_their_shards_and_a_missing_one_is_a_problem(tmp_path):
    from typer.testing import CliRunner

    from flows.cli import app

    env = {"CODEIO_STORE": str(tmp_path / "store"), "CODEIO_DATABASE_URL": f"sqlite:///{tmp_path / 'l.db'}",
           "CODEIO_DASK_WORKERS": "0"}
    done = CliRunner().invoke(app, ["run", "--dry-run", "--json", "--source", f"rows:{ROWS}"], env=env)
    assert done.exit_code == 0, done.output
    estimate = json.loads(done.output)
    assert estimate["scale_rows"] == 5 and estimate["corpus_files"] == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    done = CliRunner().invoke(app, ["run", "--dry-run", "--source", f"rows:{empty}"], env=env)
    assert done.exit_code != 0 and "holds no .jsonl" in done.output


@pytest.mark.slow
def test_nights_take_new_rows_shards_as_rows(env, prefect_harness):
    from codeio.settings import load_settings
    from flows.nightly import read_ledger, run_nightly
    from flows.pipeline import open_store

    folder = env / "rows"
    folder.mkdir()
    lines = ROWS.read_text().splitlines()
    (folder / "a.jsonl").write_text("\n".join(lines[:2]) + "\n")  # two LeetCodeDataset rows
    spec = RunSpec(sources=(f"rows:{folder}",), teacher="offline")
    settings = load_settings()
    first = run_nightly(settings, spec, state_dir=str(env / "state"))
    assert (first["new_sources"], first["new_corpus_files"]) == (0, 1) and first["summary"]["samples"] > 0
    (folder / "b.jsonl").write_text("\n".join(lines[2:]) + "\n")  # HumanEval, MBPP and an unknown row
    second = run_nightly(settings, spec, state_dir=str(env / "state"))
    assert second["new_corpus_files"] == 1 and second["summary"]["reconciled"]
    select = next(s for s in second["summary"]["stages"] if s["label"] == "ingest select")
    assert select["in"] == 3 and select["rejects_by_reason"] == {"unrecognised_row_layout": 1}
    ledger = read_ledger(open_store(settings), "default")
    assert [s for entry in ledger for s in entry["sources"]] == [f"rows:{folder / 'a.jsonl'}", f"rows:{folder / 'b.jsonl'}"]
