"""The store on S3 (a moto server on 127.0.0.1, the way s3fs tests itself): the
DataStore's layout and guarantees, the caches, credentials handling, and a
whole pipeline run with lineage in PostgreSQL that gives the same samples as
the embedded defaults (local folder + SQLite)."""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path

import pytest
import s3fs
from conftest import TOY, needs_toy
from s3_server import TEST_KEY, TEST_SECRET, moto_s3  # noqa: F401 - the fixture
from sqlalchemy import create_engine, text

from codeio.llm.base import ChatRequest
from codeio.records import STR, UNIFIED_FUNCTION as FUNCTION
from codeio.settings import load_settings
from storage.store import DataStore

SECRETS = (TEST_KEY, TEST_SECRET)
PART_SIZE = 5 * 2**20  # S3's smallest multipart part
MULTIPART_CHUNK = 6 * 2**20  # above one part: the write becomes a multipart upload
CREDENTIAL_VARS = ("CODEIO_S3_KEY", "CODEIO_S3_SECRET", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                   "CODEIO_S3_ENDPOINT_URL", "CODEIO_S3_REGION", "CODEIO_STORAGE_OPTIONS", "AWS_SESSION_TOKEN",
                   "AWS_PROFILE", "AWS_DEFAULT_REGION")


@pytest.fixture
def s3_env(moto_s3, monkeypatch):  # noqa: F811 - pytest fixture injection
    """CODEIO_* settings for a fresh bucket; no AWS_* variables, so the credentials
    can only reach s3fs through our settings translation."""
    for name in CREDENTIAL_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in moto_s3.env().items():
        monkeypatch.setenv(name, value)
    bucket = moto_s3.create_bucket()
    return moto_s3, bucket


def some_functions(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        row = {name: None for name in FUNCTION.columns}
        row.update({name: f"{name}-{i}" for name, kind in FUNCTION.fields if kind == STR})
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- DataStore


def test_datastore_layout_and_round_trip_on_s3(s3_env):
    server, bucket = s3_env
    store = DataStore(f"s3://{bucket}/runs/a", server.storage_options())
    assert not store.is_local and store.uri("x") == f"s3://{bucket}/runs/a/x"
    rows = some_functions(5)
    rejects = [{"record_id": "r1", "reason": "too_long", "detail": "x" * 10}]
    assert store.part_marker("normalize", "k1", 0) is None and store.manifest("normalize", "k1") is None
    marker = store.write_part("normalize", "k1", 0, FUNCTION, rows, rejects, {"records_in": 6})
    assert marker == {"part": 0, "records": 5, "rejected": 1, "records_in": 6}
    assert store.part_marker("normalize", "k1", 0) == marker
    store.write_part("normalize", "k1", 1, FUNCTION, [], [], {"records_in": 0})
    store.write_manifest("normalize", "k1", {"parts": 2, "records": 5})

    assert store.read_part("normalize", "k1", 0) == rows
    assert store.read_part("normalize", "k1", 1) == []
    first_column = FUNCTION.columns[0]
    assert store.read_frame("normalize", "k1", 0, columns=[first_column]).columns == [first_column]
    assert [r["reason"] for r in store.read_rejects("normalize", "k1", 0)] == ["too_long"]
    assert sum(frame.height for frame in store.iter_frames("normalize", "k1")) == 5
    assert store.manifest("normalize", "k1") == {"parts": 2, "records": 5}
    assert store.dataset_keys("normalize") == ["k1"] and store.dataset_keys("verify") == []
    with pytest.raises(FileNotFoundError, match=f"s3://{bucket}/runs/a/datasets/normalize/k1/part-00007"):
        store.read_frame("normalize", "k1", 7)
    with pytest.raises(FileNotFoundError, match="no manifest"):
        list(store.iter_frames("normalize", "nope"))

    cache = store.kv("llm")
    assert cache.get("ab12") is None
    cache.put("ab12", b"answer")
    assert cache.get("ab12") == b"answer"

    # exactly the documented layout, no temporary objects
    dataset = "runs/a/datasets/normalize/k1/"
    assert server.keys(bucket) == sorted([
        "runs/a/cache/llm/ab/ab12",
        dataset + "_manifest.json", dataset + "_parts/00000.json", dataset + "_parts/00001.json",
        dataset + "part-00000.parquet", dataset + "part-00001.parquet",
        dataset + "rejects-00000.parquet", dataset + "rejects-00001.parquet",
    ])
    assert json.loads(server.get(bucket, dataset + "_parts/00000.json"))["records"] == 5


def test_a_store_sees_what_other_processes_wrote(s3_env):
    """Dask workers write parts the flow process then looks for: no stale listing."""
    server, bucket = s3_env
    store = DataStore(f"s3://{bucket}/p", server.storage_options())
    store.write_bytes("datasets/verify/k/_parts/00000.json", b"{}")
    assert store.list_dir("datasets/verify/k/_parts") == ["00000.json"]  # a listing the fs could cache
    other = s3fs.S3FileSystem(skip_instance_cache=True, **server.storage_options())  # another process' view
    other.pipe(f"{bucket}/p/datasets/verify/k/_parts/00001.json", b'{"part": 1}')
    assert store.part_marker("verify", "k", 1) == {"part": 1}
    assert store.exists("datasets/verify/k/_parts/00001.json")
    assert store.list_dir("datasets/verify/k/_parts") == ["00000.json", "00001.json"]


def test_objects_appear_whole_or_not_at_all(s3_env):
    """What write_bytes relies on: an S3 object becomes visible only when its
    upload completes (one PUT, or CompleteMultipartUpload for big ones), so a
    marker or manifest is never read half-written and a reader sees the old
    version until a new one is complete."""
    server, bucket = s3_env
    store = DataStore(f"s3://{bucket}/p", server.storage_options())
    store.write_bytes("big", b"old")
    path = f"{store.root}/big"
    with store.fs.open(path, "wb", block_size=PART_SIZE) as handle:
        handle.write(b"a" * MULTIPART_CHUNK)
        handle.flush()  # the first part is uploaded now
        assert handle.mpu is not None
        assert store.read_bytes("big") == b"old"
        handle.write(b"b" * 10)
    assert store.read_bytes("big") == b"a" * MULTIPART_CHUNK + b"b" * 10

    # an upload that fails before completion leaves nothing behind
    handle = store.fs.open(f"{store.root}/never", "wb", block_size=PART_SIZE)
    handle.write(b"c" * MULTIPART_CHUNK)
    handle.flush()
    assert handle.mpu is not None and not store.exists("never")
    handle.discard()  # what a crashed writer amounts to: the upload is never completed
    handle.closed = True  # so that garbage collection does not try to complete it
    assert store.read_bytes("never") is None and not store.exists("never")
    assert server.keys(bucket) == ["p/big"]

    # a whole shard rewritten by a retry replaces the old objects, never mixes them
    rows = some_functions(3)
    store.write_part("s", "k", 0, FUNCTION, rows[:1], [], {})
    store.write_part("s", "k", 0, FUNCTION, rows, [], {})
    assert store.read_part("s", "k", 0) == rows and store.part_marker("s", "k", 0)["records"] == 3


def test_settings_reach_s3fs_and_credentials_stay_hidden(s3_env, monkeypatch):
    from flows.pipeline import open_store

    server, bucket = s3_env
    url = f"s3://{bucket}/from-settings"
    for via_aws in (False, True):
        if via_aws:  # the standard AWS variables are accepted too
            for ours, theirs in (("CODEIO_S3_KEY", "AWS_ACCESS_KEY_ID"), ("CODEIO_S3_SECRET", "AWS_SECRET_ACCESS_KEY")):
                monkeypatch.setenv(theirs, server.credentials.key if "KEY" in ours else server.credentials.secret)
                monkeypatch.delenv(ours)
        settings = load_settings(store=url)
        store = open_store(settings)
        assert store.storage_options["key"] == TEST_KEY and store.storage_options["secret"] == TEST_SECRET
        assert store.storage_options["client_kwargs"] == {"endpoint_url": server.endpoint_url,
                                                          "region_name": server.credentials.region}
        store.write_json(f"probe-{via_aws}.json", {"ok": True})
        # a worker rebuilds the store from its picklable spec
        spec = pickle.loads(pickle.dumps(store.spec))
        assert spec.open().read_json(f"probe-{via_aws}.json") == {"ok": True}
        shown = " ".join([repr(store), repr(store.spec), str(store.spec), store.uri("a"),
                          json.dumps(settings.public_dump())])
        assert not any(secret in shown for secret in SECRETS), shown
    assert server.keys(bucket, "from-settings/") == ["from-settings/probe-False.json", "from-settings/probe-True.json"]


def test_llm_response_cache_lives_on_s3(s3_env):
    """The response cache is a store.kv namespace: a second client (a fresh
    process, another worker) answers from the bucket without asking the endpoint."""
    from llm_server import FakeLLMServer, Reply, last_user_message

    from codeio.llm.openai_client import LLMConfig, OpenAIChatLLM

    server, bucket = s3_env
    store_url = f"s3://{bucket}/p"
    requests = [ChatRequest(messages=({"role": "user", "content": f"question {i}"},), model="fake-model")
                for i in range(3)]
    with FakeLLMServer(lambda body, info: Reply(content=f"answer: {last_user_message(body)}")) as llm_server:
        config = LLMConfig(base_url=llm_server.base_url, api_key="sk-unused", model="fake-model", timeout=5.0)
        first, _ = OpenAIChatLLM(config, cache=DataStore(store_url, server.storage_options()).kv("llm")).complete(requests)
        asked = len(llm_server.requests)
        second, usage = OpenAIChatLLM(config, cache=DataStore(store_url, server.storage_options()).kv("llm")).complete(requests)
        assert len(llm_server.requests) == asked == 3
    assert [r.text for r in second] == [r.text for r in first] == [f"answer: question {i}" for i in range(3)]
    assert all(r.cached for r in second) and usage.requests == 0
    cached = server.keys(bucket, "p/cache/llm/")
    assert len(cached) == 3 and {key.rsplit("/", 1)[1] for key in cached} == {r.cache_key() for r in requests}


# --------------------------------------------------------------------------- pipeline


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def run_once(out: Path, sources: list[str], limit: int | None) -> dict:
    from prefect import flow

    from flows.pipeline import run_pipeline
    from flows.spec import RunSpec

    @flow(name="codeio-s3-test")
    def wrapper() -> dict:
        return run_pipeline(load_settings(), RunSpec(sources=tuple(sources), limit=limit, out=str(out)),
                            progress=False)

    return wrapper()


def pg_dump_text(url: str) -> str:
    """Every row of every lineage table as JSON text."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            tables = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars().all()
            return "\n".join(json.dumps(conn.execute(text(f'SELECT row_to_json(t)::text FROM "{t}" t')).scalars().all())
                             for t in tables)
    finally:
        engine.dispose()


@pytest.mark.slow
@needs_toy()
def test_pipeline_on_s3_and_postgres_equals_embedded_defaults(prefect_harness, s3_env, pg_database, tmp_path,
                                                               monkeypatch, caplog, capfd):
    server, bucket = s3_env
    sources, limit = [f"unified:{TOY / 'unified_with_ios.jsonl'}"], 8
    monkeypatch.setenv("CODEIO_DASK_WORKERS", "0")
    for name in ("CODEIO_LLM_BASE_URL", "CODEIO_LLM_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    caplog.set_level(logging.DEBUG)

    # the embedded defaults: a local folder and SQLite
    monkeypatch.setenv("CODEIO_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("CODEIO_DATABASE_URL", f"sqlite:///{tmp_path / 'lineage.db'}")
    local = run_once(tmp_path / "local.jsonl", sources, limit)

    # S3 (credentials only through CODEIO_S3_*) and PostgreSQL
    monkeypatch.setenv("CODEIO_STORE", f"s3://{bucket}/codeio")
    monkeypatch.setenv("CODEIO_DATABASE_URL", pg_database)
    remote = run_once(tmp_path / "s3.jsonl", sources, limit)

    local_rows, s3_rows = read_rows(tmp_path / "local.jsonl"), read_rows(tmp_path / "s3.jsonl")
    assert len(s3_rows) == remote["samples"] == local["samples"] > 0
    assert s3_rows == local_rows
    assert remote["samples_dataset"]["uri"].startswith(f"s3://{bucket}/codeio/datasets/assemble/")

    keys = server.keys(bucket)
    stages = {key.split("/")[2] for key in keys if key.startswith("codeio/datasets/")}
    assert {"ingest", "normalize", "collect_io", "build_prompts", "synthesize", "verify", "assemble"} <= stages
    for item in remote["stages"]:
        assert f"codeio/datasets/{item['stage']}/{item['key']}/_manifest.json" in keys, item["label"]
        assert item["uri"].startswith(f"s3://{bucket}/codeio/")
    assert any(key.startswith("codeio/cache/exec/") for key in keys)  # the execution cache

    # lineage in PostgreSQL: the run, its datasets at their S3 URIs, and no credentials
    dump = pg_dump_text(pg_database)
    assert f"s3://{bucket}/codeio/datasets/assemble/" in dump and server.endpoint_url in dump
    engine = create_engine(pg_database)
    try:
        with engine.connect() as conn:
            (run_settings,) = conn.execute(text("SELECT settings FROM runs")).scalars().all()
    finally:
        engine.dispose()
    assert run_settings["store"] == f"s3://{bucket}/codeio"
    assert run_settings["s3_key"] in ("**set**", "**redacted**")
    assert run_settings["s3_secret"] in ("**set**", "**redacted**")
    assert not any(secret in dump for secret in SECRETS)

    # no credentials in logs, printed output, samples or any stored object
    # (botocore's own DEBUG log shows the access key id in the signed Authorization
    # header, as AWS documents; the secret key never appears at any level)
    captured = capfd.readouterr()
    all_logs = "\n".join(record.getMessage() for record in caplog.records)
    info_logs = "\n".join(record.getMessage() for record in caplog.records if record.levelno >= logging.INFO)
    assert TEST_SECRET not in all_logs and TEST_KEY not in info_logs
    samples_text = (tmp_path / "s3.jsonl").read_text()
    for secret in SECRETS:
        assert secret not in captured.out and secret not in captured.err
        assert secret not in samples_text and secret not in json.dumps(remote, default=str)
    objects = b"".join(server.get(bucket, key) for key in keys if "/cache/" not in key)
    assert not any(secret.encode() in objects for secret in SECRETS)
