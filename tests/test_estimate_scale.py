"""`codeio run --dry-run` on ``corpus:`` and ``git:`` sources: files and rows counted
from Parquet footers, JSONL heads and git listings, LLM requests and cost estimated
per row, nothing requested from the endpoint."""

from __future__ import annotations

import gzip
import json
import subprocess

import polars as pl
import pytest
from llm_server import FakeLLMServer, fixed
from typer.testing import CliRunner

from flows.cli import app

MODEL = "fake-model"
BIG_ROWS = 4000  # about 1.6 MB: more than the sampled head, so its row count is an estimate


def _row(i: int, pad: int = 0) -> dict:
    return {"blob_id": f"b{i}", "path": f"/m{i}.py", "int_score": 4,
            "content": f"def f{i}(x):\n    return x + {i}\n" + "#" * pad}


@pytest.fixture
def scale_sources(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    pl.DataFrame([_row(i, 200) for i in range(5)]).write_parquet(corpus / "a.parquet", row_group_size=2)
    (corpus / "b.jsonl.gz").write_bytes(gzip.compress("".join(json.dumps(_row(i)) + "\n" for i in range(4)).encode()))
    (corpus / "c.jsonl").write_text("".join(json.dumps(_row(i, 340)) + "\n" for i in range(BIG_ROWS)))
    tree = tmp_path / "tree"
    tree.mkdir()
    subprocess.run(["git", "-C", str(tree), "init", "-q"], check=True)
    for name in ("a.py", "b.py", "untracked.py"):
        (tree / name).write_text(f"def {name[0]}():\n    return 1\n")
    subprocess.run(["git", "-C", str(tree), "add", "a.py", "b.py"], check=True)
    return corpus, tree


def test_dry_run_counts_corpus_and_git_sources_from_metadata_and_spends_nothing(tmp_path, scale_sources):
    corpus, tree = scale_sources
    judge = tmp_path / "ingest.yaml"
    judge.write_text("pyedu: true\npyedu_judge: {min_score: 4}\n")
    with FakeLLMServer(fixed("SCORE: 5")) as server:
        env = {"CODEIO_STORE": str(tmp_path / "store"), "CODEIO_DATABASE_URL": f"sqlite:///{tmp_path / 'l.db'}",
               "CODEIO_LLM_PRICES": json.dumps({MODEL: [1.0, 2.0]}), "CODEIO_DASK_WORKERS": "0",
               "CODEIO_LLM_API_KEY": "sk-test"}
        base = ["run", "--dry-run", "--json", "--source", f"corpus:{corpus}", "--source", f"git:{tree}",
                "--teacher", "openai", "--llm-base-url", server.base_url, "--model", MODEL]

        def dry(*extra: str) -> dict:
            done = CliRunner().invoke(app, [*base, *extra], env=env)
            assert done.exit_code == 0, done.output
            return json.loads(done.output)

        plain = dry()
        judged = dry("--ingest-config", str(judge))
        limited = dry("--limit", "7")
        assert server.requests == []

    assert (plain["corpus_files"], plain["git_files"]) == (3, 2)  # the untracked file is no source
    rows = plain["scale_rows"]
    assert plain["scale_rows_estimated"] and abs(rows - (5 + 4 + BIG_ROWS + 2)) <= BIG_ROWS // 20
    assert plain["raw_files"] == rows and plain["requests"]["normalize"] == rows
    assert plain["requests"]["synthesize"] == plain["instances_estimate"] > 0
    assert plain["prompt_tokens"] > rows * 100 and plain["cost_usd"] > 0  # rows of ~360 characters each
    assert "pyedu_judge" not in plain["requests"] and "corpus:/git:" in plain["note"]
    assert plain["instances_bounded"] and "an upper bound" in plain["note"]

    assert judged["requests"]["pyedu_judge"] == rows
    assert judged["cost_usd"] > plain["cost_usd"]
    # --limit: the first rows in source order (Parquet 5, then 2 of the gzip shard), counted exactly
    assert (limited["scale_rows"], limited["requests"]["normalize"]) == (7, 7)


def test_small_shards_are_counted_exactly(tmp_path, scale_sources):
    from codeio.settings import load_settings
    from codeio.sources import parse_source_specs
    from flows.estimate import scale_sizes

    corpus, tree = scale_sources
    (corpus / "c.jsonl").unlink()
    sizes = list(scale_sizes(parse_source_specs([f"corpus:{corpus}", f"git:{tree}"]), load_settings(), None))
    assert [(s.files, s.rows, s.exact) for s in sizes] == [(2, 9, True), (2, 2, True)]
    assert sizes[0].average_chars > 20 and sizes[1].average_chars == len("def a():\n    return 1\n")


def test_a_git_source_that_is_no_working_tree_and_an_empty_corpus_fail_before_the_dry_run(tmp_path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no shard here")
    env = {"CODEIO_STORE": str(tmp_path / "store"), "CODEIO_DATABASE_URL": f"sqlite:///{tmp_path / 'l.db'}"}
    done = CliRunner().invoke(app, ["run", "--dry-run", "--source", f"git:{tmp_path / 'plain'}",
                                    "--source", f"corpus:{tmp_path / 'empty'}"], env=env)
    assert done.exit_code == 2, done.output
    assert "is not a git working tree" in done.output and "holds no .jsonl" in done.output


def test_dry_run_without_an_endpoint_counts_the_functions_sources_carry_pairs_for(tmp_path):
    """Without an endpoint, leetcode: and dir: sources still give functions (statement
    examples, doctests): the dry run counted 0 instances for them while the run made
    hundreds. Each offline function counts K pairs per task (pairs are topped up to 10),
    an upper bound; nothing is requested."""
    from pathlib import Path

    data = Path(__file__).resolve().parent / "data"
    env = {"CODEIO_STORE": str(tmp_path / "store"), "CODEIO_DATABASE_URL": f"sqlite:///{tmp_path / 'l.db'}",
           "CODEIO_DASK_WORKERS": "0"}
    done = CliRunner().invoke(app, ["run", "--dry-run", "--json", "--source", f"leetcode:{data / 'leetcode_more'}",
                                    "--pairs-per-function", "2"], env=env)
    assert done.exit_code == 0, done.output
    estimate = json.loads(done.output)
    assert (estimate["raw_files"], estimate["offline_functions"]) == (5, 5)
    assert estimate["instances_estimate"] == 5 * 2 * 2 and estimate["requests"]["total"] == 0


def test_without_an_endpoint_the_instances_of_unread_rows_are_called_a_guess(tmp_path, scale_sources):
    """Offline, a corpus:/git: row gives one function per doctest-bearing function it holds
    (none, one or several), which the dry run cannot know without reading it: the estimate
    must not call its count an upper bound."""
    corpus, tree = scale_sources
    env = {"CODEIO_STORE": str(tmp_path / "store"), "CODEIO_DATABASE_URL": f"sqlite:///{tmp_path / 'l.db'}",
           "CODEIO_DASK_WORKERS": "0"}
    done = CliRunner().invoke(app, ["run", "--dry-run", "--json", "--source", f"git:{tree}"], env=env)
    assert done.exit_code == 0, done.output
    estimate = json.loads(done.output)
    assert estimate["git_files"] == 2 and estimate["requests"]["total"] == 0
    assert not estimate["instances_bounded"]
    assert "not a bound" in estimate["note"] and "(an upper bound)" not in estimate["note"]
    table = CliRunner().invoke(app, ["run", "--dry-run", "--source", f"git:{tree}"], env=env)
    assert table.exit_code == 0 and "a guess" in table.output, table.output
