"""Corpus readers: plan a source into units (one shard each) without reading its
rows, then read one unit at a time where the shard runs.

``corpus:PATH`` (and ``rows:PATH``, dataset rows with a statement, an entry point
and examples: one "problem" record per row) takes JSONL or Parquet shards: one file, a glob, or a folder of
a downloaded dataset (every ``*.jsonl``, ``*.jsonl.gz``, ``*.jsonl.zst``,
``*.ndjson`` and ``*.parquet`` under it), on local disk or ``s3://`` through the
store's options. Parquet files are split by row groups into units of about
``rows_per_unit`` rows. ``git:PATH`` reads the ``.py`` files git tracks in a
working tree; ``dir:PATH`` every ``.py`` file under a folder (links out of it are
rejected). Rows keep every field but the content as provenance (Python-Edu rows:
``blob_id, repo_name, path, length_bytes, score, int_score``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from codeio.examples import rows as dataset_rows
from codeio.sources import (SHARD_KINDS, ReadOutcome, SourceSpec, SourceSpecError, _check_text, _file_digest, _files_of,
                            _read_jsonl, _read_leetcode, _source_record, link_problem, posixpath_join)
from codeio.records import reject

CORPUS_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".jsonl.zstd", ".ndjson", ".ndjson.gz", ".json.gz",
                   ".parquet")
CONTENT_FIELDS = ("content", "code", "text")
ORIGIN_NAMES = {"path": "path", "repo_name": "repo", "blob_id": "blob_id", "license": "license"}


@dataclass(frozen=True)
class CorpusUnit:
    """One shard of a source: rows of one file (a range of row groups for Parquet)
    or a batch of files of a folder."""

    source: str  # the --source spec it belongs to
    spec_kind: str  # corpus | jsonl | unified | leetcode | dir | git
    spec_path: str  # the path as the user wrote it (provenance)
    kind: str  # "rows" | "files"
    path: str  # the file (rows) or the folder (files)
    fmt: str  # jsonl | parquet | py | leetcode
    fingerprint: str  # content hash / ETag of what the unit reads: the dataset key follows it
    row_groups: tuple[int, ...] = ()  # Parquet: the row groups of this unit (empty: the whole file)
    first_row: int = 0  # row number of the unit's first row in its file (0-based)
    files: tuple[str, ...] = ()  # folder units: paths relative to ``path``
    max_rows: int | None = None  # --limit left for this unit


def is_remote(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def _fmt_of(path: str) -> str:
    return "parquet" if path.lower().endswith(".parquet") else "jsonl"


def _expand(fs: Any, path: str) -> list[str]:
    """The corpus files behind a path, glob or folder, sorted."""
    if any(ch in path for ch in "*?["):
        found = sorted(fs.glob(path))
    elif fs.isdir(path):
        found = sorted(p for p in fs.find(path) if p.lower().endswith(CORPUS_SUFFIXES))
    elif fs.exists(path):
        found = [path]
    else:
        raise SourceSpecError(f"corpus source {path!r} does not exist")
    files = [p for p in found if not fs.isdir(p)]
    if not files:
        raise SourceSpecError(f"corpus source {path!r} holds no .jsonl[.gz|.zst] or .parquet file")
    return files


def _fingerprint(fs: Any, path: str, local: bool) -> str:
    if not local:
        info = fs.info(path)
        tag = info.get("ETag") or info.get("etag") or ""
        return f"etag:{str(tag).strip(chr(34))}:{info.get('size')}"
    digest = hashlib.sha256()
    with fs.open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _parquet_units(fs: Any, spec: SourceSpec, path: str, print_: str, rows_per_unit: int) -> list[CorpusUnit]:
    import pyarrow.parquet as pq

    with fs.open(path, "rb") as handle:
        meta = pq.ParquetFile(handle).metadata
    units, group, rows, first = [], [], 0, 0
    for index in range(meta.num_row_groups):
        group.append(index)
        rows += meta.row_group(index).num_rows
        if rows >= rows_per_unit:
            units.append(CorpusUnit(spec.display, spec.kind, spec.path, "rows", path, "parquet", print_, tuple(group), first))
            first += rows
            group, rows = [], 0
    if group or not units:
        units.append(CorpusUnit(spec.display, spec.kind, spec.path, "rows", path, "parquet", print_, tuple(group), first))
    if len(units) == 1:  # the whole file: no row-group list to carry
        units = [CorpusUnit(spec.display, spec.kind, spec.path, "rows", path, "parquet", print_)]
    return units


def git_files(root: Path) -> list[str]:
    try:
        done = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--", "*.py"], capture_output=True,
                              timeout=120, check=False)
    except (OSError, subprocess.SubprocessError) as error:
        raise SourceSpecError(f"git source {root}: cannot run git: {error}") from error
    if done.returncode != 0:
        raise SourceSpecError(f"git source {root} is not a git working tree: "
                              f"{done.stderr.decode('utf-8', 'replace').strip()}")
    return sorted(name for name in done.stdout.decode("utf-8", "surrogateescape").split("\0") if name)


def plan_units(specs: list[SourceSpec], open_fs: Callable[[str], tuple[Any, str]], rows_per_unit: int,
               files_per_unit: int) -> list[CorpusUnit]:
    """List every source's units in source order (files are listed and fingerprinted,
    never parsed). ``open_fs(url)`` gives (filesystem, path) with the store's options."""
    units: list[CorpusUnit] = []
    for spec in specs:
        if spec.kind in ("dir", "git"):
            root = spec.resolved
            if spec.kind == "git":
                names = [n for n in git_files(root) if (root / n).is_file() or (root / n).is_symlink()]
            else:
                names = [rel for rel, _ in _files_of(spec)]
            prints = {name: _file_digest(root, root / name) for name in names}
            for start in range(0, max(1, len(names)), files_per_unit):
                batch = tuple(names[start:start + files_per_unit])
                print_ = hashlib.sha256(json.dumps([[n, str(prints.get(n))] for n in batch]).encode()).hexdigest()
                units.append(CorpusUnit(spec.display, spec.kind, spec.path, "files", str(root), "py", print_, files=batch))
            continue
        if spec.kind == "leetcode":  # problem folders (small, local): one unit, read as the pipeline reads them
            root = spec.resolved
            print_ = hashlib.sha256(json.dumps([[rel, _file_digest(root, path)] for rel, path in _files_of(spec)])
                                    .encode()).hexdigest()
            units.append(CorpusUnit(spec.display, spec.kind, spec.path, "rows", str(root), "leetcode", print_))
            continue
        if spec.kind not in SHARD_KINDS:
            # jsonl: / unified: files (small, local): one unit each
            path = spec.resolved
            units.append(CorpusUnit(spec.display, spec.kind, spec.path, "rows", str(path), "jsonl",
                                    _file_digest(path.parent, path)))
            continue
        fs, root = open_fs(spec.path)
        local = not is_remote(spec.path)
        for path in _expand(fs, root if not local else str(Path(root).expanduser())):
            print_ = _fingerprint(fs, path, local)
            full = path if local or "://" in path else f"{spec.path.split('://', 1)[0]}://{path}"
            if _fmt_of(path) == "parquet":
                units.extend(_parquet_units(fs, spec, full if not local else path, print_, rows_per_unit))
            else:
                units.append(CorpusUnit(spec.display, spec.kind, spec.path, "rows", full if not local else path, "jsonl", print_))
    return units


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, (_dt.date, _dt.datetime, _dt.time)):
        return value.isoformat()
    return str(value)


def corpus_row(spec: SourceSpec, row: dict[str, Any], row_number: int, record_id: str, max_bytes: int,
               file_path: str) -> ReadOutcome:
    """A corpus row: its content, and every other field as provenance."""
    field = next((name for name in CONTENT_FIELDS if isinstance(row.get(name), str)), None)
    if field is None:
        return ReadOutcome(None, reject(record_id, "malformed_row", f"no string field among {list(CONTENT_FIELDS)}"))
    text, reason, detail = _check_text(row[field].encode("utf-8", "surrogatepass"), max_bytes)
    if text is None:
        return ReadOutcome(None, reject(record_id, reason or "invalid", detail))
    origin: dict[str, Any] = {"source": spec.display, "path": row.get("path") or file_path, "repo": row.get("repo_name"),
                              "blob_id": row.get("blob_id"), "row": row_number, "file": file_path,
                              "license": row.get("license") or row.get("licenses")}
    for name, value in row.items():
        if name != field and name not in ORIGIN_NAMES and name not in origin:
            origin[name] = _json_safe(value)
    origin["license"] = _json_safe(origin["license"])
    return ReadOutcome(_source_record(spec, "raw", origin, text, None), None)


def problem_row(spec: SourceSpec, row: dict[str, Any], row_number: int, record_id: str, max_bytes: int,
                file_path: str) -> ReadOutcome:
    """A dataset row with a statement, an entry point and examples: one "problem"
    record (its code as content, statement and examples as the payload), or a
    reject naming why (``unrecognised_row_layout`` lists the row's fields)."""
    read = dataset_rows.read_row(row)
    if isinstance(read, str):
        return ReadOutcome(None, reject(record_id, read, f"fields {sorted(row)[:20]}; known layouts: "
                                        f"{', '.join(dataset_rows.LAYOUTS)} (codeio/examples/rows.py)"))
    code, payload = read
    text, reason, detail = _check_text(code.encode("utf-8", "surrogatepass"), max_bytes)
    if text is None:
        return ReadOutcome(None, reject(record_id, reason or "invalid", detail))
    if len(json.dumps(payload)) > max_bytes:
        return ReadOutcome(None, reject(record_id, "too_large", f"statement and examples over {max_bytes} bytes"))
    origin: dict[str, Any] = {"source": spec.display, "path": file_path, "row": row_number, "file": file_path,
                              "layout": payload["layout"], "problem": payload.get("title"),
                              "license": _json_safe(row.get("license"))}
    return ReadOutcome(_source_record(spec, "problem", origin, text, payload), None)


def read_unit(unit: CorpusUnit, open_file: Callable[[str], Any], max_bytes: int) -> Iterator[ReadOutcome]:
    """Every row or file of one unit, as records or rejects (in order)."""
    spec = SourceSpec(unit.spec_kind, unit.spec_path, unit.source)
    if unit.kind == "files":
        yield from _read_files(unit, spec, max_bytes)
        return
    if unit.spec_kind in ("jsonl", "unified", "leetcode"):  # rows as the pipeline always read them
        reader = _read_leetcode if unit.spec_kind == "leetcode" else _read_jsonl
        for number, outcome in enumerate(reader(spec, max_bytes), start=1):
            if unit.max_rows is not None and number > unit.max_rows:
                return
            yield outcome
        return
    rows = _iter_rows(unit, open_file)
    for number, row in enumerate(rows, start=unit.first_row + 1):
        if unit.max_rows is not None and number - unit.first_row > unit.max_rows:
            return
        record_id = f"{unit.source}#{Path(unit.path).name}:row{number}"
        if isinstance(row, ReadOutcome):
            yield row if row.rejected is None else ReadOutcome(None, dict(row.rejected, record_id=record_id))
        elif not isinstance(row, dict):
            yield ReadOutcome(None, reject(record_id, "malformed_row", "row is not a JSON object"))
        elif unit.spec_kind == "rows":
            yield problem_row(spec, row, number, record_id, max_bytes, unit.path)
        else:
            yield corpus_row(spec, row, number, record_id, max_bytes, unit.path)


def _iter_rows(unit: CorpusUnit, open_file: Callable[[str], Any]) -> Iterator[Any]:
    if unit.fmt == "parquet":
        import pyarrow.parquet as pq

        with open_file(unit.path) as handle:
            parquet = pq.ParquetFile(handle)
            for batch in parquet.iter_batches(batch_size=512, row_groups=list(unit.row_groups) or None):
                yield from batch.to_pylist()
        return
    with open_file(unit.path) as handle:  # compression from the name (gzip, zstd)
        for line in lines(handle):
            if not line.strip():
                yield ReadOutcome(None, reject("", "empty", "blank line"))
                continue
            try:
                yield json.loads(line)
            except (ValueError, RecursionError) as error:
                yield ReadOutcome(None, reject("", "malformed_row", f"not JSON: {error}"))


def lines(handle: Any, block: int = 1 << 20) -> Iterator[bytes]:
    """Lines of a binary stream (decompressing readers need not iterate by line)."""
    rest = b""
    for chunk in iter(lambda: handle.read(block), b""):
        parts = (rest + chunk).split(b"\n")
        rest = parts.pop()
        yield from parts
    if rest:
        yield rest


def _read_files(unit: CorpusUnit, spec: SourceSpec, max_bytes: int) -> Iterator[ReadOutcome]:
    root = Path(unit.path)
    for count, rel in enumerate(unit.files, start=1):
        if unit.max_rows is not None and count > unit.max_rows:
            return
        path = root / rel
        record_id = f"{unit.source}/{rel}"
        problem = link_problem(root, path)
        if problem is not None:
            yield ReadOutcome(None, reject(record_id, "link_outside_source" if "outside" in problem else "broken_link",
                                           problem))
            continue
        try:
            raw = path.read_bytes()
        except OSError as error:
            yield ReadOutcome(None, reject(record_id, "unreadable", f"{type(error).__name__}: {error}"))
            continue
        text, reason, detail = _check_text(raw, max_bytes)
        if text is None:
            yield ReadOutcome(None, reject(record_id, reason or "invalid", detail))
            continue
        origin = {"source": unit.source, "path": posixpath_join(unit.spec_path, rel), "license": None}
        yield ReadOutcome(_source_record(spec, "raw", origin, text, None), None)

