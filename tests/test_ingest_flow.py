"""The ingestion flow end to end: a Parquet/JSONL corpus on S3 (a moto server on
127.0.0.1) read shard by shard on a Dask LocalCluster, CodeMix + PyEdu-R
selection, dedup across shards and sources, decontamination; the pipeline
running it as its first step; the CLI failing loudly on an empty result."""

from __future__ import annotations

import io
import json

import polars as pl
import pytest
import s3fs
import zstandard
from s3_server import moto_s3  # noqa: F401 - the fixture
from test_ingest_select import BUBBLE, HUMANEVAL, SIMULATION
from test_s3_store import CREDENTIAL_VARS

from storage.store import DataStore


def python_edu_rows(n: int, offset: int = 0) -> list[dict]:
    """Python-Edu style rows: distinct simulations (kept), plus what must go."""
    rows = []
    for i in range(offset, offset + n):
        # distinct programs: each has its own constants and names (no two are near duplicates)
        body = SIMULATION.replace("Bank", f"Branch{i}").replace("tellers", f"tellers_{i}").replace(
            "randint(0, 3)", f"randint({i}, {i + 3 + i % 5})").replace("minute", f"tick_{i}").replace(
            "served", f"served_{i}").replace("waiting", f"queue_{i}").replace("longest", f"peak_{i}")
        rows.append({"blob_id": f"blob{i:04d}", "repo_name": f"org/repo{i % 4}", "path": f"/sim/m{i}.py",
                     "length_bytes": len(body), "score": 3.2 + (i % 3) / 10, "int_score": 3 + i % 2, "content": body})
    return rows


@pytest.fixture
def s3_corpus(moto_s3, monkeypatch, tmp_path):  # noqa: F811 - pytest fixture injection
    """A bucket holding a dataset the way it is downloaded: Parquet shards (several
    row groups) and a zstd JSONL shard; the store and lineage stay local."""
    for name in CREDENTIAL_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in moto_s3.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CODEIO_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("CODEIO_DATABASE_URL", f"sqlite:///{tmp_path / 'lineage.db'}")
    for name in ("CODEIO_LLM_BASE_URL", "CODEIO_LLM_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    bucket = moto_s3.create_bucket()
    fs = s3fs.S3FileSystem(**moto_s3.storage_options())
    first = python_edu_rows(12)
    first[3]["content"] = first[0]["content"].replace("\n", "  \n")  # exact duplicate (whitespace only)
    first[5]["int_score"] = 1  # below the educational threshold
    first[7]["content"] = BUBBLE * 2  # pure algorithm implementation
    first[8]["content"] = "x = 1\n"  # too small
    second = python_edu_rows(10, offset=100)
    # near duplicate, across shards: the same program with one comment and one line changed
    second[2]["content"] = first[1]["content"].replace('"""Advance the simulation by one minute."""', "# one step") \
        .replace("return len", "return 0 + len")
    second[4]["content"] = "import math\n" + HUMANEVAL["prompt"] + HUMANEVAL["canonical_solution"] + \
        "\n\ndef simulate_orbit(mass, velocity):\n    return mass * velocity * math.pi\n"  # contaminated
    second[6]["content"] = "print 'old python', 1\n" * 3 + "def f(x):\n    print x\n    return x\n"  # Python 2
    for name, rows, group in (("a.parquet", first, 4), ("b.parquet", second, 10)):
        buffer = io.BytesIO()
        pl.DataFrame(rows).write_parquet(buffer, row_group_size=group)
        fs.pipe(f"{bucket}/edu/{name}", buffer.getvalue())
    third = python_edu_rows(3, offset=200) + [first[2]]  # exact duplicate across files
    fs.pipe(f"{bucket}/edu/c.jsonl.zst",
            zstandard.ZstdCompressor().compress("".join(json.dumps(r) + "\n" for r in third).encode()))
    evals = tmp_path / "humaneval.jsonl"
    evals.write_text(json.dumps(HUMANEVAL) + "\n")
    return bucket, evals, tmp_path


OPTIONS = {"codemix": {"min_functions": 1}, "pyedu": {"min_int_score": 3}, "dedup": {"threshold": 0.7}}


@pytest.mark.slow
def test_s3_corpus_ingests_in_parallel_with_reasons_and_reconciles(prefect_harness, s3_corpus, monkeypatch):
    bucket, evals, tmp_path = s3_corpus
    monkeypatch.setenv("CODEIO_DASK_WORKERS", "2")  # a real LocalCluster: shards on two worker processes
    monkeypatch.setenv("CODEIO_SHARD_SIZE", "4")  # a.parquet: 3 units of 4 rows (row groups of 4)
    from flows.ingest import codeio_ingest

    options = dict(OPTIONS, decontam=[f"humaneval={evals}"])
    summary = codeio_ingest(sources=[f"corpus:s3://{bucket}/edu"], options=options)
    stages = {s["label"]: s for s in summary["stages"]}
    select, lsh, dedup, final = (stages[label] for label in ("ingest select", "ingest lsh", "ingest dedup", "ingest"))
    assert select["parts"] == 3 + 1 + 1 and select["shards_computed"] == 5  # a: 3 row-group units, b, c
    # one task finds the components spanning shards; the walk itself runs shard by shard
    assert lsh["parts"] == 1 and dedup["parts"] == 5 and final["parts"] == 5
    assert lsh["in"] == lsh["out"] == dedup["in"] == select["out"]
    # linked: the two duplicates across shards with their kept copies (b's near copy of a's row 1, c's
    # exact copy of a's row 2); a's row 3 copies row 0 of the same unit, which its shard decides alone
    assert lsh["counters"]["linked"] == 2 * 2
    assert summary["rows_read"] == 12 + 10 + 4
    assert select["rejects_by_reason"] == {"low_edu_score": 1, "low_reasoning_focus": 1, "too_small": 1,
                                           "python2": 1, "contaminated": 1}
    assert final["rejects_by_reason"] == {"exact_duplicate": 2, "near_duplicate": 1}
    assert summary["kept"] == 26 - 5 - 3 and summary["reconciled"]
    assert summary["contaminated"] == {f"corpus:s3://{bucket}/edu / humaneval": 1}
    assert summary["kept_by_rule"]["read"] == 26 and summary["kept_by_rule"]["codemix"] == 26 - 2
    assert summary["kept_by_rule"]["pyedu_int_score"] == 24 - 1 and summary["kept_by_rule"]["pyedu_reasoning"] == 22

    store = DataStore(str(tmp_path / "store"))
    key = summary["dataset"]["key"]
    kept = pl.concat(list(store.iter_frames("ingest", key))).to_dicts()
    assert len(kept) == summary["kept"] and len({r["source_id"] for r in kept}) == len(kept)
    origin = json.loads(next(r for r in kept if json.loads(r["origin"])["blob_id"] == "blob0000")["origin"])
    assert {"blob_id", "repo", "path", "length_bytes", "score", "int_score", "row", "file"} <= set(origin)
    assert origin["int_score"] == 3 and origin["repo"] == "org/repo0" and origin["path"] == "/sim/m0.py"
    assert origin["selection"]["ast_nodes"] > 30 and "reasoning_score" in origin["selection"]
    rejects = [r for part in range(final["parts"]) for r in store.read_rejects("ingest", key, part)]
    near = next(r for r in rejects if r["reason"] == "near_duplicate")
    assert "/sim/m1.py" in near["detail"] and "kept copy" in near["detail"]  # the kept copy is named
    exact = [r["detail"] for r in rejects if r["reason"] == "exact_duplicate"]
    assert any("/sim/m0.py" in d for d in exact) and any("/sim/m2.py" in d for d in exact)
    select_rejects = [r for part in range(select["parts"]) for r in store.read_rejects("ingest_select", select["key"], part)]
    assert "HumanEval/0" in next(r["detail"] for r in select_rejects if r["reason"] == "contaminated")

    again = codeio_ingest(sources=[f"corpus:s3://{bucket}/edu"], options=options)
    assert all(s["reused"] for s in again["stages"]) and again["dataset"] == summary["dataset"]


@pytest.mark.slow
def test_pipeline_runs_ingestion_first_and_keeps_sample_keys(prefect_harness, env, tmp_path):
    """``codeio run`` with ingest options goes through the ingestion stages (rows of
    the sample corpus: unified functions pass the CodeMix filters untouched and
    yield samples); without options the sample corpus keeps its ingest key."""
    from flows.pipeline import codeio_pipeline
    from flows.spec import RunSpec

    plain = codeio_pipeline(spec=RunSpec(limit=6, revision_rounds=0))
    assert [s["stage"] for s in plain["stages"]][:2] == ["ingest", "normalize"]
    selected = codeio_pipeline(spec=RunSpec(limit=6, revision_rounds=0,
                                            ingest={"codemix": True, "dedup": {"threshold": 0.8}}))
    labels = [s["label"] for s in selected["stages"]]
    assert labels[:5] == ["ingest select", "ingest lsh", "ingest dedup", "ingest", "normalize"]
    assert selected["samples"] == plain["samples"] > 0
    assert selected["reconciled"]


# -- the partitioned resolver ------------------------------------------------------------------
def _variant(text: str, i: int) -> str:
    """A program of its own (no near duplicate of any other variant)."""
    return python_edu_rows(1, offset=1000 + i)[0]["content"]


def _partitioned_corpus() -> list[list[str]]:
    """Contents of 4 shards: duplicates within a shard and across shards, near copies whose
    kept copy is in another shard, a chain (c near b near a), and a shard with none."""
    base = [_variant(SIMULATION, i) for i in range(12)]
    near = [text.replace("return len", "return 0 + len") for text in base]
    nearer = [text.replace("return 0 + len", "return 1 + 0 + len").replace("self.", "self .", 1) for text in near]
    return [
        [base[0], base[1], base[0].replace("\n", "  \n"), base[2], near[3]],  # exact dup in the shard, near of shard 1's
        [base[3], near[0], base[4], base[1], base[5]],  # near and exact copies of shard 0's files
        [base[6], nearer[0], near[4], base[7], base[3].replace("\n", "\n\n")],  # chain, copy of a dropped file
        [base[8], base[9], base[10], base[11]],  # no duplicates at all
    ]


def _write_candidates(store: DataStore, contents: list[list[str]]):
    from codeio.ingest import select
    from codeio.ingest.dedup import DedupConfig, normalized_hash, signature_hex
    from codeio.records import stable_id
    from tasks.shard import DatasetRef

    config = DedupConfig()
    for part, texts in enumerate(contents):
        records = [{"source_id": stable_id("src", text), "source_name": f"corpus:shard{part}", "kind": "raw",
                    "origin": json.dumps({"path": f"/s{part}/f{row}.py", "repo": "org/r"}), "content": text,
                    "unified": None, "row_order": row, "exact_hash": normalized_hash(text),
                    "minhash": signature_hex(text, config)} for row, text in enumerate(texts)]
        store.write_part("ingest_select", "cands", part, select.CANDIDATE, records, [], {"records_in": len(texts)})
    return DatasetRef("ingest_select", "cands", len(contents)), config


def _partitioned_decisions(store: DataStore, candidates, config, order: list[int]) -> list[dict]:
    """The flow's tasks' own functions: the components task, then each shard's walk (in ``order``)."""
    from codeio.ingest import select
    from storage.store import StoreSpec
    from tasks import ingest_shards
    from tasks.resources import RuntimeSpec
    from tasks.shard import DatasetRef, ShardJob, execute

    runtime = RuntimeSpec(store=StoreSpec(store.url, "{}"), sandbox=None, llm=None)
    key = f"links-{'-'.join(map(str, order))}"
    execute(ShardJob("ingest_lsh", key, 0, config, {"candidates": candidates}, runtime), select.LINK,
            ingest_shards._components)
    links = DatasetRef("ingest_lsh", key, 1)
    for part in order:
        job = ShardJob("ingest_dedup", key, part, config, {"candidates": candidates, "links": links}, runtime)
        execute(job, select.DECISION, ingest_shards._resolve)
    return sorted((r for part in range(candidates.parts) for r in store.read_part("ingest_dedup", key, part)),
                  key=lambda r: (r["part"], r["row_order"]))


def test_partitioned_resolver_decides_as_one_walk_over_the_corpus(tmp_path):
    """Each shard decided on its own, with the members of its LSH components in other shards,
    gives every candidate the decision (status, kept copy, similarity) of one walk over all
    candidates, whatever order the shards run in."""
    from codeio.ingest import select

    store = DataStore(str(tmp_path / "store"))
    candidates, config = _write_candidates(store, _partitioned_corpus())
    every = [c for part in range(candidates.parts)
             for c in select.candidates_of(part, store.read_part("ingest_select", "cands", part))]
    single = sorted(select.dedup_decisions(every, config).records, key=lambda r: (r["part"], r["row_order"]))
    by_place = {(r["part"], r["row_order"]): r for r in single}
    # the corpus has what the partitions must agree on: the first copy is kept across shards
    assert by_place[(0, 2)]["status"] == "exact_duplicate" and by_place[(0, 2)]["kept_id"] == by_place[(0, 0)]["source_id"]
    assert by_place[(1, 1)]["status"] == "near_duplicate" and "/s0/f0.py" in by_place[(1, 1)]["kept_name"]
    assert by_place[(1, 3)]["status"] == "exact_duplicate" and "/s0/f1.py" in by_place[(1, 3)]["kept_name"]
    assert by_place[(1, 0)]["status"] == "near_duplicate" and "/s0/f4.py" in by_place[(1, 0)]["kept_name"]
    # an exact copy of a file that was itself dropped names the kept copy of that file, two shards back
    assert by_place[(2, 4)]["status"] == "near_duplicate" and "/s0/f4.py" in by_place[(2, 4)]["kept_name"]
    assert by_place[(2, 1)]["status"] == "near_duplicate"  # the chain: near the kept file 0 of shard 0
    assert all(r["status"] == select.KEPT for r in single if r["part"] == 3)

    forward = _partitioned_decisions(store, candidates, config, [0, 1, 2, 3])
    backward = _partitioned_decisions(store, candidates, config, [3, 2, 1, 0])
    assert forward == single and backward == single
    links = store.read_part("ingest_lsh", "links-0-1-2-3", 0)
    assert {r["part"] for r in links} == {0, 1, 2} and len(links) < sum(map(len, _partitioned_corpus()))


def test_partitioned_resolver_exact_only_and_ties(tmp_path):
    """Near dedup off: components are exact hashes alone. Two kept copies equally similar
    to a file: the earlier one in corpus order is named, in both walks."""
    from codeio.ingest import select
    from codeio.ingest.dedup import Candidate, DedupConfig, resolve

    store = DataStore(str(tmp_path / "store"))
    candidates, _ = _write_candidates(store, _partitioned_corpus())
    exact_only = DedupConfig(near=False)
    every = [c for part in range(candidates.parts)
             for c in select.candidates_of(part, store.read_part("ingest_select", "cands", part))]
    single = sorted(select.dedup_decisions(every, exact_only).records, key=lambda r: (r["part"], r["row_order"]))
    assert {r["status"] for r in single} == {select.KEPT, "exact_duplicate"}
    assert _partitioned_decisions(store, candidates, exact_only, [2, 0, 3, 1]) == single

    # signatures of 128 values: x shares 96 with a and 96 with b, a and b share 64 (< 0.7: both kept)
    def sig(values):
        import numpy as np

        return np.asarray(values, dtype=np.uint32).tobytes().hex()

    a, b = list(range(128)), list(range(64)) + list(range(1000, 1064))
    x = list(range(96)) + list(range(1032, 1064))
    items = [Candidate("b", (0, 5), "hb", sig(b), "b"), Candidate("a", (0, 9), "ha", sig(a), "a"),
             Candidate("x", (1, 0), "hx", sig(x), "x")]
    for ordered in (items, items[::-1]):
        (dup,) = resolve(ordered, DedupConfig(threshold=0.7))
        assert dup.source_id == "x" and dup.kept_id == "b" and dup.similarity == 0.75


def test_local_workers_keep_the_default_allocator_and_quiet_event_loops(monkeypatch):
    """Dask's nanny would start each worker with MALLOC_TRIM_THRESHOLD_=65536 (memory handed
    back to the OS at every free: ~60x the page faults of the same shard in a plain process);
    the embedded cluster's workers start with the environment of any other process, and
    their event loops tick every second, not every 20 ms."""
    import os

    import dask
    from distributed import Client, LocalCluster

    from flows.pipeline import local_cluster_kwargs

    def probe() -> tuple:
        return (os.environ.get("MALLOC_TRIM_THRESHOLD_"), os.environ.get("OMP_NUM_THREADS"),
                dask.config.get("distributed.admin.tick.interval"),
                dask.config.get("distributed.worker.memory.monitor-interval"))

    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    with LocalCluster(**local_cluster_kwargs(1)) as cluster, Client(cluster) as client:
        seen = list(client.run(probe).values())
    assert seen == [(None, "1", "1s", "500ms")]  # the other spawn settings stay


# -- several shards per task run -----------------------------------------------------------------
def _local_corpus(folder) -> int:
    """Two Parquet files in row groups of 4 (8 units of 4 rows): kept files, exact and near
    duplicates within and across units and files, and rows the filters reject."""
    rows = python_edu_rows(16)
    rows[3]["content"] = rows[0]["content"].replace("\n", "  \n")  # exact duplicate, same unit
    rows[9]["content"] = rows[1]["content"].replace("return len", "return 0 + len")  # near duplicate, later unit
    rows[6]["content"] = "x = 1\n"  # too small
    rows[11]["int_score"] = 1  # below the educational threshold
    more = python_edu_rows(14, offset=300)
    more[2]["content"] = rows[2]["content"]  # exact duplicate across files
    more[8]["content"] = BUBBLE * 2  # pure algorithm implementation
    folder.mkdir()
    pl.DataFrame(rows).write_parquet(folder / "a.parquet", row_group_size=4)
    pl.DataFrame(more).write_parquet(folder / "b.parquet", row_group_size=4)
    return len(rows) + len(more)


def _ingest_with_runner(store_dir, lineage_url, corpus, per_task: int):
    """run_ingest_stages (what both flows run) on a thread-pool runner that records the
    task of every submission, with ``per_task`` shards per grouped task run."""
    from prefect.task_runners import ThreadPoolTaskRunner

    from codeio.settings import load_settings
    from codeio.sources import parse_source_specs
    from flows.ingest import ingest_options, ingest_report, run_ingest_stages
    from flows.orchestrator import Orchestrator
    from flows.pipeline import open_store
    from storage.lineage import LineageDB
    from tasks.resources import RuntimeSpec

    class RecordingRunner(ThreadPoolTaskRunner):
        def __init__(self) -> None:
            super().__init__(max_workers=2)
            self.submitted: list[str] = []

        def submit(self, task, parameters, wait_for=None, dependencies=None):
            self.submitted.append(task.name)
            return super().submit(task, parameters, wait_for, dependencies)

    settings = load_settings(store=str(store_dir))
    store, lineage, runner = open_store(settings), LineageDB(lineage_url), RecordingRunner()
    lineage.upgrade()
    run_id = lineage.start_run(kind="ingest", parameters={}, settings={}, code_version="test", user="test")
    orchestrator = Orchestrator(store, RuntimeSpec(store=store.spec, sandbox=None, llm=None), lineage, run_id,
                                task_runner=runner, shards_per_task=lambda parts, _runner: per_task)
    options = ingest_options(dict(OPTIONS, shard_rows=4))
    with runner:
        ref, _, _ = run_ingest_stages(orchestrator, parse_source_specs([f"corpus:{corpus}"]), options, settings, None)
    report = ingest_report(orchestrator.stages)
    lineage.close()
    return store, ref, orchestrator.stages, report, runner.submitted


def _contents(store: DataStore, stages) -> dict:
    """Every part of every stage: records, rejects and the counts of its marker."""
    out = {}
    for stage in stages:
        for part in range(stage.parts):
            marker = store.part_marker(stage.stage, stage.key, part)
            out[(stage.stage, stage.key, part)] = (
                store.read_part(stage.stage, stage.key, part), store.read_rejects(stage.stage, stage.key, part),
                {k: marker[k] for k in ("records", "records_in", "kept", "rejected", "rejects_by_reason", "stats")})
    return out


@pytest.mark.slow
def test_grouped_shards_give_the_ungrouped_results_and_a_rerun_skips_them(prefect_harness, tmp_path, monkeypatch):
    """Three shards per task run: 8 select shards in 3 task runs, 8 dedup + finalize lanes
    in 3; every part still written under its own key with its own marker, identical to one
    part per task run; a rerun finds every dataset done and submits nothing."""
    for name in ("CODEIO_LLM_BASE_URL", "CODEIO_LLM_API_KEY", "OPENAI_API_KEY", "CODEIO_SHARDS_PER_TASK"):
        monkeypatch.delenv(name, raising=False)
    corpus = tmp_path / "corpus"
    rows = _local_corpus(corpus)
    single = _ingest_with_runner(tmp_path / "single", f"sqlite:///{tmp_path / 'single.db'}", corpus, 1)
    grouped = _ingest_with_runner(tmp_path / "grouped", f"sqlite:///{tmp_path / 'grouped.db'}", corpus, 3)

    store, ref, stages, report, submitted = grouped
    assert [s.label for s in stages] == ["ingest select", "ingest lsh", "ingest dedup", "ingest"]
    assert [s.parts for s in stages] == [8, 1, 8, 8] and all(s.shards_computed == s.parts for s in stages)
    assert submitted == ["shard-group"] * 3 + ["ingest-lsh-components"] + ["shard-group"] * 3
    assert single[4] == ["ingest-select-shard"] * 8 + ["ingest-lsh-components"] + ["shard-lane"] * 8
    assert report == single[3] and report["reconciled"] and report["rows_read"] == rows
    assert 0 < report["kept"] < rows and report["duplicates"] == {"exact_duplicate": 2, "near_duplicate": 1}
    assert ref == single[1]
    assert _contents(store, stages) == _contents(single[0], single[2])
    assert [(s.records_in, s.records_out, s.rejected, s.rejects_by_reason) for s in stages] == \
        [(s.records_in, s.records_out, s.rejected, s.rejects_by_reason) for s in single[2]]

    again = _ingest_with_runner(tmp_path / "grouped", f"sqlite:///{tmp_path / 'grouped.db'}", corpus, 3)
    assert again[4] == [] and all(s.reused for s in again[2]) and again[3] == report and again[1] == ref


def _datasets(store: DataStore) -> dict:
    """Every finished dataset of the ingestion stages: its parts' records and rejects."""
    out = {}
    for stage in ("ingest_select", "ingest_lsh", "ingest_dedup", "ingest"):
        for key in store.dataset_keys(stage):
            manifest = store.manifest(stage, key)
            assert manifest is not None, f"{stage}/{key} has no manifest"
            out[(stage, key)] = [(store.read_part(stage, key, part), store.read_rejects(stage, key, part))
                                 for part in range(int(manifest["parts"]))]
    return out


@pytest.mark.slow
def test_a_grouped_ingest_killed_mid_group_resumes_with_the_parts_it_had_done(tmp_path):
    """`codeio ingest` on a LocalCluster, all 8 select shards in one task run, killed
    (SIGKILL to every process of the command) while the group's fourth shard waits for
    its input: the three shards before it are done and marked, the rest are not. The
    next run skips those three (their markers untouched), computes the rest, and ends
    with the datasets of an uninterrupted run with one shard per task run."""
    import os
    import signal
    import subprocess

    from conftest import ROOT
    from test_interrupts import CODEIO, START_S, HeldCommand

    from codeio.ingest import select
    from codeio.settings import load_settings
    from codeio.sources import parse_source_specs
    from flows.ingest import ingest_options, plan_ingest
    from storage.lineage import LineageDB

    corpus = tmp_path / "corpus"
    _local_corpus(corpus)
    config = tmp_path / "ingest.json"
    config.write_text(json.dumps(dict(OPTIONS, shard_rows=4)))
    argv = ["ingest", "--source", f"corpus:{corpus}", "--config", str(config), "--json"]
    # the units as the run will plan them; the fourth one's file is a named pipe nobody writes:
    # the run finds it planned, and the shard that reads it waits there
    store = DataStore(str(tmp_path / "store"))
    planned, parts = plan_ingest(parse_source_specs([f"corpus:{corpus}"]), ingest_options(dict(OPTIONS, shard_rows=4)),
                                 load_settings(store=store.url), store, None)
    assert parts == 8
    held_unit = tmp_path / "store" / select.units_rel(planned.units_digest, 3)
    held_unit.unlink()
    os.mkfifo(held_unit)
    markers = lambda: sorted((tmp_path / "store").glob("datasets/ingest_select/*/_parts/*.json"))  # noqa: E731

    run = HeldCommand(tmp_path, argv, lambda: len(markers()) >= 3, CODEIO_DASK_WORKERS="1",
                      CODEIO_SHARDS_PER_TASK="8")
    try:
        assert [path.stem for path in markers()] == ["00000", "00001", "00002"]
        run.kill()  # SIGKILL, every process of the command: no chance to clean up
        assert run.process.wait(60) == -signal.SIGKILL
        run.assert_nothing_left()
    finally:
        run.kill()
    done = {path.stem: path.read_text() for path in markers()}
    assert sorted(done) == ["00000", "00001", "00002"]
    assert not list((tmp_path / "store").glob("datasets/ingest_select/*/_manifest.json"))

    held_unit.unlink()  # the unit can be read now (the next run plans it again)
    resumed = subprocess.run([str(CODEIO), *argv], env=run.env, cwd=str(ROOT), capture_output=True, text=True,
                             timeout=START_S)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert {path.stem: path.read_text() for path in markers()}.items() >= done.items()  # not redone
    lineage = LineageDB(run.env["CODEIO_DATABASE_URL"])
    latest = lineage.list_runs()[0]
    selected = {row["shard"]: row["cached"] for row in lineage.stage_runs(latest["id"])
                if row["stage"] == "ingest_select"}
    lineage.close()
    assert selected == {0: True, 1: True, 2: True, 3: False, 4: False, 5: False, 6: False, 7: False}

    reference = dict(run.env, CODEIO_STORE=str(tmp_path / "reference"), CODEIO_SHARDS_PER_TASK="1",
                     CODEIO_DATABASE_URL=f"sqlite:///{tmp_path / 'reference.db'}", CODEIO_DASK_WORKERS="0")
    whole = subprocess.run([str(CODEIO), *argv], env=reference, cwd=str(ROOT), capture_output=True, text=True,
                           timeout=START_S)
    assert whole.returncode == 0, whole.stderr[-3000:]
    expected = _datasets(DataStore(str(tmp_path / "reference")))
    assert len(expected) == 4 and _datasets(DataStore(str(tmp_path / "store"))) == expected
