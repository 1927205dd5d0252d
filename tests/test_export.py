"""Exporting final samples from a real store, in every format."""

from __future__ import annotations

import polars as pl

from codeio.records import SAMPLE
from storage.export import FINAL_COLUMNS, export_samples
from storage.store import DataStore
from tasks.shard import DatasetRef


def test_a_run_with_zero_samples_exports_readable_empty_files(tmp_path):
    """A run can end with no sample at all (every source rejected): each format is
    still a valid file, the Parquet one with the final columns and no rows."""
    store = DataStore(str(tmp_path / "store"))
    for part in range(2):
        store.write_part("assemble", "k-empty", part, SAMPLE, [], [], {"records_in": 0})
    store.write_manifest("assemble", "k-empty", {"stage": "assemble", "key": "k-empty", "parts": 2})
    written = export_samples(store, DatasetRef("assemble", "k-empty", 2), str(tmp_path / "out" / "samples.jsonl"),
                             ("jsonl", "parquet", "chat"))
    frame = pl.read_parquet(written["parquet"])
    assert frame.height == 0 and tuple(frame.columns) == FINAL_COLUMNS
    assert frame.schema["verified"] == pl.Boolean
    assert open(written["jsonl"]).read() == "" and open(written["chat"]).read() == ""
