"""The nightly incremental run: only sources new since the last nightly run.

Each night reads every row of the configured sources, drops the ones whose
``source_id`` (a content hash) an earlier completed nightly run of the same
stream already ingested, and runs the pipeline on the rest only. The new rows
go into a delta file named by its content hash (unified rows as ``unified:``,
raw code as ``jsonl:``), so a night that fails is retried with the same delta
and the same dataset keys: its finished shards are reused.

What earlier nights produced is never recomputed: a ledger in the store
(``nightly/<stream>/runs/<run_id>.json``, written when a night completes)
names each night's ingest and samples datasets; the seen source ids are read
back from those ingest datasets, and the result lists every night's samples
dataset (and, with ``out``, exports all of them as one JSONL).

``git:`` working trees are read like ``dir:`` folders (their ``git ls-files``
Python files, in this process: the trees are local) and their new files go into
the delta. ``corpus:`` (and ``rows:``) shards are never read here: a night lists them (names and
content fingerprints: sha256 of a local file, ETag and size of a remote one) and
takes every shard file no earlier night took, whole, as ``corpus:FILE`` (``rows:FILE``) sources
that the ingestion stages read on the workers; the ledger entry names them
(``corpus_files``). A shard that changes after a night took it is taken again as
a new shard; ``limit`` caps rows of the other sources, not shard files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from codeio.records import stable_id
from codeio.settings import Settings
from codeio.sources import MAX_SOURCE_BYTES_DEFAULT, SHARD_KINDS, SourceSpec, parse_source_specs, read_sources
from flows.pipeline import open_store, run_pipeline
from flows.spec import EndpointURL, RunSpec
from storage.lineage import LineageDB
from storage.store import DataStore

LEDGER_DIR = "nightly"
STATE_DIR = ".codeio/nightly"  # where delta source files are written (local: sources are read by this process)
RUN_KIND_PREFIX = "nightly"
DIGEST_CHARS = 16
# origin fields carried back into a source row, by the column codeio.sources reads them from
RAW_ORIGIN_FIELDS = {"path": "path", "repo": "repo_name", "blob_id": "blob_id", "license": "license",
                     "score": "score", "int_score": "int_score", "length_bytes": "length_bytes"}
UNIFIED_ORIGIN_FIELDS = ("path", "repo", "blob_id", "license")  # what a unified row carries of them
logger = logging.getLogger(__name__)


def run_kind(stream: str) -> str:
    return f"{RUN_KIND_PREFIX}:{stream}"


def _ledger_dir(stream: str) -> str:
    return posixpath.join(LEDGER_DIR, stream, "runs")


def read_ledger(store: DataStore, stream: str) -> list[dict[str, Any]]:
    """Completed nights of a stream, oldest first; a night recorded twice (the same
    ingest dataset: the same new sources) counts once."""
    entries = [store.read_json(posixpath.join(_ledger_dir(stream), name))
               for name in store.list_dir(_ledger_dir(stream)) if name.endswith(".json")]
    nights: dict[str, dict[str, Any]] = {}
    for entry in sorted((e for e in entries if e), key=lambda e: (e["finished_at"], e["run_id"])):
        nights.setdefault(entry["ingest"]["key"], entry)
    return list(nights.values())


@contextmanager
def stream_claim(settings: Settings, store: DataStore, stream: str) -> Iterator[None]:
    """Nights of one stream never overlap: each holds the stream's claim in the lineage
    database from reading the ledger to writing its entry, so a second night started
    meanwhile waits, then finds the first one's sources in the ledger."""
    from flows.orchestrator import LineageClaims

    with LineageDB(settings.database_url) as lineage:
        lineage.upgrade()
        claims = LineageClaims(lineage, None, settings.claim_lease_s, on_wait=lambda label, owner: logger.info(
            "%s: another nightly run (%s) is running this stream; waiting for it", label, owner))
        with claims.hold(store.url, stable_id("nightly-stream", stream), f"nightly {stream}"):
            yield


def seen_source_ids(store: DataStore, ledger: list[dict[str, Any]]) -> set[str]:
    """Source ids in the ingest datasets of earlier completed nights."""
    seen: set[str] = set()
    for entry in ledger:
        ingest = entry["ingest"]
        for frame in store.iter_frames("ingest", ingest["key"], columns=["source_id"]):
            seen.update(frame["source_id"].to_list())
    return seen


def seen_corpus_files(ledger: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """(file, fingerprint) of the corpus shards earlier completed nights took."""
    return {(path, fingerprint) for entry in ledger for path, fingerprint in entry.get("corpus_files") or []}


def corpus_files(specs: list[SourceSpec], settings: Settings) -> list[tuple[str, str]]:
    """Every shard file of the ``corpus:`` specs as (path or URL, fingerprint), in source
    order, each once: listed and fingerprinted, never parsed."""
    from flows.corpus_listing import shard_files

    found: dict[tuple[str, str], None] = {}
    for shard in shard_files(specs, settings):
        found.setdefault((shard.url, shard.fingerprint()), None)
    return list(found)


def _read_git(spec: SourceSpec) -> Iterator[Any]:
    """The Python files of a git working tree (``git ls-files``), as the ingestion flow reads them."""
    from codeio.ingest.readers import CorpusUnit, git_files, read_unit

    root = spec.resolved
    names = tuple(n for n in git_files(root) if (root / n).is_file() or (root / n).is_symlink())
    unit = CorpusUnit(spec.display, spec.kind, spec.path, "files", str(root), "py", "", files=names)
    return read_unit(unit, lambda path: open(path, "rb"), MAX_SOURCE_BYTES_DEFAULT)


def _outcomes(specs: list[SourceSpec]) -> Iterator[Any]:
    for spec in specs:
        yield from _read_git(spec) if spec.kind == "git" else read_sources([spec])


def _origin_columns(record: dict[str, Any], names: Any) -> dict[str, Any]:
    origin = json.loads(record["origin"])
    return {RAW_ORIGIN_FIELDS[name]: origin[name] for name in names if origin.get(name) is not None}


def _unified_row(record: dict[str, Any]) -> dict[str, Any]:
    return {"refcode": record["content"], **json.loads(record["unified"]),
            **_origin_columns(record, UNIFIED_ORIGIN_FIELDS)}


def _raw_row(record: dict[str, Any]) -> dict[str, Any]:
    return {"content": record["content"], **_origin_columns(record, RAW_ORIGIN_FIELDS)}


def write_delta(records: list[dict[str, Any]], state_dir: Path) -> list[str]:
    """The new rows as source files named by their content: unified rows first, then
    raw code, each in source order. Returns the source specs."""
    specs = []
    for kind, spec_kind, to_row in (("unified", "unified", _unified_row), ("raw", "jsonl", _raw_row)):
        rows = [to_row(r) for r in records if r["kind"] == kind]
        if not rows:
            continue
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:DIGEST_CHARS]
        path = state_dir / f"delta-{kind}-{digest}.jsonl"
        if not path.exists():
            state_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(path)
        specs.append(f"{spec_kind}:{path.resolve()}")
    return specs


def new_records(specs: list[SourceSpec], seen: set[str], limit: int | None) -> tuple[list[dict[str, Any]], int, int]:
    """(rows not seen before, at most ``limit``; rows read; rows already seen)."""
    fresh: dict[str, dict[str, Any]] = {}
    total = already = 0
    for outcome in _outcomes(specs):
        if outcome.record is None:
            continue
        total += 1
        source_id = outcome.record["source_id"]
        if source_id in seen:
            already += 1
        elif source_id not in fresh and (limit is None or len(fresh) < limit):
            fresh[source_id] = outcome.record
    return list(fresh.values()), total, already


def run_nightly(settings: Settings, spec: RunSpec, stream: str = "default",
                state_dir: str | None = None) -> dict[str, Any]:
    """One night: find the new sources of ``spec``, run the pipeline of ``spec`` on them,
    record the night. Here ``spec.limit`` caps the new sources taken (the rest wait for
    the next night) and ``spec.out`` receives every night's samples."""
    store = open_store(settings)
    with stream_claim(settings, store, stream):
        return _night(settings, store, spec, stream, state_dir)


def _night(settings: Settings, store: DataStore, spec: RunSpec, stream: str, state_dir: str | None) -> dict[str, Any]:
    ledger = read_ledger(store, stream)
    specs = parse_source_specs(list(spec.sources))
    rows = [s for s in specs if s.kind not in SHARD_KINDS]
    fresh, total, already = new_records(rows, seen_source_ids(store, ledger), spec.limit) if rows else ([], 0, 0)
    kind_of = {shard: kind for kind in SHARD_KINDS  # corpus: and rows: shards, each re-read as its kind
               for shard in corpus_files([s for s in specs if s.kind == kind], settings)}
    shards = list(kind_of)
    taken = seen_corpus_files(ledger)
    new_shards = [pair for pair in shards if pair not in taken]
    result: dict[str, Any] = {"stream": stream, "sources_read": total, "already_processed": already,
                              "new_sources": len(fresh), "corpus_files": len(shards),
                              "new_corpus_files": len(new_shards), "earlier_nights": len(ledger), "run_id": None,
                              "summary": None}
    if fresh or new_shards:
        delta = write_delta(fresh, Path(state_dir or STATE_DIR) / stream) + [f"{kind_of[(path, print_)]}:{path}" for path, print_ in new_shards]
        summary = run_pipeline(settings, spec.replace(sources=delta, limit=None, out=None),
                               progress=False, kind=run_kind(stream))
        ingest = next(s for s in summary["stages"] if s["stage"] == "ingest")
        entry = {"run_id": summary["run_id"], "finished_at": datetime.now(timezone.utc).isoformat(),
                 "sources": delta, "new_sources": len(fresh), "corpus_files": [list(pair) for pair in new_shards],
                 "ingest": {"key": ingest["key"], "uri": ingest["uri"], "parts": ingest["parts"]},
                 "samples": summary["samples_dataset"], "sample_count": summary["samples"]}
        store.write_json(posixpath.join(_ledger_dir(stream), f"{summary['run_id']}.json"), entry)
        ledger = [*ledger, entry]
        result.update(run_id=summary["run_id"], summary=summary)
    result["nights"] = [{"run_id": e["run_id"], "finished_at": e["finished_at"], "new_sources": e["new_sources"],
                         "samples": e["sample_count"], "dataset_uri": e["samples"]["uri"]} for e in ledger]
    result["total_samples"] = sum(e["sample_count"] for e in ledger)
    if spec.out:
        result["exported"] = export_all(store, ledger, spec.out)
    return result


def export_all(store: DataStore, ledger: list[dict[str, Any]], out: str) -> str:
    """Every night's samples, oldest night first, as one JSONL (earlier datasets are read, not rebuilt)."""
    import fsspec

    from storage.export import final_rows
    from tasks.shard import DatasetRef

    with fsspec.open(out, "w", encoding="utf-8", auto_mkdir=True) as handle:
        for entry in ledger:
            ref = DatasetRef(entry["samples"]["stage"], entry["samples"]["key"], 0)
            for row in final_rows(store, ref):
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return out


def nightly_markdown(result: dict[str, Any]) -> str:
    lines = [f"# codeio nightly `{result['stream']}`", "",
             f"sources read: {result['sources_read']}, already processed: {result['already_processed']}, "
             f"new: {result['new_sources']}", "", "| night (run) | finished | new sources | samples | dataset |",
             "|---|---|---|---|---|"]
    for night in result["nights"]:
        lines.append(f"| `{night['run_id']}` | {night['finished_at'][:19]} | {night['new_sources']} | "
                     f"{night['samples']} | `{night['dataset_uri']}` |")
    lines += ["", f"total samples over all nights: {result['total_samples']}"]
    return "\n".join(lines) + "\n"


@flow(name="codeio-nightly", log_prints=True)
def codeio_nightly(
    spec: RunSpec = RunSpec(),  # noqa: B008 - frozen; Prefect renders it as one form section
    stream: str = "default",
    store: str | None = None,
    llm_base_url: EndpointURL | None = None,
    state_dir: str | None = None,
) -> dict[str, Any]:
    """Process only the sources that no earlier nightly run of ``stream`` ingested;
    ``spec.limit`` caps the new sources taken per night (the rest wait for the next),
    ``spec.out`` receives the samples of every night."""
    from prefect.artifacts import create_markdown_artifact

    settings = spec.load_settings(store=store, llm_base_url=llm_base_url)
    result = run_nightly(settings, spec, stream=stream, state_dir=state_dir)
    create_markdown_artifact(markdown=nightly_markdown(result), key="codeio-nightly",
                             description=f"nightly stream {stream}")
    get_run_logger().info("nightly %s: %d new of %d sources, %d samples over %d night(s)", stream,
                          result["new_sources"], result["sources_read"], result["total_samples"], len(result["nights"]))
    return {k: v for k, v in result.items() if k != "summary"} | {
        "samples": (result["summary"] or {}).get("samples", 0)}
