"""Reading sources: code-corpus JSONL, folders of .py files, unified rows.

``--source SPEC`` forms: ``jsonl:PATH``, ``dir:PATH``, ``unified:PATH``,
``leetcode:PATH`` (problem folders: a statement README_EN.md next to a
Solution.py, read as one "problem" record each), ``rows:PATH`` (dataset rows
with a statement, an entry point and examples, see codeio.examples.rows; read by
the ingestion flow like ``corpus:``) and ``sample`` (the corpus
shipped in the package). Every row read becomes either a
SourceFile record or a reject with a reason; ``limit`` counts rows in source
order before any filtering, so ``--limit N`` is the first N rows.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from codeio.examples import leetcode
from codeio.records import dumps, reject, stable_id

SAMPLE_SPEC = "sample"
SOURCE_KINDS = ("jsonl", "dir", "unified", "leetcode", "corpus", "git", "rows")
# read shard by shard on the workers by the ingestion flow (codeio/ingest); never by read_sources
SCALE_KINDS = ("corpus", "git", "rows")
# shards listed through the store's options: a path may be a glob or an s3:// URL
SHARD_KINDS = ("corpus", "rows")
CORPUS_DIR = Path(__file__).resolve().parent / "corpus"
MAX_SOURCE_BYTES_DEFAULT = 256 * 1024


class SourceSpecError(ValueError):
    pass


@dataclass(frozen=True)
class SourceSpec:
    kind: str  # jsonl | dir | unified | leetcode
    path: str  # as the user wrote it (kept in provenance); sample paths are package-relative
    display: str  # the spec string

    @property
    def resolved(self) -> Path:
        if self.path.startswith("codeio/corpus"):
            return CORPUS_DIR.joinpath(*Path(self.path).parts[2:])
        return Path(self.path).expanduser()


def parse_source_specs(specs: list[str] | tuple[str, ...]) -> list[SourceSpec]:
    out: list[SourceSpec] = []
    for spec in specs or [SAMPLE_SPEC]:
        spec = spec.strip()
        if spec == SAMPLE_SPEC:
            out.append(SourceSpec("unified", "codeio/corpus/unified.jsonl", "sample:unified"))
            out.append(SourceSpec("dir", "codeio/corpus/raw", "sample:raw"))
            continue
        kind, sep, path = spec.partition(":")
        if not sep or kind not in SOURCE_KINDS or not path:
            raise SourceSpecError(
                f"bad source {spec!r}: expected one of jsonl:PATH, dir:PATH, unified:PATH, leetcode:PATH, "
                f"corpus:PATH|GLOB|s3://..., rows:PATH|GLOB|s3://..., git:PATH or {SAMPLE_SPEC!r}"
            )
        out.append(SourceSpec(kind, path, spec))
    for source in out:
        if source.kind in SHARD_KINDS and ("://" in source.path or any(ch in source.path for ch in "*?[")):
            continue  # listed (and checked) by the ingestion flow through the store's options
        if not source.resolved.exists():
            raise SourceSpecError(f"source {source.display!r}: {source.resolved} does not exist")
    return out


def fingerprint_sources(sources: list[SourceSpec]) -> list[list[str]]:
    """Content hashes of the files behind the specs: the ingest dataset key depends
    on what the files say and on the paths as written in the specs (provenance
    records carry them), never on modification times."""
    prints: list[list[str]] = []
    for source in sources:
        for rel, path in _files_of(source):
            prints.append([source.kind, source.path, rel, _file_digest(source.resolved, path)])
    return prints


def _files_of(source: SourceSpec) -> list[tuple[str, Path]]:
    root = source.resolved
    if source.kind == "dir":
        # links are listed too (read_dir rejects those that leave the folder); rglob never enters linked folders
        return [(p.relative_to(root).as_posix(), p) for p in sorted(root.rglob("*.py")) if p.is_file() or p.is_symlink()]
    if source.kind == "leetcode":
        return [(p.relative_to(root).as_posix(), p) for folder in leetcode.problem_folders(root)
                for p in (folder / leetcode.STATEMENT_FILE, folder / leetcode.SOLUTION_FILE) if p.is_file()]
    return [("", root)]


def link_problem(root: Path, path: Path) -> str | None:
    """Why a file of a folder source must not be read: a link out of the folder
    (it could point at anything the process may read) or a broken link."""
    if not path.is_symlink():
        return None
    target = path.resolve()
    if not target.is_relative_to(root.resolve()):
        return f"a link to {target}, outside the source folder: not followed"
    if not target.is_file():
        return f"a broken link to {target}"
    return None


def _file_digest(root: Path, path: Path) -> str:
    problem = link_problem(root, path)
    if problem is not None:  # never read what a link out of the folder points at
        return hashlib.sha256(f"link:{os.readlink(path)}".encode("utf-8", "surrogateescape")).hexdigest()
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ReadOutcome:
    record: dict[str, Any] | None
    rejected: dict[str, str] | None


def read_sources(
    sources: list[SourceSpec], limit: int | None = None, max_bytes: int = MAX_SOURCE_BYTES_DEFAULT
) -> Iterator[ReadOutcome]:
    """Yield one outcome per row in source order, at most ``limit`` rows."""
    count = 0
    for source in sources:
        reader = {"dir": _read_dir, "leetcode": _read_leetcode}.get(source.kind, _read_jsonl)
        for outcome in reader(source, max_bytes):
            if limit is not None and count >= limit:
                return
            count += 1
            yield outcome


def _source_record(source: SourceSpec, kind: str, origin: dict[str, Any], content: str, unified: Any) -> dict[str, Any]:
    unified_text = dumps(unified) if unified is not None else None
    return {
        "source_id": stable_id(kind, content, unified_text),
        "source_name": source.display,
        "kind": kind,
        "origin": dumps(origin),
        "content": content,
        "unified": unified_text,
    }


def _check_text(raw: bytes, max_bytes: int) -> tuple[str | None, str | None, str]:
    """(text, reason, detail): reject what cannot be code at all."""
    if not raw.strip():
        return None, "empty", "no content"
    if len(raw) > max_bytes:
        return None, "too_large", f"{len(raw)} bytes > {max_bytes}"
    if b"\x00" in raw:
        return None, "binary", "contains NUL bytes"
    try:
        return raw.decode("utf-8"), None, ""
    except UnicodeDecodeError as error:
        return None, "undecodable", f"not UTF-8: {error}"


def _read_dir(source: SourceSpec, max_bytes: int) -> Iterator[ReadOutcome]:
    for rel, path in _files_of(source):
        record_id = f"{source.display}/{rel}"
        problem = link_problem(source.resolved, path)
        if problem is not None:
            yield ReadOutcome(None, reject(record_id, "link_outside_source" if "outside" in problem else "broken_link",
                                           problem))
            continue
        text, reason, detail = _check_text(path.read_bytes(), max_bytes)
        if text is None:
            yield ReadOutcome(None, reject(record_id, reason or "invalid", detail))
            continue
        origin = {"source": source.display, "path": posixpath_join(source.path, rel), "license": None}
        yield ReadOutcome(_source_record(source, "raw", origin, text, None), None)


def _read_leetcode(source: SourceSpec, max_bytes: int) -> Iterator[ReadOutcome]:
    """One "problem" record per folder: the solution as content, the statement
    (title, difficulty, description HTML) as the payload."""
    root = source.resolved
    for folder in leetcode.problem_folders(root):
        rel = folder.relative_to(root).as_posix()
        record_id = f"{source.display}/{rel}"
        solution = folder / leetcode.SOLUTION_FILE
        if not solution.is_file() and not solution.is_symlink():
            yield ReadOutcome(None, reject(record_id, "no_python_solution", f"no {leetcode.SOLUTION_FILE} in {rel}"))
            continue
        problem = link_problem(root, solution) or link_problem(root, folder / leetcode.STATEMENT_FILE)
        if problem is not None:
            yield ReadOutcome(None, reject(record_id, "link_outside_source" if "outside" in problem else "broken_link",
                                           problem))
            continue
        text, reason, detail = _check_text(solution.read_bytes(), max_bytes)
        readme, readme_reason, readme_detail = _check_text((folder / leetcode.STATEMENT_FILE).read_bytes(), max_bytes)
        if text is None or readme is None:
            yield ReadOutcome(None, reject(record_id, reason or readme_reason or "invalid", detail or readme_detail))
            continue
        payload = leetcode.read_statement(readme)
        if payload is None:
            yield ReadOutcome(None, reject(record_id, "no_statement", f"no description section in {rel}/{leetcode.STATEMENT_FILE}"))
            continue
        origin = {"source": source.display, "path": posixpath_join(source.path, rel, leetcode.SOLUTION_FILE),
                  "problem": payload["title"], "url": payload["url"], "license": None}
        yield ReadOutcome(_source_record(source, "problem", origin, text, payload), None)


def posixpath_join(*parts: str) -> str:
    joined = "/".join(p.strip("/") for p in parts if p)
    return "/" + joined if parts and parts[0].startswith("/") else joined


UNIFIED_REQUIRED = ("refcode", "ios")


def _read_jsonl(source: SourceSpec, max_bytes: int) -> Iterator[ReadOutcome]:
    with source.resolved.open("rb") as handle:
        for row_number, line in enumerate(handle, start=1):
            record_id = f"{source.display}#row{row_number}"
            if not line.strip():
                yield ReadOutcome(None, reject(record_id, "empty", "blank line"))
                continue
            try:
                row = json.loads(line)
            except (ValueError, RecursionError) as error:  # bad JSON, bad UTF-8, over-long integers
                yield ReadOutcome(None, reject(record_id, "malformed_row", f"not JSON: {error}"))
                continue
            if not isinstance(row, dict):
                yield ReadOutcome(None, reject(record_id, "malformed_row", "row is not a JSON object"))
                continue
            yield _row_outcome(source, row, row_number, record_id, max_bytes)


def _row_outcome(source: SourceSpec, row: dict[str, Any], row_number: int, record_id: str, max_bytes: int) -> ReadOutcome:
    field = "refcode" if source.kind == "unified" else "content"
    content = row.get(field)
    if not isinstance(content, str):
        return ReadOutcome(None, reject(record_id, "malformed_row", f"missing string field {field!r}"))
    text, reason, detail = _check_text(content.encode("utf-8", "surrogatepass"), max_bytes)
    if text is None:
        return ReadOutcome(None, reject(record_id, reason or "invalid", detail))
    meta = row.get("meta") if isinstance(row.get("meta"), dict) else {}
    origin = {
        "source": source.display,
        "path": row.get("path") or source.path,
        "repo": row.get("repo_name"),
        "blob_id": row.get("blob_id"),
        "row": row_number,
        "license": row.get("license") or meta.get("license"),
    }
    if source.kind == "unified":
        ios = row.get("ios")
        if not isinstance(ios, list) or not all(isinstance(p, dict) and "input" in p and "output" in p for p in ios):
            return ReadOutcome(None, reject(record_id, "malformed_row", "ios must be a list of {input, output}"))
        unified = {
            "problem_description": row.get("problem_description") or "",
            "io_requirements": row.get("io_requirements") or "",
            "funcname": row.get("funcname") or "main_solution",
            "ios": ios,
            "input_generator": row.get("input_generator"),
            "category": row.get("category"),
            "meta": row.get("meta"),
        }
        if meta:
            origin["meta"] = meta
        return ReadOutcome(_source_record(source, "unified", origin, text, unified), None)
    for extra in ("score", "int_score", "length_bytes"):
        if extra in row:
            origin[extra] = row[extra]
    return ReadOutcome(_source_record(source, "raw", origin, text, None), None)
