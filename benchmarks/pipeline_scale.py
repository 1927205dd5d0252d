"""Scale and overhead of the whole pipeline on a synthetic corpus of small unified
functions: per-record cost at each corpus size, peak memory of the process tree,
and the share of the time that orchestration (Prefect + the task runner + the
books) costs over calling the stages directly.

    .venv/bin/python benchmarks/pipeline_scale.py [--sizes 2000,20000,100000] [--direct-sizes 2000,20000]
                                                  [--shard-size N]

On 2 cores a run costs about 8-10 ms per function (the flow, and the direct run
again where asked): about 25 minutes for the default sizes with the direct run
at 2k and 20k only, about 40 with it at 100k too. The shard size is the
setting's (CODEIO_SHARD_SIZE, 1000) unless ``--shard-size`` says otherwise.

Each size is a fresh corpus (deterministic: the same functions every time; small,
distinct functions with 2-3 given pairs each) written as unified JSONL in a temp
dir, run through ingest -> normalize -> collect_io -> build_prompts ->
synthesize (offline teacher) -> verify -> assemble twice, in this process run:

- "direct": the stage tasks' own functions (``tasks.lane.run_lane``: the same
  reads, stage calls, writes and completion markers as the flow's tasks, as
  plain calls), each part taken through every stage in order (as the flow's
  lanes do: no barrier between stages) on as many worker processes as the
  flow's task runner has (each process with its own sandbox pool and execution
  cache, built exactly as the flow's workers build them), with no Prefect task
  run, no Dask and no lineage;
- "flow": the ``codeio-pipeline`` flow with the production defaults (Dask
  LocalCluster, lineage in SQLite, markers and manifests).

Both start from an empty store of their own (so neither reuses the other's
execution cache) and do the same work; both times include their worker
start-up. Prefect's ephemeral API server is started once before any timing and
its URL is handed to the worker processes as PREFECT_API_URL (production has a
server running and sets that variable; see ``share_api_server``). Per-record
cost is the flow's seconds per function; orchestration share is
``(flow - direct) / flow`` at the largest size with both runs. Peak memory is
the largest sum of RSS over every process under this one (flow process, API
server, Dask worker processes, sandbox servers and their children, the direct
run's workers), sampled every 0.25 s (shared pages count in every process that
maps them: an upper bound).

Last line: ``per_record_ratio_100k_vs_2k=<x> peak_rss_mb=<n> orchestration_share=<x>``
(the ratio is largest size vs smallest size when ``--sizes`` says otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_SIZES = (2_000, 20_000, 100_000)
SAMPLE_INTERVAL_S = 0.25
MiB = 1024 * 1024

# ---- the synthetic corpus ----------------------------------------------------------
# Small function families; constants derived from the row number make every
# function distinct. _family_output is each family's twin that computes the pairs.
FAMILIES: tuple[tuple[str, str], ...] = (
    (
        "Sum of a modular sequence",
        "def main_solution(n, k):\n"
        "    total = 0\n"
        "    for i in range(n):\n"
        "        total += (i * {a} + k) % {m}\n"
        "    return total\n",
    ),
    (
        "Count the hits in a window",
        "def is_hit(x):\n"
        "    return x % {a} == 0 or x % {m} == {b}\n"
        "\n"
        "def main_solution(n, k):\n"
        "    hits = [x for x in range(k, k + n) if is_hit(x)]\n"
        "    return {{\"count\": len(hits), \"first\": hits[:3]}}\n",
    ),
    (
        "A halving walk",
        "def step(x):\n"
        "    return x // 2 if x % 2 == 0 else x + {odd}\n"
        "\n"
        "def main_solution(n, k):\n"
        "    x = n + k\n"
        "    seen = []\n"
        "    while x != 1 and len(seen) < {m}:\n"
        "        seen.append(x)\n"
        "        x = step(x)\n"
        "    return [len(seen), x]\n",
    ),
    (
        "Reverse a shifted word",
        "def main_solution(n, k):\n"
        "    letters = \"abcdefghijklmnopqrstuvwxyz\"\n"
        "    word = \"\".join(letters[(i * {a} + k) % 26] for i in range(n))\n"
        "    return word[::-1][:{m}]\n",
    ),
)


def _family_output(family: int, a: int, m: int, b: int, n: int, k: int) -> Any:
    if family == 0:
        return sum((i * a + k) % m for i in range(n))
    if family == 1:
        hits = [x for x in range(k, k + n) if x % a == 0 or x % m == b]
        return {"count": len(hits), "first": hits[:3]}
    if family == 2:
        x, seen = n + k, []
        while x != 1 and len(seen) < m:
            seen.append(x)
            x = x // 2 if x % 2 == 0 else x + (2 * a + 1)
        return [len(seen), x]
    letters = "abcdefghijklmnopqrstuvwxyz"
    word = "".join(letters[(i * a + k) % 26] for i in range(n))
    return word[::-1][:m]


def corpus_row(index: int) -> dict[str, Any]:
    """Row ``index`` of the corpus: the same row for the same index, every time."""
    family = index % len(FAMILIES)
    serial = index // len(FAMILIES)
    a = 3 + serial % 97
    m = 7 + (serial // 97) % 89
    b = serial // (97 * 89) % 5
    title, template = FAMILIES[family]
    code = f"# synthetic function {index}\n" + template.format(a=a, m=m, b=b, odd=2 * a + 1)
    pairs = 2 + index % 2
    ios = []
    for j in range(pairs):
        n, k = 3 + (index + 5 * j) % 9, (index * 7 + 3 * j) % 11 + 1
        ios.append({"input": {"n": n, "k": k}, "output": _family_output(family, a, m, b, n, k)})
    return {
        "problem_description": f"{title} (variant {index}): given `n` and `k`, what does the computation return?",
        "io_requirements": "Input:\n  `n` (int): length, 3 to 11.\n  `k` (int): offset, 1 to 11.\n\n"
                           "Output:\n  `return`: the computed value.",
        "refcode": code,
        "funcname": "main_solution",
        "ios": ios,
        "input_generator": None,
        "category": "synthetic",
        "meta": {"name": f"synthetic_{index}", "license": "CC0-1.0"},
    }


def write_corpus(path: Path, size: int) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for index in range(size):
            handle.write(json.dumps(corpus_row(index)) + "\n")


# ---- memory of the process tree -----------------------------------------------------
class TreeMemory:
    """Samples the summed RSS of this process and all its descendants (shared pages
    count once per process, so this overstates the real footprint)."""

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self.me = psutil.Process()
        self.peak_rss = 0
        self.peak_procs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tree-memory", daemon=True)

    def sample(self) -> None:
        procs = [self.me, *self.me.children(recursive=True)]
        rss = 0
        for proc in procs:
            try:
                rss += proc.memory_info().rss
            except (self._psutil.NoSuchProcess, self._psutil.AccessDenied):
                continue
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_procs = max(self.peak_procs, len(procs))

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL_S):
            try:
                self.sample()
            except self._psutil.Error:
                continue

    def reset(self) -> None:
        self.peak_rss = self.peak_procs = 0

    def __enter__(self) -> "TreeMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# ---- the direct run ------------------------------------------------------------------
def run_spec(corpus: Path) -> Any:
    """The run both sides make: the corpus, the offline teacher, no revision round."""
    from flows.spec import RunSpec

    return RunSpec(sources=(f"unified:{corpus}",), teacher="offline", revision_rounds=0)


def _direct_lane(steps: list[tuple[str, Any]]) -> int:
    """One part through every stage in order with the stage tasks' own functions
    (``tasks.lane.run_lane``: plain calls, no Prefect task run), as the flow's
    lanes run it; returns the part's samples."""
    from tasks.lane import run_lane

    return run_lane(steps)[-1].records_out


def run_direct(corpus: Path, settings: Any, workers: int) -> tuple[float, int]:
    """The stages without Prefect, Dask or lineage; returns (seconds, samples)."""
    import multiprocessing

    from codeio import prompting
    from codeio.sources import parse_source_specs
    from flows.pipeline import open_store, sandbox_config
    from flows.spec import stage_configs
    from tasks.assemble import assemble_task
    from tasks.build_prompts import build_prompts_task
    from tasks.collect_io import collect_io_task
    from tasks.ingest import ingest_config, ingest_task
    from tasks.normalize import normalize_task
    from tasks.resources import RuntimeSpec, usable_cores
    from tasks.shard import DatasetRef, ShardJob
    from tasks.synthesize import synthesize_task
    from tasks.verify import verify_task

    start = time.perf_counter()
    store = open_store(settings)
    templates = prompting.PromptTemplates.load(settings.prompt_dir)
    # each process gets the sandbox batches a Dask worker of the flow gets: its share of the cores
    runtime = RuntimeSpec(store=store.spec, sandbox=sandbox_config(settings), llm=None,
                          parallelism=max(1, usable_cores() // workers), templates=templates)
    specs = parse_source_specs(list(run_spec(corpus).sources))
    sources, _ = ingest_task.fn(specs, ingest_config(specs, None, settings.shard_size), store)
    parts = sources.parts
    configs = stage_configs(run_spec(corpus), settings, templates, raw_sources=False)

    def ref(stage: str) -> DatasetRef:
        return DatasetRef(stage, f"direct-{stage}", parts)

    # (task, stage, config, inputs, options) as the flow wires them for the run's spec (R=0)
    stages = [
        (normalize_task, "normalize", configs.normalize, {"sources": sources}, {}),
        (collect_io_task, "collect_io", configs.collect_io, {"functions": ref("normalize")}, {}),
        (build_prompts_task, "build_prompts", configs.build_prompts,
         {"functions": ref("normalize"), "pairs": ref("collect_io")}, {}),
        (synthesize_task, "synthesize", configs.synthesize,
         {"instances": ref("build_prompts")}, {"round": 1, "timeout_s": settings.exec_timeout_s}),
        (verify_task, "verify", configs.verify,
         {"instances": ref("build_prompts"), "responses": ref("synthesize")}, {"round": 1}),
        (assemble_task, "assemble", configs.assemble,
         {"instances": ref("build_prompts"), "responses_1": ref("synthesize"), "verdicts_1": ref("verify")},
         {"rounds": 1}),
    ]
    lanes = [[(task.name, ShardJob(stage=stage, key=ref(stage).key, part=part, config=config, inputs=inputs,
                                   runtime=runtime, options=options))
              for task, stage, config, inputs, options in stages] for part in range(parts)]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        samples = sum(pool.map(_direct_lane, lanes))
    return time.perf_counter() - start, samples


# ---- the flow run --------------------------------------------------------------------
def run_flow(corpus: Path) -> tuple[float, int, dict[str, float]]:
    """The codeio-pipeline flow; returns (seconds, samples, seconds per stage)."""
    from flows.pipeline import codeio_pipeline

    start = time.perf_counter()
    summary = codeio_pipeline(spec=run_spec(corpus), show_progress=False)
    seconds = time.perf_counter() - start
    stages = {s["label"]: s["seconds"] for s in summary["stages"]}
    return seconds, int(summary["samples"]), stages


def warm_prefect() -> float:
    """Start the ephemeral API server (and import Prefect) before any timing."""
    from prefect import flow

    @flow(name="pipeline-scale-warmup")
    def warmup() -> int:
        return 1

    start = time.perf_counter()
    warmup()
    return time.perf_counter() - start


def share_api_server() -> None:
    """Give the task runner's worker processes this process's API server, as
    production does with PREFECT_API_URL. Without it every Dask worker process
    starts an ephemeral server of its own (about 220 MB and several seconds each,
    and its task runs land in a database nobody reads)."""
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value() and not os.environ.get("PREFECT_API_URL"):
        from prefect.server.api.server import SubprocessASGIServer

        os.environ["PREFECT_API_URL"] = SubprocessASGIServer().api_url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(str(s) for s in DEFAULT_SIZES),
                        help="corpus sizes (functions), comma-separated")
    parser.add_argument("--direct-sizes", default=None,
                        help="sizes that also get the direct run (default: all)")
    parser.add_argument("--shard-size", type=int, default=None, help="CODEIO_SHARD_SIZE (default: the setting's)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    direct_sizes = set(sizes) if args.direct_sizes is None else {int(s) for s in args.direct_sizes.split(",") if s}

    work = Path(tempfile.mkdtemp(prefix="codeio-scale-"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")  # workers inherit it: no start/stop chatter
    os.environ.setdefault("PREFECT_HOME", str(work / "prefect-home"))
    if args.shard_size:
        os.environ["CODEIO_SHARD_SIZE"] = str(args.shard_size)
    from codeio.settings import load_settings

    base = load_settings()
    from flows.pipeline import local_workers

    workers = local_workers(base)
    print(f"sizes {sizes}, shard size {base.shard_size}, {workers} task-runner workers, {os.cpu_count()} cores, "
          f"work dir {work}")
    rows: list[dict[str, Any]] = []
    try:
        with TreeMemory() as memory:
            print(f"prefect warm-up (ephemeral API server): {warm_prefect():.1f} s")
            share_api_server()
            for size in sizes:
                corpus = work / f"corpus-{size}.jsonl"
                write_corpus(corpus, size)
                row: dict[str, Any] = {"size": size}
                if size in direct_sizes:
                    memory.reset()
                    settings = load_settings(store=str(work / f"store-direct-{size}"))
                    row["direct_s"], row["direct_samples"] = run_direct(corpus, settings, max(workers, 1))
                    row["direct_peak_rss"] = memory.peak_rss
                memory.reset()
                os.environ["CODEIO_STORE"] = str(work / f"store-flow-{size}")
                os.environ["CODEIO_DATABASE_URL"] = f"sqlite:///{work / f'lineage-{size}.db'}"
                row["flow_s"], row["flow_samples"], row["stages"] = run_flow(corpus)
                memory.sample()
                row["flow_peak_rss"], row["procs"] = memory.peak_rss, memory.peak_procs
                rows.append(row)
                _print_row(row)
                shutil.rmtree(work / f"store-direct-{size}", ignore_errors=True)
                shutil.rmtree(work / f"store-flow-{size}", ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    first, last = rows[0], rows[-1]
    ratio = (last["flow_s"] / last["size"]) / (first["flow_s"] / first["size"])
    peak = max(max(r["flow_peak_rss"], r.get("direct_peak_rss", 0)) for r in rows)
    with_direct = [r for r in rows if "direct_s" in r]
    share = ((with_direct[-1]["flow_s"] - with_direct[-1]["direct_s"]) / with_direct[-1]["flow_s"]
             if with_direct else float("nan"))
    print(f"per-record cost, largest vs smallest size ({last['size']} vs {first['size']}): ratio {ratio:.3f}")
    if with_direct:
        print(f"orchestration share at {with_direct[-1]['size']}: {share:.3f}")
    print(f"per_record_ratio_100k_vs_2k={ratio:.3f} peak_rss_mb={peak / MiB:.0f} orchestration_share={share:.3f}")


def _print_row(row: dict[str, Any]) -> None:
    size = row["size"]
    line = (f"{size:>7} functions: flow {row['flow_s']:8.1f} s = {1e3 * row['flow_s'] / size:6.2f} ms/function "
            f"({row['flow_samples']} samples), peak RSS {row['flow_peak_rss'] / MiB:6.0f} MB "
            f"({row['procs']} processes at most)")
    if "direct_s" in row:
        share = (row["flow_s"] - row["direct_s"]) / row["flow_s"]
        line += (f"; direct {row['direct_s']:8.1f} s = {1e3 * row['direct_s'] / size:6.2f} ms/function "
                 f"({row['direct_samples']} samples, peak RSS {row['direct_peak_rss'] / MiB:.0f} MB); "
                 f"orchestration share {share:.3f}")
    print(line, flush=True)
    print("         flow stage seconds (summed over shards): "
          + ", ".join(f"{k} {v:.1f}" for k, v in row["stages"].items()), flush=True)


if __name__ == "__main__":
    main()
