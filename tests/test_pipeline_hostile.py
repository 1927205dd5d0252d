"""A whole pipeline run over the hostile corpus: it completes, the hostile
functions are rejected with their status, the good ones yield samples, and no
secret, file, connection or process escapes."""

from __future__ import annotations

import ast
import json
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from codeio.sandbox import SandboxConfig

HOSTILE = Path(__file__).resolve().parent / "hostile"
SECRET = "sk-hostile-test-secret-4b1d9e"
# Files whose sandbox outcome is harmless: they may yield pairs (set_order only if
# the re-check misses it, which it must not).
HARMLESS = {"good.py", "write_outside.py", "stdin_read.py"}


def _listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    accepted: list[bytes] = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            accepted.append(conn.recv(100))
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return server, accepted, stop


def _arguments(code: str) -> list[str]:
    tree = ast.parse(code)
    main = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main_solution")
    return [a.arg for a in main.args.args]


def _rows(port: int, outside: Path) -> list[dict]:
    rows = []
    for path in sorted(HOSTILE.glob("*.py")):
        code = path.read_text()
        values = {"port": port, "paths": [str(outside / "escaped.txt")]}
        ios = []
        for n in (1, 2, 3):
            given = {name: values.get(name, n) for name in _arguments(code)}
            output = given.get("x", n) * 2 if path.name == "good.py" else "never"
            ios.append({"input": given, "output": output})
        rows.append({"problem_description": f"What does {path.stem} return?", "io_requirements": "x: int",
                     "refcode": code, "funcname": "main_solution", "ios": ios, "meta": {"name": path.name}})
    return rows


def _contents(rows: list[dict]) -> list[tuple]:
    return sorted((r["task"], r["prompt"], r["turn_1"], r["feedback_1"], r["final_status"]) for r in rows)


def _sandbox_processes() -> list[str]:
    listing = subprocess.run(["ps", "-eo", "uid=,pid=,comm="], capture_output=True, text=True).stdout
    config = SandboxConfig()
    uids = range(config.uid_base, config.uid_base + config.uid_count)  # not nobody's (the unprivileged suite)
    return [line for line in listing.splitlines() if line.split() and int(line.split()[0]) in uids
            and "codeio-sandbox" not in line]


def test_pipeline_over_hostile_corpus(prefect_harness, tmp_path, monkeypatch):
    from flows.pipeline import codeio_pipeline
    from flows.spec import RunSpec

    server, accepted, stop = _listener()
    outside = tmp_path / "outside"
    outside.mkdir()
    corpus = tmp_path / "hostile.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in _rows(server.getsockname()[1], outside)))
    monkeypatch.setenv("CODEIO_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("CODEIO_DATABASE_URL", f"sqlite:///{tmp_path / 'lineage.db'}")
    monkeypatch.setenv("CODEIO_DASK_WORKERS", "0")
    monkeypatch.setenv("CODEIO_LLM_API_KEY", SECRET)  # the flow process holds a secret; the sandbox must not
    monkeypatch.delenv("CODEIO_LLM_BASE_URL", raising=False)
    try:
        summary = codeio_pipeline(spec=RunSpec(sources=(f"unified:{corpus}",), out=str(tmp_path / "out.jsonl"),
                                               revision_rounds=0))
    finally:
        stop.set()
        server.close()

    collect = next(s for s in summary["stages"] if s["stage"] == "collect_io")
    rejected = collect["rejected"]
    assert collect["in"] == len(list(HOSTILE.glob("*.py")))
    assert collect["counters"]["functions_kept"] + rejected == collect["in"]
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    kept = {row["origin"]["meta"]["name"] for row in rows}
    assert "good.py" in kept and kept <= HARMLESS, kept
    reasons = collect["rejects_by_reason"]
    # rejected for what their calls did, as statuses
    for status in ("timeout", "killed", "memory", "output_limit", "sandbox_error"):
        assert reasons.get(status, 0) >= 1, reasons

    # the good function's samples are exactly those of a run over it alone (issue 13: hostile
    # neighbours, forged frames among them, change nothing for the others)
    alone = tmp_path / "alone.jsonl"
    alone.write_text("".join(json.dumps(r) + "\n" for r in _rows(0, outside) if r["meta"]["name"] == "good.py"))
    monkeypatch.setenv("CODEIO_STORE", str(tmp_path / "store-alone"))
    monkeypatch.setenv("CODEIO_DATABASE_URL", f"sqlite:///{tmp_path / 'lineage-alone.db'}")
    codeio_pipeline(spec=RunSpec(sources=(f"unified:{alone}",), out=str(tmp_path / "alone-out.jsonl"), revision_rounds=0))
    alone_rows = [json.loads(line) for line in (tmp_path / "alone-out.jsonl").read_text().splitlines()]
    assert alone_rows and _contents(alone_rows) == _contents([r for r in rows if r["origin"]["meta"]["name"] == "good.py"])

    # nothing escaped
    assert accepted == []
    assert not (outside / "escaped.txt").exists()
    assert _sandbox_processes() == []
    for path in [*tmp_path.rglob("*")]:
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
