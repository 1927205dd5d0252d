"""Every stage row of a run's summary reconciles: in = out + rejected (and the
rejects by reason sum to rejected), in the unit the stage reads. Checked on real
runs of the shipped sample corpus (through `codeio run --json`), in each place
the counts are shown: the JSON summary, the CLI table, the Prefect table
artifact and lineage (per shard stage runs and per dataset counts).

build_prompts reads pairs and writes instances: its row counts pairs (the pairs
beyond K are ``not_sampled``); the instances are its ``written``. Before, its
row said in=390 pairs, out=234 instances, rejected=0."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console
from typer.testing import CliRunner

from storage.lineage import LineageDB

DEFAULT = ["--limit", "20"]
# task mix and instance-fraction sampling: the stages where the unit or the number changes by choice
SAMPLED = [*DEFAULT, "--task-mix", "input", "--pairs-per-function", "2", "--instance-fraction", "0.5"]


def cli_run(env, args: list[str]) -> dict:
    from flows.cli import app

    result = CliRunner().invoke(app, ["run", "--json", *args])
    assert result.exit_code == 0, result.output[-3000:]
    return json.loads(result.stdout)


def reconciles(label: str, counts_in: int, out: int, rejected: int, reasons: dict[str, int]) -> None:
    assert counts_in == out + rejected, (label, counts_in, out, rejected, reasons)
    assert sum(reasons.values()) == rejected, (label, rejected, reasons)


def table_rows(text: str, header: str) -> list[dict[str, str]]:
    """The rows of the rich table whose header row starts with ``header``."""
    lines = text.replace("┃", "│").splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip("│ ").startswith(header))
    names = [cell.strip() for cell in lines[start].strip().strip("│").split("│")]
    rows = []
    for line in lines[start + 1:]:
        if not line.strip().startswith("│"):
            if rows:
                break
            continue  # the rule under the header
        rows.append(dict(zip(names, (cell.strip() for cell in line.strip().strip("│").split("│")))))
    return rows


def latest_stage_artifact() -> list[dict]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["codeio-stages"])),
                                            sort=ArtifactSort.CREATED_DESC, limit=1)
    data = artifact.data
    return json.loads(data) if isinstance(data, str) else data


def check_every_place(summary: dict, database_url: str) -> None:
    from flows.summary import render_summary, stage_reconciles

    stages = summary["stages"]
    assert summary["reconciled"] is True
    for stage in stages:  # the JSON summary
        reconciles(stage["label"], stage["in"], stage["out"], stage["rejected"], stage["rejects_by_reason"])
        assert stage_reconciles(stage)

    console = Console(file=io.StringIO(), record=True, width=400, force_terminal=False)  # a pipe: reasons whole
    render_summary(summary, console)
    rows = table_rows(console.export_text(), "stage")
    assert [row["stage"] for row in rows] == [stage["label"] for stage in stages]
    for row in rows:  # the CLI table, as printed
        reasons = dict((item.split("=")[0], int(item.split("=")[1]))
                       for item in row["rejects by reason"].split(", ") if item)
        reconciles(row["stage"], int(row["in"]), int(row["out"]), int(row["rejected"]), reasons)

    artifact = latest_stage_artifact()  # the Prefect table artifact of this run
    assert [row["key"] for row in artifact] == [stage["key"] for stage in stages]
    for row in artifact:
        reasons = dict((item.split("=")[0], int(item.split("=")[1]))
                       for item in row["rejects_by_reason"].split(", ") if item)
        reconciles(row["label"], row["in"], row["out"], row["rejected"], reasons)

    with LineageDB(database_url) as lineage:  # lineage: every shard of every stage, every dataset
        shard_rows = lineage.stage_runs(summary["run_id"])
        assert {row["dataset_key"] for row in shard_rows} == {stage["key"] for stage in stages}
        for row in shard_rows:
            reconciles(f"{row['stage']}#{row['shard']}", row["records_in"], row["records_out"],
                       row["records_rejected"], row["rejects_by_reason"])
        for stage in stages:
            counts = lineage.dataset(stage["key"])["counts"]
            assert counts == {"in": stage["in"], "out": stage["out"], "rejected": stage["rejected"],
                              "written": stage["written"]}, stage["label"]


def test_every_stage_row_of_a_sample_run_reconciles(prefect_harness, env):
    database_url = f"sqlite:///{env / 'lineage.db'}"
    first = cli_run(env, DEFAULT)
    check_every_place(first, database_url)
    prompts = next(s for s in first["stages"] if s["stage"] == "build_prompts")
    collect = next(s for s in first["stages"] if s["stage"] == "collect_io")
    synthesize = next(s for s in first["stages"] if s["stage"] == "synthesize")
    # build_prompts counts the pairs collect_io wrote; its instances are what synthesis reads
    assert prompts["in"] == collect["written"] > prompts["out"] == prompts["counters"]["pairs_used"]
    assert prompts["rejects_by_reason"] == {"not_sampled": prompts["in"] - prompts["out"]}
    assert prompts["written"] == 2 * prompts["out"] == synthesize["in"]

    sampled = cli_run(env, SAMPLED)  # reuses ingest, normalize and collect_io
    check_every_place(sampled, database_url)
    prompts = next(s for s in sampled["stages"] if s["stage"] == "build_prompts")
    assemble = next(s for s in sampled["stages"] if s["stage"] == "assemble")
    assert prompts["written"] == prompts["out"]  # one task: one instance per pair used
    assert assemble["rejects_by_reason"].get("not_in_subset", 0) > 0

    rerun = cli_run(env, SAMPLED)  # every dataset reused: the rows come from the part markers
    assert all(stage["reused"] for stage in rerun["stages"])
    check_every_place(rerun, database_url)
    assert [(s["in"], s["out"], s["rejected"], s["written"]) for s in rerun["stages"]] == \
        [(s["in"], s["out"], s["rejected"], s["written"]) for s in sampled["stages"]]


def test_build_prompts_books_pairs_beyond_k_as_not_sampled():
    from codeio import prompting
    from codeio.records import IO_PAIR, UNIFIED_FUNCTION
    from codeio.stages.build_prompts import PromptConfig, build_prompts_shard

    templates = prompting.PromptTemplates.load(None)
    function = {column: "" for column in UNIFIED_FUNCTION.columns} | {
        "function_id": "f1", "source_id": "s1", "main_code": "def main_solution(x):\n    return x\n", "origin": "{}"}
    pairs = [{column: "" for column in IO_PAIR.columns} | {"pair_id": f"p{i}", "function_id": "f1", "pair_index": i,
                                                          "input": json.dumps({"x": i}), "output": json.dumps(i)}
             for i in range(5)]
    orphan = pairs[0] | {"pair_id": "orphan", "function_id": "gone"}
    for tasks, k in ((("output", "input"), 3), (("input",), 2), (("output",), 9)):
        out = build_prompts_shard([function], [*pairs, orphan], PromptConfig(pairs_per_function=k, tasks=tasks),
                                  templates)
        used = min(k, len(pairs))
        assert len(out.records) == used * len(tasks)  # the instances, as before
        assert out.kept == used
        assert out.rejects == []  # no reject record: the pairs left out are unchanged inputs
        expected = {"not_sampled": len(pairs) - used, "function_missing": 1}
        assert out.rejects_by_reason() == {reason: n for reason, n in expected.items() if n}
        assert out.kept + out.rejected() == len(pairs) + 1
