"""The shard files behind ``corpus:`` sources, listed in the flow process without
reading a row: for the nightly ledger (which shards a night took) and the dry run
(rows counted from Parquet footers and sampled JSONL heads)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import fsspec

from codeio.ingest.readers import _expand, _fingerprint, is_remote  # noqa: PLC2701 - the flow's own listing rules
from codeio.settings import Settings
from codeio.sources import SHARD_KINDS, SourceSpec


@dataclass(frozen=True)
class ShardFile:
    spec: SourceSpec
    url: str  # what a ``corpus:`` spec names it by (a local path or protocol://path)
    fs: Any
    path: str  # the path on ``fs``

    def fingerprint(self) -> str:
        """sha256 of a local file (streamed), ETag and size of a remote one: as the ingestion flow keys it."""
        return _fingerprint(self.fs, self.path, not is_remote(self.url))

    def size(self) -> int:
        return int(self.fs.info(self.path).get("size") or 0)


def shard_files(specs: list[SourceSpec], settings: Settings) -> Iterator[ShardFile]:
    """Every shard file of the ``corpus:`` specs, in source order, as the ingestion flow lists them."""
    from flows.ingest import source_storage_options

    options = source_storage_options(settings)
    for spec in specs:
        if spec.kind not in SHARD_KINDS:  # corpus: and rows: shards
            continue
        remote = is_remote(spec.path)
        fs, root = fsspec.core.url_to_fs(spec.path, **(options if remote else {}))
        for path in _expand(fs, root if remote else str(Path(root).expanduser())):
            url = f"{spec.path.split('://', 1)[0]}://{path}" if remote and "://" not in path else path
            yield ShardFile(spec, url, fs, path)
