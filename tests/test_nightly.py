"""The nightly incremental flow: a second night processes only the rows appended
to the source since the first; earlier nights' datasets are reused, not rebuilt."""

from __future__ import annotations

import json
from pathlib import Path

from flows.nightly import codeio_nightly
from storage.lineage import LineageDB

CORPUS = Path(__file__).resolve().parents[1] / "codeio" / "corpus" / "unified.jsonl"


def _samples(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_second_night_processes_only_new_rows(env, prefect_harness):
    rows = CORPUS.read_text().splitlines()
    source = env / "incoming.jsonl"
    source.write_text("\n".join(rows[:3]) + "\n")
    params = {"sources": [f"unified:{source}"], "teacher": "offline", "state_dir": str(env / "state"),
              "pairs_per_function": 2}

    first = codeio_nightly(**params, out=str(env / "night1.jsonl"))
    assert (first["new_sources"], first["already_processed"], len(first["nights"])) == (3, 0, 1)
    night1 = _samples(env / "night1.jsonl")
    assert night1 and len({s["source_id"] for s in night1}) == 3

    # a quiet night: nothing new, nothing run
    quiet = codeio_nightly(**params)
    assert (quiet["new_sources"], quiet["already_processed"], quiet["run_id"]) == (0, 3, None)

    with source.open("a") as handle:  # two new functions arrive
        handle.write("\n".join(rows[3:5]) + "\n")
    second = codeio_nightly(**params, out=str(env / "all.jsonl"))
    assert (second["new_sources"], second["already_processed"], len(second["nights"])) == (2, 3, 2)

    with LineageDB(f"sqlite:///{env / 'lineage.db'}") as lineage:
        run = lineage.get_run(second["run_id"])
        assert run["kind"] == "nightly:default" and run["status"] == "completed"
        ingest = [s for s in lineage.stage_totals(second["run_id"]) if s["stage"] == "ingest"][0]
        assert ingest["records_out"] == 2  # only the new rows were ingested
        normalize = [s for s in lineage.stage_totals(second["run_id"]) if s["stage"] == "normalize"][0]
        assert normalize["records_in"] == 2 and normalize["cached_shards"] == 0
        # the first night's datasets were read, never recomputed
        first_run = lineage.get_run(first["run_id"])
        for dataset in first_run["datasets"]:
            assert [r["run_id"] for r in lineage.runs_for_dataset(dataset["dataset_key"])] == [first["run_id"]]
            assert lineage.stage_computations(dataset["dataset_key"]) >= 1

    everything = _samples(env / "all.jsonl")
    assert everything[: len(night1)] == night1  # earlier samples reused as they were
    new_ids = {s["source_id"] for s in everything[len(night1):]}
    assert len(new_ids) == 2 and not new_ids & {s["source_id"] for s in night1}
    assert second["total_samples"] == len(everything)


def test_delta_files_keep_source_ids_and_origins(tmp_path):
    """Rows re-read from a delta file are the same sources (same content hash) with the
    same origin paths, for raw files of a folder and for unified rows."""
    from codeio.sources import parse_source_specs, read_sources
    from flows.nightly import new_records, write_delta

    folder = tmp_path / "repo"
    (folder / "pkg").mkdir(parents=True)
    (folder / "pkg" / "a.py").write_text("def f(x):\n    return x + 1\n")
    (folder / "b.py").write_text("def g(s):\n    return s[::-1]\n")
    specs = parse_source_specs([f"dir:{folder}", f"unified:{CORPUS}"])
    fresh, total, already = new_records(specs, seen=set(), limit=4)
    assert (len(fresh), already) == (4, 0) and total > 4
    delta = write_delta(fresh, tmp_path / "state")
    assert [spec.split(":", 1)[0] for spec in delta] == ["unified", "jsonl"]
    assert write_delta(fresh, tmp_path / "state") == delta  # named by content: the same night, the same files
    again = [o.record for o in read_sources(parse_source_specs(delta))]
    assert sorted(r["source_id"] for r in again) == sorted(r["source_id"] for r in fresh)
    def raw_paths(records):
        return sorted(json.loads(r["origin"])["path"] for r in records if r["kind"] == "raw")

    assert raw_paths(again) == raw_paths(fresh) and [p.rsplit("/", 1)[-1] for p in raw_paths(again)] == ["b.py", "a.py"]
    seen = {r["source_id"] for r in fresh[:2]}
    rest, _, already = new_records(specs, seen=seen, limit=None)
    assert already == 2 and not {r["source_id"] for r in rest} & seen


def test_two_overlapping_nights_record_and_export_the_new_sources_once(env, prefect_harness):
    """A nightly run started while another is still running must not process (and
    record) the same new sources a second time: exports would hold them twice."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from codeio.settings import load_settings
    from flows.nightly import read_ledger, run_nightly
    from storage.store import DataStore

    source = env / "incoming.jsonl"
    source.write_text("\n".join(CORPUS.read_text().splitlines()[:3]) + "\n")
    settings = load_settings()
    together = threading.Barrier(2)

    def night(name: str) -> dict:
        together.wait()  # both start at once: each reads the ledger before the other has written it
        return run_nightly(settings, [f"unified:{source}"], state_dir=str(env / "state"),
                           out=str(env / f"{name}.jsonl"), teacher="offline", pairs_per_function=2,
                           revision_rounds=0)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(night, ["a", "b"]))
    assert sorted(r["new_sources"] for r in results) == [0, 3]
    assert len(read_ledger(DataStore(settings.store), "default")) == 1
    for name in ("a", "b"):
        exported = _samples(env / f"{name}.jsonl")
        assert exported and len({s["sample_id"] for s in exported}) == len(exported)
    assert _samples(env / "a.jsonl") == _samples(env / "b.jsonl")
