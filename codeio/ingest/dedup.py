"""Exact and near-duplicate detection (MinHash LSH), within and across sources.

Exact: sha256 of the content with whitespace normalized (line endings, trailing
blanks, blank lines). Near: MinHash over 5-grams of code tokens, banded LSH
tuned for a Jaccard threshold of 0.7 (the code-data literature's choice), and
every LSH candidate confirmed by the signatures' estimated Jaccard before a file
is dropped. Signatures are computed per shard on the workers (numpy, one
multiply-shift hash family, no Python loop per shingle); the resolver walks the
signatures in corpus order and keeps the first copy, so every reject names the
kept copy it duplicates and reruns decide the same way.

The walk is partitioned: two files can only ever meet in it when they share an
LSH band key (equal contents share all of them) or an exact hash, so the
connected components of that relation (``components``) are independent, and
walking any union of whole components decides each of its files exactly as one
walk over the whole corpus would. Ties between kept copies equally similar to a
file go to the earliest kept copy in corpus order.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterable, Iterator

import numpy as np

TOKEN_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d+)?|[^\sA-Za-z0-9_]")
MIX = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit constant combining token hashes into a shingle hash


@dataclass(frozen=True)
class DedupConfig:
    """Exact dedup is always on: equal contents share a source_id, which must stay unique."""

    near: bool = True
    threshold: float = 0.7  # estimated Jaccard of 5-gram sets at which a file is a near duplicate
    ngram: int = 5
    num_perm: int = 128
    seed: int = 1


def normalized_hash(text: str) -> str:
    lines = (line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    return hashlib.sha256("\n".join(line for line in lines if line).encode("utf-8", "surrogatepass")).hexdigest()


def tokens(text: str) -> list[str]:
    return TOKEN_PATTERN.findall(text)


def token_hashes(items: Iterable[str], cache: dict[str, int] | None = None) -> np.ndarray:
    cache = {} if cache is None else cache
    out = []
    for item in items:
        value = cache.get(item)
        if value is None:
            value = cache[item] = zlib.crc32(item.encode("utf-8", "surrogatepass"))
        out.append(value)
    return np.asarray(out, dtype=np.uint64)


def shingle_hashes(hashes: np.ndarray, n: int) -> np.ndarray:
    """One 64-bit hash per n-gram of consecutive token hashes (a rolling polynomial
    in uint64, wrapping; vectorized). Fewer than n tokens: one shingle of all."""
    if hashes.size == 0:
        return hashes
    if hashes.size < n:
        n = hashes.size
    with np.errstate(over="ignore"):
        combined = hashes[: hashes.size - n + 1].copy()
        for offset in range(1, n):
            combined = combined * MIX + hashes[offset: hashes.size - n + 1 + offset]
    return np.unique(combined)


@lru_cache(maxsize=8)
def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) | np.uint64(1)  # odd multipliers
    b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
    return a, b


def minhash(shingles: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    """num_perm 32-bit minima of the multiply-add-shift family h(x) = (a*x + b) >> 32."""
    if shingles.size == 0:
        return np.full(num_perm, np.iinfo(np.uint32).max, dtype=np.uint32)
    a, b = _permutations(num_perm, seed)
    keys = (shingles ^ (shingles >> np.uint64(32))) & np.uint64(0xFFFFFFFF)
    with np.errstate(over="ignore"):
        values = (keys[:, None] * a[None, :] + b[None, :]) >> np.uint64(32)
    return values.min(axis=0).astype(np.uint32)


def signature(text: str, config: DedupConfig, cache: dict[str, int] | None = None) -> np.ndarray:
    return minhash(shingle_hashes(token_hashes(tokens(text), cache), config.ngram), config.num_perm, config.seed)


def signature_hex(text: str, config: DedupConfig, cache: dict[str, int] | None = None) -> str:
    return signature(text, config, cache).tobytes().hex()


def _false_rates(threshold: float, bands: int, rows: int, steps: int = 200) -> tuple[float, float]:
    xs = np.linspace(0, 1, steps + 1)
    probability = 1 - (1 - xs ** rows) ** bands
    below, above = xs <= threshold, xs >= threshold
    fp = float(np.trapezoid(probability[below], xs[below])) if below.sum() > 1 else 0.0
    fn = float(np.trapezoid(1 - probability[above], xs[above])) if above.sum() > 1 else 0.0
    return fp, fn


@lru_cache(maxsize=16)
def lsh_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) minimizing false positives + false negatives around the
    threshold, as datasketch's MinHashLSH chooses them."""
    best, best_error = (1, num_perm), float("inf")
    for bands in range(1, num_perm + 1):
        rows = num_perm // bands
        if rows == 0:
            break
        fp, fn = _false_rates(threshold, bands, rows)
        if fp + fn < best_error:
            best, best_error = (bands, rows), fp + fn
    return best


@dataclass(frozen=True)
class Candidate:
    """What the resolver needs of one file (never its content)."""

    source_id: str
    order: tuple[int, int]  # (part, row) in corpus order: the earlier copy is kept
    exact_hash: str
    minhash: str  # hex of num_perm uint32 values, or "" when near dedup is off
    name: str  # how a reject names it: source and path


@dataclass(frozen=True)
class Duplicate:
    source_id: str
    order: tuple[int, int]
    reason: str  # exact_duplicate | near_duplicate
    kept_id: str
    kept_name: str
    similarity: float


def resolve(candidates: Iterable[Candidate], config: DedupConfig) -> Iterator[Duplicate]:
    """Walk the files in corpus order; a file equal to, or estimated at least
    ``threshold`` similar to, a kept one is a duplicate of the most similar kept
    one. Memory: the kept files' hashes and signatures, never contents."""
    bands, rows = lsh_bands(config.threshold, config.num_perm)
    exact: dict[str, tuple[str, str]] = {}
    tables: list[dict[bytes, list[int]]] = [{} for _ in range(bands)]
    kept_ids: list[tuple[str, str]] = []
    kept_sigs = np.empty((1024, config.num_perm), dtype=np.uint32)  # grows by doubling
    for item in sorted(candidates, key=lambda c: c.order):
        if item.exact_hash in exact:
            kept_id, kept_name = exact[item.exact_hash]
            yield Duplicate(item.source_id, item.order, "exact_duplicate", kept_id, kept_name, 1.0)
            continue
        if config.near and item.minhash:
            sig = np.frombuffer(bytes.fromhex(item.minhash), dtype=np.uint32)
            keys = [sig[band * rows:(band + 1) * rows].tobytes() for band in range(bands)]
            found: set[int] = set()
            for band, key in enumerate(keys):
                found.update(tables[band].get(key, ()))
            if found:  # LSH candidates, confirmed by the signatures' estimated Jaccard (one numpy op)
                indexes = np.sort(np.fromiter(found, dtype=np.int64, count=len(found)))  # ties: earliest kept copy
                similarity = (kept_sigs[indexes] == sig).mean(axis=1)
                best = int(np.argmax(similarity))
                if similarity[best] >= config.threshold:
                    kept_id, kept_name = kept_ids[int(indexes[best])]
                    yield Duplicate(item.source_id, item.order, "near_duplicate", kept_id, kept_name,
                                    round(float(similarity[best]), 3))
                    continue
            for band, key in enumerate(keys):
                tables[band].setdefault(key, []).append(len(kept_ids))
            if len(kept_ids) == len(kept_sigs):
                kept_sigs = np.concatenate([kept_sigs, np.empty_like(kept_sigs)])
            kept_sigs[len(kept_ids)] = sig
            kept_ids.append((item.source_id, item.name))
        exact.setdefault(item.exact_hash, (item.source_id, item.name))


def band_keys(minhash_hex: list[str], config: DedupConfig) -> np.ndarray:
    """One 63-bit key per (file, LSH band) for the bands ``resolve`` indexes, from
    the signatures' hex (vectorized; -1 where a file has no signature). Equal band
    values give equal keys; unequal ones may collide, which only merges components
    (never splits one), so a partition stays a union of whole components."""
    bands, rows = lsh_bands(config.threshold, config.num_perm)
    keys = np.full((len(minhash_hex), bands), -1, dtype=np.int64)
    present = np.array([bool(config.near and text) for text in minhash_hex], dtype=bool)
    if not present.any():
        return keys
    signatures = np.frombuffer(bytes.fromhex("".join(t for t, p in zip(minhash_hex, present) if p)),
                               dtype=np.uint32).reshape(-1, config.num_perm).astype(np.uint64)
    with np.errstate(over="ignore"):
        for band in range(bands):
            combined = np.zeros(len(signatures), dtype=np.uint64)
            for value in signatures[:, band * rows:(band + 1) * rows].T:
                combined = (combined + value + np.uint64(1)) * MIX
            keys[present, band] = (combined >> np.uint64(1)).astype(np.int64)
    return keys


def components(exact_hashes: list[str], keys: np.ndarray) -> np.ndarray:
    """Connected components of files linked by an equal exact hash or an equal LSH
    band key (``band_keys``; -1: none): for each file, the index of the first file
    (in the given order) of its component. Label propagation, vectorized: every
    round gives each file the smallest label of any group it is in."""
    count = len(exact_hashes)
    labels = np.arange(count, dtype=np.int64)
    if count == 0:
        return labels
    groups = [np.unique(np.asarray(exact_hashes, dtype=object), return_inverse=True)[1].astype(np.int64)]
    for band in range(keys.shape[1]):
        column = keys[:, band]
        inverse = np.unique(column, return_inverse=True)[1].astype(np.int64)
        none = column < 0
        if none.any():  # files without a signature share no band: a group of their own each
            inverse = np.where(none, inverse.max() + 1 + np.arange(count), inverse)
        groups.append(inverse)
    while True:
        before = labels.copy()
        for group in groups:
            smallest = np.full(int(group.max()) + 1, count, dtype=np.int64)
            np.minimum.at(smallest, group, labels)
            labels = smallest[group]
        if np.array_equal(labels, before):
            return labels


def describe(duplicate: Duplicate) -> str:
    how = "same normalized content as" if duplicate.reason == "exact_duplicate" else \
        f"estimated Jaccard {duplicate.similarity:.2f} with"
    return f"{how} the kept copy {duplicate.kept_name} (source_id {duplicate.kept_id})"

