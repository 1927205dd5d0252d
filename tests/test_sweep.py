"""Ablation sweeps: branches run at the same time share every upstream dataset
(computed once, by the summaries and by lineage), and the sweep writes the
comparison table (CSV, Markdown) and the outcomes plot."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import yaml

from codeio.settings import load_settings
from flows.sweep import GridError, check_endpoint, codeio_ablation_sweep, parse_grid, run_sweep
from storage.lineage import LineageDB

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
UPSTREAM = ("ingest", "normalize", "collect_io")


def test_grid_expands_validates_and_names_branches(monkeypatch):
    monkeypatch.delenv("CODEIO_LLM_BASE_URL", raising=False)
    grid = parse_grid({"name": "g", "limit": 3, "base": {"K": 2},
                       "grid": {"rejection_sampling": [False, True], "revision_rounds": [0, 1]},
                       "branches": [{"name": "gt", "wrong_answers": "ground_truth"},
                                    {"rejection_sampling": False, "revision_rounds": 0}]})  # a duplicate: dropped
    assert [b.name for b in grid.branches] == ["R=0,rej=off", "R=1,rej=off", "R=0,rej=on", "R=1,rej=on", "gt"]
    assert all(b.params["pairs_per_function"] == 2 for b in grid.branches)
    assert grid.branches[-1].params["wrong_answer_policy"] == "ground_truth"
    assert set(grid.varied) == {"revision_rounds", "rejection_sampling", "wrong_answer_policy"}
    with pytest.raises(GridError, match="unknown axis"):
        parse_grid({"grid": {"temperature": [0.1]}})
    with pytest.raises(GridError, match="task_mix"):
        parse_grid({"grid": {"task_mix": ["both", "neither"]}})
    with pytest.raises(GridError, match="instance_fraction"):
        parse_grid({"branches": [{"instance_fraction": 0}]})
    with pytest.raises(GridError, match="LLM endpoint"):
        check_endpoint(parse_grid({"grid": {"teacher": ["offline", "openai"]}}), load_settings(llm_base_url=None))


def test_cli_rejects_a_bad_grid_before_running(tmp_path):
    from typer.testing import CliRunner

    from flows.cli import app

    bad = tmp_path / "bad.yaml"
    bad.write_text("grid:\n  pairs_per_function: [3, 60]\n")
    result = CliRunner().invoke(app, ["sweep", str(bad)])
    assert result.exit_code == 2 and "pairs_per_function" in result.output
    missing = tmp_path / "missing.yaml"
    missing.write_text("sources: ['unified:/no/such/file.jsonl']\n")
    result = CliRunner().invoke(app, ["sweep", str(missing)])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_concurrent_branches_compute_shared_datasets_once(env, prefect_harness):
    grid = parse_grid({
        "name": "t", "sources": ["sample"], "limit": 5, "max_parallel_branches": 4,
        "base": {"teacher": "offline", "revision_rounds": 1},
        "grid": {"rejection_sampling": [False, True], "pairs_per_function": [2, 3]},
        "branches": [{"name": "gt", "wrong_answer_policy": "ground_truth", "instance_fraction": 0.5}],
    })
    settings = load_settings()
    result = run_sweep(settings, grid, str(env / "out"))
    assert len(result["rows"]) == 5
    summaries = [b["summary"] for b in result["branches"]]

    # every dataset key is computed by exactly one branch (or the sweep's ingest), shard by shard
    computed: dict[str, int] = {}
    parts: dict[str, int] = {}
    for summary in summaries:
        for stage in summary["stages"]:
            computed[stage["key"]] = computed.get(stage["key"], 0) + stage["shards_computed"]
            parts[stage["key"]] = stage["parts"]
    ingest_key = summaries[0]["stages"][0]["key"]
    assert computed.pop(ingest_key) == 0  # the sweep ingested once before the branches started
    assert all(n == parts[key] for key, n in computed.items()), computed
    for summary in summaries:  # ingest was reused by every branch
        assert summary["stages"][0]["reused"]

    # the upstream stages are one dataset for all five branches, computed once according to lineage
    shared = {item["key"]: item for item in result["shared"]}
    with LineageDB(settings.database_url) as lineage:
        for stage in UPSTREAM:
            keys = {s["key"] for summary in summaries for s in summary["stages"] if s["stage"] == stage}
            assert len(keys) == 1, (stage, keys)
            key = keys.pop()
            assert len(shared[key]["branches"]) == 5 or stage == "ingest"
            assert lineage.stage_computations(key) == parts.get(key, 1)
            assert shared[key]["lineage_computations"] == shared[key]["parts"]
        # K=2 and K=3 give two build_prompts datasets, each shared by the two rejection settings
        prompts = [item for item in result["shared"] if item["stage"] == "build_prompts"]
        assert sorted(len(item["branches"]) for item in prompts) == [2, 3]  # gt uses K=3 too
        assert all(lineage.stage_computations(item["key"]) == item["parts"] for item in prompts)
        assert lineage.get_run(result["sweep_run_id"])["status"] == "completed"

    # the branches differ where they should
    rows = {row["branch"]: row for row in result["rows"]}
    assert rows["rej=off,K=2"]["samples"] < rows["rej=off,K=3"]["samples"]
    assert 0 < rows["gt"]["samples"] < rows["rej=off,K=3"]["samples"]  # the half subset
    assert rows["rej=on,K=3"]["dataset_uri"] != rows["rej=off,K=3"]["dataset_uri"]

    # the outputs
    files = result["files"]
    table = list(csv.DictReader(io.StringIO(Path(files["csv"]).read_text())))
    assert [r["branch"] for r in table] == [r["branch"] for r in result["rows"]]
    assert {"samples", "pass_rate_r1", "pass_rate_r2", "tokens", "cost_usd", "dataset_uri"} <= set(table[0])
    markdown = Path(files["markdown"]).read_text()
    assert "| rej=on,K=2 |" in markdown and "shared datasets" in markdown
    png = Path(files["plot"]).read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 5_000
    from PIL import Image

    with Image.open(files["plot"]) as image:
        image.verify()
        assert image.size[0] > 400 and image.size[1] > 300


def test_sweep_flow_publishes_the_table_artifact_and_reruns_reuse_everything(env, prefect_harness):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    grid_file = env / "grid.yaml"
    grid_file.write_text(yaml.safe_dump({
        "name": "flow", "sources": ["unified:" + str(Path(__file__).resolve().parents[1] / "codeio/corpus/unified.jsonl")],
        "limit": 3, "max_parallel_branches": 3, "grid": {"task_mix": ["both", "input", "output"]}}))
    first = codeio_ablation_sweep(grid=str(grid_file), out_dir=str(env / "out1"))
    assert [r["branch"] for r in first["rows"]] == ["mix=both", "mix=input", "mix=output"]
    assert first["rows"][0]["samples"] == first["rows"][1]["samples"] + first["rows"][2]["samples"]
    second = codeio_ablation_sweep(grid=str(grid_file), out_dir=str(env / "out2"))
    assert all(row["stages_computed"] == 0 for row in second["rows"])  # every dataset reused
    assert [r["dataset_uri"] for r in second["rows"]] == [r["dataset_uri"] for r in first["rows"]]
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["codeio-sweep-table"])))
    assert artifacts and artifacts[0].type == "table"
    assert "mix=input" in str(artifacts[0].data)


INPUT_FORMAT = '{"input": ...}'
OUTPUT_FORMAT = '{"output": ...}'


def weak_teacher(body, info):
    """Wrong on the first turn (mismatch for output tasks, no answer for input tasks),
    then an input that raises or no answer on revision: every outcome the plot stacks."""
    from llm_server import Reply

    messages = body["messages"]
    prompt = messages[0]["content"]
    task = "input" if prompt.rfind(INPUT_FORMAT) > prompt.rfind(OUTPUT_FORMAT) else "output"
    if len(messages) == 1:
        text = '{"output": "__surely_wrong__"}' if task == "output" else "I could not work it out."
    else:
        text = '{"input": {"__no_such_argument__": 1}}' if task == "input" else "Still unsure."
    return Reply(f"Let me think step by step.\nThe final answer is:\n{text}")


def test_teacher_axis_with_an_endpoint_plots_every_outcome(env, prefect_harness, monkeypatch):
    from llm_server import FakeLLMServer

    from codeio.llm.openai_client import close_all_clients

    corpus = Path(__file__).resolve().parents[1] / "codeio" / "corpus" / "unified.jsonl"
    with FakeLLMServer(weak_teacher) as server:
        monkeypatch.setenv("CODEIO_LLM_BASE_URL", server.base_url)
        monkeypatch.setenv("CODEIO_LLM_MODEL", "fake-model")
        monkeypatch.setenv("CODEIO_LLM_API_KEY", "test-key")
        monkeypatch.setenv("CODEIO_LLM_PRICES", '{"fake-model": [1000.0, 1000.0]}')
        try:
            grid = parse_grid({"name": "teachers", "sources": [f"unified:{corpus}"], "limit": 3,
                               "max_parallel_branches": 2, "base": {"K": 2},
                               "grid": {"teacher": ["offline", "openai"]}})
            result = run_sweep(load_settings(), grid, str(env / "out"))
        finally:
            close_all_clients()
    rows = {row["branch"]: row for row in result["rows"]}
    assert rows["teacher=offline"]["pass_rate_r1"] == 1.0 and rows["teacher=offline"]["tokens"] == 0
    assert rows["teacher=openai"]["pass_rate_r1"] == 0.0 and rows["teacher=openai"]["tokens"] > 0
    assert rows["teacher=openai"]["cost_usd"] > 0
    rounds = next(b["summary"]["rounds"] for b in result["branches"] if b["name"] == "teacher=openai")
    assert {"mismatch", "no_answer"} <= set(rounds[0]["statuses"])
    assert rounds[1]["answered"] == rounds[0]["answered"]  # every wrong answer was revised
    # the teachers share everything up to the prompts
    shared_stages = {item["stage"] for item in result["shared"]}
    assert {"ingest", "normalize", "collect_io", "build_prompts"} <= shared_stages
    assert "synthesize" not in shared_stages
    png = Path(result["files"]["plot"]).read_bytes()
    assert png.startswith(PNG_MAGIC)


def test_a_failed_branch_stops_the_others_from_starting(env, prefect_harness, monkeypatch, tmp_path):
    """Branch one fails (its placement renders a broken template override); the branches
    queued behind it must not start, and so must not spend."""
    from flows.sweep import BranchFailed

    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "reference_code_response.v1.txt").write_text("${not_a_placeholder}", encoding="utf-8")
    monkeypatch.setenv("CODEIO_PROMPT_DIR", str(prompts))
    rows = (Path(__file__).resolve().parents[1] / "codeio" / "corpus" / "unified.jsonl").read_text().splitlines()
    source = tmp_path / "two.jsonl"
    source.write_text("\n".join(rows[:2]) + "\n")
    grid = parse_grid({"name": "failing", "sources": [f"unified:{source}"], "max_parallel_branches": 1,
                       "base": {"revision_rounds": 0},
                       "branches": [{"placement": "response"}, {"placement": "prompt"}, {"placement": "none"}]})
    with pytest.raises(BranchFailed, match="not started: code=prompt, code=none"):
        run_sweep(load_settings(), grid, str(tmp_path / "out"))
    lineage = LineageDB(f"sqlite:///{env / 'lineage.db'}")
    kinds = sorted((run["kind"], run["status"]) for run in lineage.list_runs())
    assert kinds == [("sweep", "failed"), ("sweep-branch", "failed")]
    lineage.close()
