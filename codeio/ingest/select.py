"""The ingestion stages as pure functions over one shard.

1. ``select_shard``: rows read from one unit -> candidates (SourceFile columns
   plus the normalized hash and MinHash signature) or rejects (read errors,
   CodeMix filters, PyEdu-R rules, decontamination), each with a named reason.
2. ``dedup_decisions``: every candidate's hash and signature, in corpus order ->
   one decision per candidate (kept, or a duplicate of a named kept copy). It runs
   partitioned: ``cross_part_links`` finds the LSH components (see
   codeio.ingest.dedup) that span shards, and ``dedup_partition`` decides one
   shard's candidates from them plus the other members of their components.
3. ``finalize_shard``: one shard's candidates and their decisions -> the
   ``ingest`` dataset (SourceFile records) and the duplicates as rejects.

Counts reconcile per stage: rows read = candidates + rejects; candidates =
decisions; candidates = sources + duplicates.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from codeio.ingest.decontam import DecontamConfig, EvalIndex
from codeio.ingest.dedup import (Candidate, DedupConfig, Duplicate, band_keys, components, describe, normalized_hash,
                                  resolve, signature_hex)
from codeio.ingest.filters import CodeMixConfig, check_codemix
from codeio.ingest.pyedu import PyEduConfig, check_pyedu
from codeio.ingest.readers import CorpusUnit
from codeio.records import FLOAT, INT, SOURCE_FILE, STR, Schema, dumps, reject, stable_id
from codeio.sources import MAX_SOURCE_BYTES_DEFAULT, ReadOutcome
from codeio.stages.base import StageOutput

VERSION = "1"
CANDIDATE = Schema("ingest_candidate", SOURCE_FILE.fields + (
    ("row_order", INT),  # position in the unit: with the part number, the corpus order dedup keeps the first of
    ("exact_hash", STR),  # sha256 of the whitespace-normalized content
    ("minhash", STR),  # hex of the MinHash signature ("" when near dedup is off)
))
DECISION = Schema("dedup_decision", (
    ("source_id", STR), ("part", INT), ("row_order", INT), ("status", STR),  # kept | exact_duplicate | near_duplicate
    ("kept_id", STR), ("kept_name", STR), ("similarity", FLOAT),
))
KEPT = "kept"
RESOLVER_COLUMNS = ["source_id", "source_name", "origin", "row_order", "exact_hash", "minhash"]
# the members of the components that span shards: what each shard's partition needs of the others
LINK = Schema("dedup_link", (("component", INT), ("part", INT)) + tuple(
    (name, dict(CANDIDATE.fields)[name]) for name in RESOLVER_COLUMNS))


@dataclass(frozen=True)
class SelectConfig:
    # what the parts read: the digest of the unit listing (content fingerprints included); the
    # units themselves are kept in the store (``units_rel``), one small file per part
    units_digest: str
    codemix: CodeMixConfig | None = None
    pyedu: PyEduConfig | None = None
    decontam: DecontamConfig | None = None
    dedup: DedupConfig | None = DedupConfig()
    max_bytes: int = MAX_SOURCE_BYTES_DEFAULT


def units_digest(units: list[CorpusUnit]) -> str:
    return stable_id("units", [dataclasses.asdict(unit) for unit in units], length=32)


def units_rel(digest: str, part: int) -> str:
    """Where the unit of one part is kept in the store (content-addressed)."""
    return f"ingest/units/{digest}/{part:05d}.json"


def unit_to_json(unit: CorpusUnit) -> dict[str, Any]:
    return dataclasses.asdict(unit)


def unit_from_json(data: dict[str, Any]) -> CorpusUnit:
    return CorpusUnit(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def _name(record: dict[str, Any]) -> str:
    origin = json.loads(record["origin"] or "{}")
    where = origin.get("path") or ""
    if origin.get("repo"):
        where = f"{origin['repo']}:{where}"
    return f"{record['source_name']} {where}".strip()


def select_shard(outcomes: Iterable[ReadOutcome], config: SelectConfig, eval_index: EvalIndex | None) -> StageOutput:
    """Read rejects pass through; each kept row goes through the CodeMix filters,
    the PyEdu-R rules and decontamination, in that order (first failing rule names
    the reject); survivors get their dedup hashes."""
    out = StageOutput()
    rules: Counter[str] = Counter()
    contaminated: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    token_cache: dict[str, int] = {}
    for row_order, outcome in enumerate(outcomes):
        if outcome.record is None:
            out.rejects.append(outcome.rejected)
            continue
        record = dict(outcome.record)
        rules["read"] += 1
        record_id = f"{record['source_id']} ({_name(record)})"
        raw = record["kind"] == "raw"
        rules["raw"] += raw  # what the CodeMix and PyEdu-R rules judge; problems and unified rows pass them
        features: dict[str, Any] = {}
        facts = None
        if raw and config.codemix is not None:
            verdict = check_codemix(record["content"], config.codemix)
            features.update(verdict.features)
            facts = verdict.facts
            if verdict.reason:
                out.rejects.append(reject(record_id, verdict.reason, verdict.detail))
                continue
            rules["codemix"] += 1
            rules["python2_kept"] += features.get("python") == 2
        if raw and config.pyedu is not None:
            origin = json.loads(record["origin"] or "{}")
            edu = check_pyedu(record["content"], origin.get("int_score"), config.pyedu, facts)
            features.update(edu.features)
            if edu.reason == "low_reasoning_focus" or edu.reason is None:
                rules["pyedu_int_score"] += 1
            if edu.reason:
                out.rejects.append(reject(record_id, edu.reason, edu.detail))
                continue
            rules["pyedu_reasoning"] += 1
        if eval_index is not None:
            path = json.loads(record["origin"] or "{}").get("path") or ""
            hit = eval_index.check(record["content"], str(path))
            if hit is not None:
                eval_set, detail = hit
                contaminated[f"{record['source_name']} / {eval_set}"] += 1
                out.rejects.append(reject(record_id, "contaminated", f"{eval_set}: {detail}"))
                continue
            rules["decontam"] += 1
        if features:
            origin = json.loads(record["origin"] or "{}")
            origin["selection"] = features
            record["origin"] = dumps(origin)
        dedup = config.dedup or DedupConfig(near=False)
        record.update(row_order=row_order, exact_hash=normalized_hash(record["content"]),
                      minhash=signature_hex(record["content"], dedup, token_cache) if dedup.near else "")
        kinds[record["kind"]] += 1
        out.records.append(record)
    out.stats = {"rules": dict(rules), "contaminated": dict(contaminated), "candidates": dict(kinds)}
    return out


def candidates_of(part: int, rows: Iterable[dict[str, Any]]) -> Iterable[Candidate]:
    for row in rows:
        yield Candidate(row["source_id"], (part, int(row["row_order"])), row["exact_hash"], row["minhash"] or "",
                        _name(row))


def dedup_decisions(candidates: Iterable[Candidate], config: DedupConfig | None) -> StageOutput:
    """One decision per candidate, in corpus order."""
    listed = sorted(candidates, key=lambda c: c.order)
    duplicates = {d.order: d for d in resolve(listed, config or DedupConfig(near=False))}
    out = StageOutput()
    for item in listed:
        dup = duplicates.get(item.order)
        out.records.append({"source_id": item.source_id, "part": item.order[0], "row_order": item.order[1],
                            "status": dup.reason if dup else KEPT, "kept_id": dup.kept_id if dup else None,
                            "kept_name": dup.kept_name if dup else None,
                            "similarity": dup.similarity if dup else None})
    out.stats = {"decisions": dict(Counter(r["status"] for r in out.records))}
    return out


def dedup_components(shards: Iterable[tuple[int, list[int], list[str], list[str]]],
                     config: DedupConfig | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every candidate's component, from (part, row orders, exact hashes, MinHash hex)
    per shard: (parts, row orders, labels), in corpus order. A label is the corpus
    index of the component's first file. The signatures are reduced to band keys
    shard by shard, so only those keys of the whole corpus are held at once."""
    config = config or DedupConfig(near=False)
    parts, rows, hashes, keys = [], [], [], []
    for part, row_orders, exact_hashes, minhashes in sorted(shards, key=lambda shard: shard[0]):
        order = np.argsort(np.asarray(row_orders, dtype=np.int64), kind="stable")
        parts.append(np.full(len(order), part, dtype=np.int64))
        rows.append(np.asarray(row_orders, dtype=np.int64)[order])
        hashes.extend(exact_hashes[i] for i in order)
        keys.append(band_keys([minhashes[i] or "" for i in order], config))
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    return np.concatenate(parts), np.concatenate(rows), components(hashes, np.concatenate(keys))


def cross_part(parts: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Which candidates are in a component with members in more than one shard."""
    if labels.size == 0:
        return np.zeros(0, dtype=bool)
    order = np.lexsort((parts, labels))
    first = np.ones(labels.size, dtype=bool)
    first[1:] = labels[order][1:] != labels[order][:-1]
    group = np.cumsum(first) - 1
    lowest = np.minimum.reduceat(parts[order], np.flatnonzero(first))
    highest = np.maximum.reduceat(parts[order], np.flatnonzero(first))
    spans = np.zeros(labels.size, dtype=bool)
    spans[order] = (lowest != highest)[group]
    return spans


def dedup_partition(part: int, own: Iterable[Candidate], others: Iterable[Candidate],
                    config: DedupConfig | None) -> StageOutput:
    """The decisions of one shard's candidates, walking them with ``others``: the
    members in other shards of the components they belong to (whole components,
    so each decision is the one a walk over the whole corpus makes)."""
    decided = dedup_decisions([*own, *others], config)
    out = StageOutput(records=[r for r in decided.records if r["part"] == part])
    out.stats = {"decisions": dict(Counter(r["status"] for r in out.records)),
                 "context": len(decided.records) - len(out.records)}
    return out


def finalize_shard(candidates: list[dict[str, Any]], decisions: list[dict[str, Any]]) -> StageOutput:
    """Keep the candidates decided kept; the others become rejects naming their kept copy.
    The same content always has the same source_id, so exact dedup is never off here."""
    by_row = {int(d["row_order"]): d for d in decisions}
    out = StageOutput()
    for record in sorted(candidates, key=lambda r: r["row_order"]):
        decision = by_row.get(int(record["row_order"]))
        if decision is None:
            raise ValueError(f"no dedup decision for candidate {record['source_id']} (row {record['row_order']})")
        if decision["status"] == KEPT:
            out.records.append(SOURCE_FILE.project(record))
            continue
        dup = Duplicate(record["source_id"], (0, int(record["row_order"])), decision["status"], decision["kept_id"],
                        decision["kept_name"], float(decision["similarity"] or 0.0))
        out.rejects.append(reject(f"{record['source_id']} ({_name(record)})", dup.reason, describe(dup)))
    out.stats = {"raw": sum(r["kind"] != "unified" for r in out.records),  # raw files and problems: need normalizing
                 "unified": sum(r["kind"] == "unified" for r in out.records)}
    return out
