"""Writing final samples out of the store: JSONL, Parquet, chat-messages JSONL."""

from __future__ import annotations

import json
from typing import Any, Iterator

import fsspec
import polars as pl

from storage.store import DataStore

FINAL_COLUMNS = (
    "sample_id", "instance_id", "function_id", "source_id", "task", "variant",
    "prompt", "turn_1", "feedback_1", "turn_2", "feedback_2", "turn_3", "feedback_3",
    "verified", "final_status", "teacher", "model", "origin",
)
EXPORT_FORMATS = ("jsonl", "parquet", "chat")


def final_rows(store: DataStore, ref: Any) -> Iterator[dict[str, Any]]:
    """Final rows in a stable order; ``turn_3``/``feedback_3`` only when two revision rounds ran."""
    for frame in store.iter_frames(ref.stage, ref.key):
        yield from _final(frame.to_dicts())


def _final(rows: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for row in rows:
        final = {name: row.get(name) for name in FINAL_COLUMNS}
        final["origin"] = json.loads(row["origin"]) if row.get("origin") else None
        if not final.get("turn_3") and "rounds=2" not in (final.get("variant") or ""):
            final.pop("turn_3")
            final.pop("feedback_3")
        yield final


_EXPORT_SCHEMA = {name: (pl.Boolean if name == "verified" else pl.String) for name in FINAL_COLUMNS}


def chat_messages(row: dict[str, Any]) -> list[dict[str, str]]:
    """The sample as a multi-turn SFT conversation (feedback turns as user messages)."""
    messages = [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": row["turn_1"]}]
    for index in (2, 3):
        if row.get(f"turn_{index}"):
            messages.append({"role": "user", "content": row[f"feedback_{index - 1}"]})
            messages.append({"role": "assistant", "content": row[f"turn_{index}"]})
    return messages


def export_samples(store: DataStore, ref: Any, out: str, formats: tuple[str, ...] = ("jsonl",)) -> dict[str, str]:
    """Write the samples to ``out`` (jsonl), ``out`` with .parquet / .chat.jsonl suffixes
    for the other formats. Returns format -> path."""
    unknown = set(formats) - set(EXPORT_FORMATS)
    if unknown:
        raise ValueError(f"unknown export format(s) {sorted(unknown)}; choose from {EXPORT_FORMATS}")
    written: dict[str, str] = {}
    base = out[:-len(".jsonl")] if out.endswith(".jsonl") else out[:-len(".parquet")] if out.endswith(".parquet") else out
    for fmt in formats:
        if fmt == "jsonl":
            path = out if not out.endswith(".parquet") else base + ".jsonl"
            _write_lines(path, (json.dumps(r, ensure_ascii=False) for r in final_rows(store, ref)))
        elif fmt == "parquet":
            path = out if out.endswith(".parquet") else base + ".parquet"
            _write_parquet(path, store, ref)
        else:
            path = base + ".chat.jsonl"
            _write_lines(path, (json.dumps({"sample_id": r["sample_id"], "messages": chat_messages(r)},
                                           ensure_ascii=False) for r in final_rows(store, ref)))
        written[fmt] = path
    return written


def _write_lines(path: str, lines: Iterator[str]) -> None:
    """Streamed: memory stays bounded by one row, whatever the dataset size."""
    with fsspec.open(path, "w", encoding="utf-8", auto_mkdir=True) as handle:
        for line in lines:
            handle.write(line + "\n")


def _write_parquet(path: str, store: DataStore, ref: Any) -> None:
    """One row group per stored shard, written as the shards are read; a run without
    samples still gets a valid file (the final columns, no rows)."""
    import pyarrow.parquet as pq

    writer = None
    with fsspec.open(path, "wb", auto_mkdir=True) as handle:
        try:
            for frame in store.iter_frames(ref.stage, ref.key):
                rows = [{**r, "origin": json.dumps(r["origin"], ensure_ascii=False)} for r in _final(frame.to_dicts())]
                if not rows:
                    continue
                table = pl.DataFrame(rows, schema=_EXPORT_SCHEMA, strict=False).to_arrow()
                if writer is None:
                    writer = pq.ParquetWriter(handle, table.schema)
                writer.write_table(table)
            if writer is None:
                empty = pl.DataFrame(schema=_EXPORT_SCHEMA).to_arrow()
                writer = pq.ParquetWriter(handle, empty.schema)
                writer.write_table(empty)
        finally:
            if writer is not None:
                writer.close()
