"""The `codeio` command as a user runs it: a real process, its own ephemeral Prefect API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

CODEIO = str(Path(sys.executable).with_name("codeio"))


@pytest.fixture
def cli(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CODEIO_", "PREFECT_API"))}
    env.update(CODEIO_DASK_WORKERS="0", PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1",
               PREFECT_HOME=str(tmp_path / "prefect"))
    env.pop("OPENAI_API_KEY", None)

    def call(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([CODEIO, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        if check and done.returncode != 0:
            raise AssertionError(f"codeio {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done

    call.cwd = tmp_path
    call.env = env
    return call


def test_run_runs_lineage_export(cli):
    done = cli("run", "--limit", "8", "--out", "out/samples.jsonl")
    assert "pass rate per round" in done.stdout and "assemble" in done.stdout
    assert "raw file(s) skipped" not in done.stderr  # the first 8 rows are unified functions
    rows = [json.loads(line) for line in (cli.cwd / "out" / "samples.jsonl").read_text().splitlines()]
    assert rows and {"prompt", "turn_1", "feedback_1", "turn_2", "feedback_2"} <= set(rows[0])
    assert (cli.cwd / ".codeio" / "lineage.db").exists() and (cli.cwd / ".codeio" / "store" / "datasets").is_dir()

    runs = json.loads(cli("runs", "--json").stdout)
    assert len(runs) == 1 and runs[0]["status"] == "completed"

    chain = json.loads(cli("lineage", rows[0]["sample_id"], "--json").stdout)
    assert chain["sample"]["sample_id"] == rows[0]["sample_id"]
    assert chain["source"]["content"] == chain["function"]["main_code"]  # a unified row is its own code
    assert chain["turns"][0]["verdict"]["status"] in {"success", "mismatch", "no_answer", "exception", "timeout"}
    assert runs[0]["id"] in {r["run_id"] for r in chain["sample_dataset"]["runs"]}
    text = cli("lineage", rows[0]["sample_id"]).stdout
    assert "source file" in text and "round 1" in text

    cli("export", "--out", "exp/all.jsonl", "--format", "jsonl", "--format", "parquet", "--format", "chat")
    assert [json.loads(x)["sample_id"] for x in (cli.cwd / "exp" / "all.jsonl").read_text().splitlines()] == \
        [r["sample_id"] for r in rows]
    assert pl.read_parquet(cli.cwd / "exp" / "all.parquet")["sample_id"].to_list() == [r["sample_id"] for r in rows]
    chat = [json.loads(x) for x in (cli.cwd / "exp" / "all.chat.jsonl").read_text().splitlines()]
    assert chat[0]["messages"][0] == {"role": "user", "content": rows[0]["prompt"]}
    assert chat[0]["messages"][1]["role"] == "assistant"

    missing = cli("lineage", "no-such-sample", check=False)
    assert missing.returncode == 1 and "no sample" in missing.stderr


def test_the_embedded_cluster_leaves_the_terminal_to_the_progress_bars(cli):
    """The README's first command runs on a LocalCluster: its start/stop INFO lines
    (scheduler, nannies, workers) stay out of the user's terminal."""
    del cli.env["CODEIO_DASK_WORKERS"]
    done = cli("run", "--limit", "4", "--out", "out/samples.jsonl")
    assert "collect_io" in done.stderr and "1/1 shards" in done.stderr
    assert "distributed." not in done.stderr + done.stdout, done.stderr[-2000:]
    assert (cli.cwd / "out" / "samples.jsonl").read_text()


def test_raw_sources_without_an_endpoint_say_what_to_set(cli, tmp_path):
    corpus = tmp_path / "raw"
    corpus.mkdir()
    (corpus / "a.py").write_text("def add(a, b):\n    return a + b\n")
    done = cli("run", "--source", f"dir:{corpus}", "--json", check=False)
    summary = json.loads(done.stdout)
    normalize = next(s for s in summary["stages"] if s["stage"] == "normalize")
    assert normalize["rejects_by_reason"] == {"needs_llm": 1} and summary["samples"] == 0
    # 0 samples is a failure, and the user is told why and what to set
    assert done.returncode == 1, done.stderr
    assert "produced 0 samples" in done.stderr and "normalize: 1 x needs_llm" in done.stderr
    assert "CODEIO_LLM_BASE_URL" in done.stderr
    bad = cli("run", "--source", "csv:nope", check=False)
    assert bad.returncode == 2 and "expected one of" in bad.stderr


def test_bad_inputs_fail_before_any_server_one_line_each(cli, tmp_path):
    """Every bad flag, setting and path is reported at once, one line each, exit 2,
    before the embedded Prefect API (whose database lives in PREFECT_HOME) starts."""
    (tmp_path / "a-file").write_text("not a folder")
    cli.env["CODEIO_DATABASE_URL"] = "nosuchdialect://x"
    done = cli("run", "--limit", "-3", "--instance-fraction", "1.5", "--revision-rounds", "7", "--format", "csv",
               "--source", "csv:nope", "--store", str(tmp_path / "a-file"), "--out", str(tmp_path / "a-file" / "x"),
               check=False)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr and all(line.startswith("error: ") for line in lines), done.stderr
    for name in ("--limit", "--instance-fraction", "--revision-rounds", "--format", "--source", "--store", "--out",
                 "CODEIO_DATABASE_URL"):
        assert sum(name in line for line in lines) == 1, (name, done.stderr)
    assert len(lines) == 8
    assert not (Path(cli.env["PREFECT_HOME"]) / "prefect.db").exists()

    cli.env["CODEIO_DATABASE_URL"] = f"sqlite:///{tmp_path / 'lineage.db'}"
    negative = cli("run", "--limit", "-3", check=False)  # silently gave 0 rows before
    assert negative.returncode == 2 and negative.stderr.strip().splitlines() == [
        "error: --limit: Input should be greater than or equal to 1 (got -3)"]
    cli.env["CODEIO_SHARD_SIZE"] = "0"
    setting = cli("run", check=False)
    assert setting.returncode == 2 and "CODEIO_SHARD_SIZE" in setting.stderr and "Traceback" not in setting.stderr


def test_an_endpoint_password_never_leaves_the_process(cli, tmp_path):
    """--llm-base-url with a password: no file the run writes (Prefect's flow-run
    parameters and logs in PREFECT_HOME, lineage, store, samples) holds it."""
    password = "hunter2-s3cret"
    done = cli("run", "--limit", "3", "--teacher", "offline", "--revision-rounds", "0", "--out", "out/samples.jsonl",
               "--llm-base-url", f"http://codeio:{password}@127.0.0.1:9/v1")
    assert password not in done.stdout + done.stderr
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert any(path.name == "prefect.db" for path in files) and (tmp_path / "out" / "samples.jsonl").read_text()
    assert [path for path in files if password.encode() in path.read_bytes()] == []


def test_ingest_command_prints_every_reason_whole_and_fails_on_nothing_kept(cli, tmp_path):
    """Off a terminal the summary prints each reject reason whole; a selection that
    keeps nothing exits 1 with the top reasons and what to change."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rows = [{"content": "x = %d\n" % i, "path": f"/{i}.py"} for i in range(3)]
    rows.append({"content": "print 'a python 2 script'\n" * 4 + "def f(a):\n    print a\n    return a * 2\n"})
    (corpus / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    done = cli("ingest", "--source", f"corpus:{corpus}", "--codemix", check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "rejects ingest select: too_small=3, python2=1" in done.stdout
    assert "produced 0 source files" in done.stderr and "keep_python2" in done.stderr
    kept = cli("ingest", "--source", f"corpus:{corpus}", "--codemix", "--keep-python2", "--json", check=False)
    summary = json.loads(kept.stdout)
    assert kept.returncode == 0 and summary["kept"] == 1 and summary["kept_by_rule"]["python2_kept"] == 1


def test_a_normalize_template_without_its_placeholder_is_a_clear_error(cli, tmp_path, prefect_harness):
    """Checked when the run loads its templates: one line, exit 2, no traceback."""
    from prefect.settings import get_current_settings

    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "normalize.v1.txt").write_text("Rewrite the code below as a CodeI/O function.\n", encoding="utf-8")
    corpus = tmp_path / "raw"
    corpus.mkdir()
    (corpus / "a.py").write_text("def add(a, b):\n    return a + b\n")
    env = dict(cli.env, CODEIO_PROMPT_DIR=str(prompts), CODEIO_LLM_BASE_URL="http://127.0.0.1:9/v1",
               PREFECT_API_URL=str(get_current_settings().api.url))
    done = subprocess.run([CODEIO, "run", "--source", f"dir:{corpus}", "--teacher", "openai"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    said = " ".join(done.stderr.split())
    assert "lacks the placeholder(s) $raw_code" in said and "Traceback" not in said
