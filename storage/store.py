"""The dataset store: every byte the pipeline keeps goes through one object.

A :class:`DataStore` is built from a URL (a local folder or ``s3://bucket/prefix``)
plus fsspec storage options. Stages never open files or build URLs themselves.

Layout under the root::

    datasets/<stage>/<dataset_key>/part-00000.parquet     records of shard 0
    datasets/<stage>/<dataset_key>/rejects-00000.parquet  rejected ids + reasons
    datasets/<stage>/<dataset_key>/_parts/00000.json      completion marker, written last
    datasets/<stage>/<dataset_key>/_manifest.json         written after every part is done
    cache/<namespace>/<k[:2]>/<k>                         response / execution caches

A shard is done when its marker exists; a dataset is done when its manifest
exists. Both are written after the data they describe, so a crash leaves at
worst data without a marker, which a rerun overwrites.
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import uuid
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

import fsspec
import polars as pl

from codeio.records import BOOL, FLOAT, INT, REJECT, STR, Schema

_POLARS_TYPES = {STR: pl.String, INT: pl.Int64, FLOAT: pl.Float64, BOOL: pl.Boolean}
OBJECT_STORE_PROTOCOLS = ("s3", "s3a")


def polars_schema(schema: Schema) -> dict[str, Any]:
    return {name: _POLARS_TYPES[kind] for name, kind in schema.fields}


def s3_storage_options(
    endpoint_url: str | None, region: str | None, key: str | None, secret: str | None
) -> dict[str, Any]:
    """s3fs option names (Polars' native cloud I/O names them differently; we
    always go through fsspec, so this is the only translation needed)."""
    options: dict[str, Any] = {}
    if key:
        options["key"] = key
    if secret:
        options["secret"] = secret
    client_kwargs: dict[str, Any] = {}
    if endpoint_url:
        client_kwargs["endpoint_url"] = endpoint_url
    if region:
        client_kwargs["region_name"] = region
    if client_kwargs:
        options["client_kwargs"] = client_kwargs
    return options


@dataclass(frozen=True)
class StoreSpec:
    """What a Dask worker needs to rebuild the store: picklable, small.

    The storage options may carry credentials: they travel to workers but are
    never written to lineage, logs or records (``__repr__`` hides them)."""

    url: str
    storage_options_json: str = "{}"

    def __repr__(self) -> str:
        return f"StoreSpec(url={self.url!r})"

    def open(self) -> "DataStore":
        return DataStore(self.url, json.loads(self.storage_options_json))


class DataStore:
    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None):
        self.url = url.rstrip("/") or url
        self.storage_options = dict(storage_options or {})
        options = dict(self.storage_options)
        if "://" not in self.url or self.url.startswith("file://"):
            options.setdefault("auto_mkdir", True)
        elif self.url.split("://", 1)[0] in OBJECT_STORE_PROTOCOLS:
            # other processes (Dask workers) write here: a cached listing would hide their files
            options.setdefault("use_listings_cache", False)
        self.fs, root = fsspec.core.url_to_fs(self.url, **options)
        self.root = root.rstrip("/")
        self.is_local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,))
        if self.is_local:
            self.fs.makedirs(self.root, exist_ok=True)

    def __repr__(self) -> str:
        return f"DataStore({self.url!r})"

    @property
    def spec(self) -> StoreSpec:
        # a local store travels as an absolute path: a worker's working directory is not the flow's
        return StoreSpec(self.root if self.is_local else self.url, json.dumps(self.storage_options, sort_keys=True))

    # -- paths -----------------------------------------------------------------
    def _path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def uri(self, *parts: str) -> str:
        """A full URL for people and lineage (never carries credentials)."""
        return posixpath.join(self.url, *parts)

    @staticmethod
    def dataset_dir(stage: str, key: str) -> str:
        return posixpath.join("datasets", stage, key)

    # -- raw bytes ---------------------------------------------------------------
    def exists(self, rel: str) -> bool:
        return self.fs.exists(self._path(rel))

    def read_bytes(self, rel: str) -> bytes | None:
        try:
            with self.fs.open(self._path(rel), "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            return None

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Atomic on local disks (temp file + rename) and on S3 (one PUT)."""
        path = self._path(rel)
        if self.is_local:
            # plain os calls: the execution cache writes one small file per cached
            # call, and fsspec's wrappers cost about 3x the write itself
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.tmp-{uuid.uuid4().hex}"
            with open(tmp, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        else:
            with self.fs.open(path, "wb") as handle:
                handle.write(data)

    def read_json(self, rel: str) -> Any | None:
        data = self.read_bytes(rel)
        return None if data is None else json.loads(data)

    def write_json(self, rel: str, value: Any) -> None:
        self.write_bytes(rel, json.dumps(value, indent=1, sort_keys=True, default=str).encode("utf-8"))

    def list_dir(self, rel: str) -> list[str]:
        try:
            return sorted(posixpath.basename(p.rstrip("/")) for p in self.fs.ls(self._path(rel), detail=False))
        except FileNotFoundError:
            return []

    # -- datasets ----------------------------------------------------------------
    def _part_rel(self, stage: str, key: str, kind: str, part: int) -> str:
        return posixpath.join(self.dataset_dir(stage, key), f"{kind}-{part:05d}.parquet")

    def _marker_rel(self, stage: str, key: str, part: int) -> str:
        return posixpath.join(self.dataset_dir(stage, key), "_parts", f"{part:05d}.json")

    def part_marker(self, stage: str, key: str, part: int) -> dict[str, Any] | None:
        return self.read_json(self._marker_rel(stage, key, part))

    def write_part(
        self,
        stage: str,
        key: str,
        part: int,
        schema: Schema,
        records: Sequence[Mapping[str, Any]],
        rejects: Sequence[Mapping[str, Any]],
        stats: Mapping[str, Any],
    ) -> dict[str, Any]:
        """Write a shard's records and rejects, then its completion marker (last)."""
        self.write_bytes(self._part_rel(stage, key, "part", part), _to_parquet(schema, records))
        self.write_bytes(self._part_rel(stage, key, "rejects", part), _to_parquet(REJECT, rejects))
        marker = {"part": part, "records": len(records), "rejected": len(rejects), **stats}
        self.write_json(self._marker_rel(stage, key, part), marker)
        return marker

    def read_part(self, stage: str, key: str, part: int, columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
        return self.read_frame(stage, key, part, columns=columns).to_dicts()

    def read_frame(self, stage: str, key: str, part: int, columns: Sequence[str] | None = None) -> pl.DataFrame:
        data = self.read_bytes(self._part_rel(stage, key, "part", part))
        if data is None:
            raise FileNotFoundError(f"{self.uri(self._part_rel(stage, key, 'part', part))} is missing")
        return pl.read_parquet(io.BytesIO(data), columns=list(columns) if columns else None)

    def read_rejects(self, stage: str, key: str, part: int) -> list[dict[str, Any]]:
        data = self.read_bytes(self._part_rel(stage, key, "rejects", part))
        return [] if data is None else pl.read_parquet(io.BytesIO(data)).to_dicts()

    def manifest(self, stage: str, key: str) -> dict[str, Any] | None:
        return self.read_json(posixpath.join(self.dataset_dir(stage, key), "_manifest.json"))

    def write_manifest(self, stage: str, key: str, manifest: Mapping[str, Any]) -> None:
        self.write_json(posixpath.join(self.dataset_dir(stage, key), "_manifest.json"), dict(manifest))

    def iter_frames(self, stage: str, key: str, columns: Sequence[str] | None = None) -> Iterator[pl.DataFrame]:
        manifest = self.manifest(stage, key)
        if manifest is None:
            raise FileNotFoundError(f"dataset {stage}/{key} has no manifest in {self.url}")
        for part in range(int(manifest["parts"])):
            yield self.read_frame(stage, key, part, columns=columns)

    def dataset_keys(self, stage: str) -> list[str]:
        return self.list_dir(posixpath.join("datasets", stage))

    # -- caches --------------------------------------------------------------------
    def kv(self, namespace: str) -> "StoreCache":
        return StoreCache(self, namespace)


class StoreCache:
    """A key-value byte cache on the store (implements codeio's KeyValueCache)."""

    def __init__(self, store: DataStore, namespace: str):
        self.store = store
        self.namespace = namespace

    def _rel(self, key: str) -> str:
        # fan out on the hash, not on a prefix such as "exec:", so no folder grows huge
        digest = key.rsplit(":", 1)[-1]
        return posixpath.join("cache", self.namespace, digest[:2], key)

    def get(self, key: str) -> bytes | None:
        return self.store.read_bytes(self._rel(key))

    def put(self, key: str, value: bytes) -> None:
        self.store.write_bytes(self._rel(key), value)


def _to_parquet(schema: Schema, records: Sequence[Mapping[str, Any]]) -> bytes:
    columns = schema.columns
    data = {name: [record.get(name) for record in records] for name in columns}
    frame = pl.DataFrame(data, schema=polars_schema(schema), strict=False)
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd")
    return buffer.getvalue()
