"""Writing final samples out of the store: JSONL, Parquet, chat-messages JSONL."""

from __future__ import annotations

import io
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
        for row in frame.to_dicts():
            final = {name: row.get(name) for name in FINAL_COLUMNS}
            final["origin"] = json.loads(row["origin"]) if row.get("origin") else None
            if not final.get("turn_3") and "rounds=2" not in (final.get("variant") or ""):
                final.pop("turn_3")
                final.pop("feedback_3")
            yield final


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
    rows = list(final_rows(store, ref))
    written: dict[str, str] = {}
    base = out[:-len(".jsonl")] if out.endswith(".jsonl") else out[:-len(".parquet")] if out.endswith(".parquet") else out
    for fmt in formats:
        if fmt == "jsonl":
            path = out if not out.endswith(".parquet") else base + ".jsonl"
            _write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        elif fmt == "parquet":
            path = out if out.endswith(".parquet") else base + ".parquet"
            frame = pl.DataFrame([{**r, "origin": json.dumps(r["origin"], ensure_ascii=False)} for r in rows])
            buffer = io.BytesIO()
            frame.write_parquet(buffer)
            with fsspec.open(path, "wb", auto_mkdir=True) as handle:
                handle.write(buffer.getvalue())
        else:
            path = base + ".chat.jsonl"
            _write_text(path, "".join(
                json.dumps({"sample_id": r["sample_id"], "messages": chat_messages(r)}, ensure_ascii=False) + "\n"
                for r in rows))
        written[fmt] = path
    return written


def _write_text(path: str, text: str) -> None:
    with fsspec.open(path, "w", encoding="utf-8", auto_mkdir=True) as handle:
        handle.write(text)
