"""Walking a sample back to its source: sample -> instance -> answers and verdicts
per round -> pair -> function -> source file, with the runs behind each dataset."""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from storage.store import DataStore

JSON_FIELDS = ("origin", "messages", "input", "output", "extracted", "actual", "given_pairs", "unified")


class SampleNotFound(LookupError):
    pass


def _find(store: DataStore, stage: str, key: str, column: str, value: str) -> dict[str, Any] | None:
    for frame in store.iter_frames(stage, key):
        hit = frame.filter(pl.col(column) == value)
        if hit.height:
            return _decode(hit.row(0, named=True))
    return None


def _find_all(store: DataStore, stage: str, key: str, column: str, value: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for frame in store.iter_frames(stage, key):
        rows += [_decode(r) for r in frame.filter(pl.col(column) == value).to_dicts()]
    return rows


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for name in JSON_FIELDS:
        if isinstance(out.get(name), str):
            try:
                out[name] = json.loads(out[name])
            except json.JSONDecodeError:
                pass
    return out


def _dataset(store: DataStore, lineage: Any, stage: str, key: str) -> dict[str, Any]:
    runs = lineage.runs_for_dataset(key) if lineage is not None else []
    return {"stage": stage, "key": key, "uri": store.uri(store.dataset_dir(stage, key)), "runs": runs}


def trace_sample(store: DataStore, lineage: Any, sample_id: str) -> dict[str, Any]:
    candidates = [d["dataset_key"] if isinstance(d, dict) else d for d in
                  (lineage.datasets_for_stage("assemble") if lineage is not None else [])]
    candidates += [k for k in store.dataset_keys("assemble") if k not in candidates]
    for key in candidates:
        manifest = store.manifest("assemble", key)
        if manifest is None:
            continue
        sample = _find(store, "assemble", key, "sample_id", sample_id)
        if sample is not None:
            return _walk(store, lineage, key, manifest, sample)
    raise SampleNotFound(f"no sample {sample_id!r} in {store.url}")


def _walk(store: DataStore, lineage: Any, key: str, manifest: dict[str, Any], sample: dict[str, Any]) -> dict[str, Any]:
    refs = {name: tuple(ref) for name, ref in manifest["parent_refs"].items()}
    instance_stage, instance_key = refs["instances"]
    instance = _find(store, instance_stage, instance_key, "instance_id", sample["instance_id"])
    turns = []
    round_number = 1
    while f"responses_{round_number}" in refs:
        r_stage, r_key = refs[f"responses_{round_number}"]
        v_stage, v_key = refs[f"verdicts_{round_number}"]
        response = _find(store, r_stage, r_key, "instance_id", sample["instance_id"])
        if response is not None:
            verdict = _find(store, v_stage, v_key, "instance_id", sample["instance_id"])
            turns.append({"round": round_number, "response": response, "verdict": verdict,
                          "response_dataset": _dataset(store, lineage, r_stage, r_key),
                          "verdict_dataset": _dataset(store, lineage, v_stage, v_key)})
        round_number += 1
    instances_manifest = store.manifest(instance_stage, instance_key) or {}
    irefs = {name: tuple(ref) for name, ref in instances_manifest.get("parent_refs", {}).items()}
    pair = function = source = None
    chain: dict[str, Any] = {}
    if "pairs" in irefs:
        pair = _find(store, *irefs["pairs"], "pair_id", instance["pair_id"]) if instance else None
        chain["pairs"] = _dataset(store, lineage, *irefs["pairs"])
    if "functions" in irefs:
        f_stage, f_key = irefs["functions"]
        function = _find(store, f_stage, f_key, "function_id", sample["function_id"])
        chain["functions"] = _dataset(store, lineage, f_stage, f_key)
        fmanifest = store.manifest(f_stage, f_key) or {}
        frefs = {name: tuple(ref) for name, ref in fmanifest.get("parent_refs", {}).items()}
        if "sources" in frefs:
            source = _find(store, *frefs["sources"], "source_id", sample["source_id"])
            chain["sources"] = _dataset(store, lineage, *frefs["sources"])
    return {
        "sample": sample,
        "sample_dataset": _dataset(store, lineage, "assemble", key),
        "instance": instance,
        "instance_dataset": _dataset(store, lineage, instance_stage, instance_key),
        "turns": turns,
        "pair": pair,
        "function": function,
        "source": source,
        "datasets": chain,
    }
