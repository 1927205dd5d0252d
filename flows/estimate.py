"""`codeio run --dry-run`: what a run would ask of the LLM, before spending anything.

Nothing is executed or requested. The requests are built the way the stages
build them wherever the sources allow it, and priced with
:func:`codeio.llm.openai_client.estimate_cost` against the response cache on
the store, so a completion that is already cached counts as free:

- normalize: one exact request per raw file (the real template and settings);
- synthesize: exact round-1 prompts where the function's pairs are already in
  a collect_io dataset of the store (a rerun), else from the given pairs of a
  unified source (assumed to survive re-validation); a raw file's function
  comes from its cached normalization when there is one (an unparseable one
  yields nothing), else from the raw file itself, with placeholder pairs;
  without an endpoint, a raw file's or problem's functions are those its
  doctests or statement examples give (parsed only), K pairs each;
- revise: an upper bound for new work, every uncached round-1 answer assumed
  wrong unless a pass rate is given, each round's prompt growing by an answer
  and its feedback; revisions of cached answers are assumed cached too (their
  prompts depend on verification, so they cannot be looked up).

``corpus:`` and ``git:`` sources are never read here: their rows are counted from
the Parquet footers (rows, and the content column's size), from the first MiB of
each JSONL shard (rows per byte, scaled to the file's size: an estimate, exact
when the file is smaller) and from ``git ls-files`` with the files' sizes. Each
row then stands for one raw file of the average size, uncached, that every
selection rule keeps (an upper bound). Without an endpoint such a row counts as one
function, which is a guess rather than a bound (a file may hold several
doctest-bearing functions or none): ``instances_bounded`` says so. With the
ingest option ``pyedu_judge``, each raw file also costs one judge request.

Completions use the assumed lengths below (``max_tokens`` gives the maximum).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from rich.console import Console
from rich.table import Table

from codeio import normalize as parsing
from codeio import prompting
from codeio.examples.offline import normalization_text, offline_functions
from codeio.llm.base import ChatRequest
from codeio.settings import Settings
from codeio.stages import normalize as normalize_stage
from codeio.sources import SCALE_KINDS, SourceSpec, parse_source_specs, read_sources
from flows.spec import TASK_MIXES, RunSpec, resolve_teacher, uses_llm

ASSUMED_NORMALIZE_COMPLETION_TOKENS = 900
ASSUMED_ANSWER_COMPLETION_TOKENS = 600
ASSUMED_FEEDBACK_CHARS = 200  # execution feedback of a revision turn
ASSUMED_JUDGE_COMPLETION_TOKENS = 40  # "SCORE: n" and a one-sentence reason
JSONL_SAMPLE_BYTES = 1 << 20  # the head of a JSONL shard read to count its rows per byte
ASSUMED_GIVEN_JSON = json.dumps({"value": "x" * 40})  # a sampled input or output we cannot know before running
PAIR_COLUMNS = ["function_id", "pair_index", "input", "output"]
TALLY_FIELDS = ("requests", "cached", "prompt_tokens", "completion_tokens", "completion_tokens_max", "cost_usd",
                "cost_usd_max")


class _Tally:
    """Running totals of one stage's requests, priced a function at a time so a
    large corpus is never held in memory."""

    def __init__(self, config: Any, completion_tokens: int) -> None:
        self._config = config
        self._completion = completion_tokens
        self.values = {name: 0 for name in TALLY_FIELDS}
        self.prices_known = True

    def add(self, requests: list[ChatRequest], cached: int = 0, times: int = 1) -> None:
        """``times``: how many rows these requests stand for (scale sources)."""
        from codeio.llm.openai_client import estimate_cost

        estimate = estimate_cost(requests, self._config, None, self._completion)
        for name in TALLY_FIELDS:
            self.values[name] += estimate.get(name, 0) * times
        self.values["cached"] += cached * times
        self.prices_known = self.prices_known and estimate["prices_known"]

    def scaled(self, factor: float) -> dict[str, Any]:
        return {name: value * factor if name.startswith("cost") else int(round(value * factor))
                for name, value in self.values.items()}


def estimate_run(settings: Settings, spec: RunSpec, first_round_pass_rate: float = 0.0) -> dict[str, Any]:
    from codeio.llm.openai_client import LLMConfig
    from flows.pipeline import open_store

    teacher = resolve_teacher(settings, spec.teacher)
    endpoint = uses_llm(settings, teacher)  # the pipeline normalizes with the LLM whenever one is set
    revision_rounds, pairs_per_function, placement = spec.revision_rounds, spec.pairs_per_function, spec.placement
    config = LLMConfig.from_settings(settings, api_key="")
    store = open_store(settings)
    cache = store.kv("llm")
    templates = prompting.PromptTemplates.load(settings.prompt_dir)
    normalize_template = templates.texts.get("normalize_json" if settings.llm_json_mode else "normalize")
    response_format = {"type": "json_object"} if settings.llm_json_mode else None
    tasks = TASK_MIXES[spec.task_mix]
    known_pairs = _stored_pairs(store, pairs_per_function)
    placeholder_pairs = [(ASSUMED_GIVEN_JSON, ASSUMED_GIVEN_JSON)] * pairs_per_function
    counts = {"raw_files": 0, "unified_functions": 0, "offline_functions": 0, "rejected_at_ingest": 0,
              "unparseable_cached": 0,
              "instances_estimate": 0, "corpus_files": 0, "git_files": 0, "scale_rows": 0,
              "scale_rows_estimated": False}
    judge_config = _judge_config(spec, settings, templates)
    normalize = _Tally(config, ASSUMED_NORMALIZE_COMPLETION_TOKENS)
    synthesize = _Tally(config, ASSUMED_ANSWER_COMPLETION_TOKENS)
    revise = _Tally(config, ASSUMED_ANSWER_COMPLETION_TOKENS)
    judge = _Tally(config, ASSUMED_JUDGE_COMPLETION_TOKENS)

    def request(messages: list[dict[str, str]], **extra: Any) -> ChatRequest:
        return ChatRequest(messages=tuple(messages), model=settings.llm_model, temperature=settings.llm_temperature,
                           max_tokens=settings.llm_max_tokens, **extra)

    def function(function_id: str, problem: str, io_description: str, main_code: str,
                 given: list[tuple[str, str]], times: int = 1) -> None:
        """One function's round-1 requests, as build_prompts makes them (K pairs x tasks), and its revisions."""
        pairs = known_pairs.get(function_id) or given
        first = [request(prompting.build_prediction_messages(
                     task=task, problem_statement=problem, io_description=io_description,
                     given_json_text=input_json if task == "output" else output_json, main_code=main_code,
                     placement=placement, templates=templates))
                 for input_json, output_json in pairs[:pairs_per_function] for task in tasks]
        counts["instances_estimate"] += len(first) * times
        if teacher != "openai":
            return
        uncached = [r for r in first if cache.get(r.cache_key()) is None]
        synthesize.add(uncached, cached=len(first) - len(uncached), times=times)
        revise.add(_revision_requests(uncached, revision_rounds), times=times)

    def offline(record: dict[str, Any]) -> None:
        """Without an endpoint a raw file or problem gives the functions whose pairs it carries
        (doctests, statement examples: parsed, never run); each counts K pairs per task, since
        collect_io tops its pairs up (an upper bound: pairs that fail reduce it)."""
        found = offline_functions(record)
        counts["offline_functions"] += len(found.functions)
        for found_function in found.functions:
            given = [(json.dumps(p["input"]), json.dumps(p["output"])) for p in found_function.pairs]
            function("", found_function.problem_statement, found_function.io_description, found_function.main_code,
                     (given + placeholder_pairs)[:pairs_per_function])

    def judged(record: dict[str, Any], times: int = 1) -> None:
        """PyEdu-R's judge request for a raw file (when the ingest options ask for the judge)."""
        if judge_config is None:
            return
        from codeio.ingest.judge import judge_messages

        request = ChatRequest(messages=judge_messages(record, judge_config, templates.text("pyedu_judge")),
                              model=judge_config.model, temperature=judge_config.temperature,
                              max_tokens=judge_config.max_tokens)
        hit = times == 1 and cache.get(request.cache_key()) is not None
        judge.add([] if hit else [request], cached=int(hit), times=times)

    specs = parse_source_specs(list(spec.sources))
    rows_read = 0
    for outcome in read_sources([s for s in specs if s.kind not in SCALE_KINDS], spec.limit):
        rows_read += 1
        record = outcome.record
        if record is None:
            counts["rejected_at_ingest"] += 1
        elif record["kind"] == "unified":
            counts["unified_functions"] += 1
            unified = json.loads(record["unified"])
            given = [(json.dumps(p.get("input")), json.dumps(p.get("output"))) for p in unified.get("ios") or []]
            function_id = normalize_stage._from_unified(record)["function_id"]  # noqa: SLF001 - the stage's own id
            function(function_id, unified.get("problem_description") or "", unified.get("io_requirements") or "",
                     record["content"], given)
        else:
            counts["raw_files"] += 1
            judged(record)
            if not endpoint:
                offline(record)  # what normalize finds without an LLM; the rest it rejects (needs an LLM)
                continue
            normalization = request(parsing.build_normalize_messages(
                normalization_text(record), template=normalize_template, json_mode=settings.llm_json_mode),
                response_format=response_format)
            blob = cache.get(normalization.cache_key())
            normalize.add([] if blob is not None else [normalization], cached=int(blob is not None))
            parsed = _cached_normalization(blob, settings.llm_json_mode)
            if isinstance(parsed, parsing.ParseFailure):
                counts["unparseable_cached"] += 1
            elif parsed is not None:
                function_id = normalize_stage._function_record(  # noqa: SLF001 - the stage's own id
                    record, parsed.main_code, parsed.io_description, parsed.generator_code, parsed.problem_statement,
                    None, "", None)["function_id"]
                function(function_id, parsed.problem_statement, parsed.io_description, parsed.main_code,
                         placeholder_pairs)
            else:
                function("", "", "", record["content"], placeholder_pairs)

    left = None if spec.limit is None else max(0, spec.limit - rows_read)
    for size in scale_sizes([s for s in specs if s.kind in SCALE_KINDS], settings, left):
        counts["git_files" if size.spec.kind == "git" else "corpus_files"] += size.files  # corpus: and rows: shards
        counts["scale_rows"] += size.rows
        counts["raw_files"] += size.rows
        counts["scale_rows_estimated"] = counts["scale_rows_estimated"] or not size.exact
        if not size.rows:
            continue
        typical = {"content": "x" * size.average_chars, "kind": "raw", "source_name": size.spec.display,
                   "origin": json.dumps({"path": size.spec.path}), "problem": None, "unified": None}
        judged(typical, times=size.rows)
        if endpoint:
            normalize.add([request(parsing.build_normalize_messages(
                normalization_text(typical), template=normalize_template, json_mode=settings.llm_json_mode),
                response_format=response_format)], times=size.rows)
        function("", "", "", typical["content"], placeholder_pairs, times=size.rows)

    scale_rows_counted = bool(counts["corpus_files"] or counts["git_files"])
    wrong = max(0.0, min(1.0, 1.0 - first_round_pass_rate))
    parts = {"normalize": normalize.scaled(1.0), "synthesize": synthesize.scaled(1.0),
             "revise_upper_bound": revise.scaled(wrong)}
    if judge_config is not None:
        parts["pyedu_judge"] = judge.scaled(1.0)
    prices_known = all(tally.prices_known for tally in (normalize, synthesize, revise, judge))
    cost = round(sum(p["cost_usd"] for p in parts.values()), 6)
    cost_max = round(sum(p["cost_usd_max"] for p in parts.values()), 6)
    budget = settings.llm_budget_usd
    return {
        "teacher": teacher, "model": settings.llm_model if teacher == "openai" or endpoint else "offline",
        **counts,
        "requests": {name: p["requests"] for name, p in parts.items()}
                    | {"total": sum(p["requests"] for p in parts.values())},
        "cached": {"normalize": parts["normalize"]["cached"], "synthesize": parts["synthesize"]["cached"]}
                  | ({"pyedu_judge": parts["pyedu_judge"]["cached"]} if judge_config is not None else {}),
        "prompt_tokens": sum(p["prompt_tokens"] for p in parts.values()),
        "completion_tokens": sum(p["completion_tokens"] for p in parts.values()),
        "completion_tokens_max": sum(p["completion_tokens_max"] for p in parts.values()),
        "cost_usd": cost if prices_known else None,
        "cost_usd_max": cost_max if prices_known else None,
        "budget_usd": budget,
        "within_budget": None if budget is None or not prices_known else cost <= budget,
        # Without an endpoint a row gives the functions its doctests carry: none, one or several, which
        # only reading the row can tell; one per row is then a guess, not a bound.
        "instances_bounded": endpoint or not scale_rows_counted,
        "note": "estimate before execution: functions and pairs rejected later reduce it, revisions are an upper "
                "bound; cached responses are free"
                + (_scale_note(endpoint) if scale_rows_counted else ""),
    }


def _scale_note(endpoint: bool) -> str:
    if endpoint:
        return ("; corpus:/git: rows counted from metadata and listings, each assumed kept by every selection "
                "rule and uncached (an upper bound)")
    return ("; corpus:/git: rows counted from metadata and listings, never read: without an endpoint a row gives "
            "one function per doctest-bearing function it holds (often none), counted here as one each "
            "(instances_estimate is a guess for them, not a bound)")


@dataclass(frozen=True)
class ScaleSize:
    """What a ``corpus:``/``git:`` source holds, from listings and metadata only."""

    spec: SourceSpec
    files: int
    rows: int
    content_chars: int
    exact: bool  # rows counted (Parquet footers, git listings, small JSONL) rather than scaled from a sample

    @property
    def average_chars(self) -> int:
        return self.content_chars // self.rows if self.rows else 0


def scale_sizes(specs: list[SourceSpec], settings: Settings, limit: int | None) -> Iterator[ScaleSize]:
    """Per source: files, rows and content size, never reading the rows (``limit``: rows
    left of --limit, in source order)."""
    from codeio.ingest.readers import git_files
    from flows.corpus_listing import shard_files

    for spec in specs:
        if limit is not None and limit <= 0:
            return
        if spec.kind == "git":
            root = spec.resolved
            names = [n for n in git_files(root) if (root / n).is_file()]
            size = ScaleSize(spec, len(names), len(names), sum((root / n).stat().st_size for n in names), True)
        else:
            files = rows = chars = 0
            exact = True
            for shard in shard_files([spec], settings):
                counted, size_chars, shard_exact = _shard_rows(shard)
                files, rows, chars, exact = files + 1, rows + counted, chars + size_chars, exact and shard_exact
            size = ScaleSize(spec, files, rows, chars, exact)
        if limit is not None and size.rows > limit:
            size = ScaleSize(spec, size.files, limit, size.content_chars * limit // size.rows, size.exact)
        if limit is not None:
            limit -= size.rows
        yield size


def _shard_rows(shard: Any) -> tuple[int, int, bool]:
    """(rows, content characters, exact) of one shard file."""
    from codeio.ingest.readers import CONTENT_FIELDS

    if shard.path.lower().endswith(".parquet"):
        import pyarrow.parquet as pq

        with shard.fs.open(shard.path, "rb") as handle:  # the footer only
            meta = pq.ParquetFile(handle).metadata
        chars = 0
        for group in range(meta.num_row_groups):
            row_group = meta.row_group(group)
            for column in range(row_group.num_columns):
                chunk = row_group.column(column)
                if chunk.path_in_schema in CONTENT_FIELDS:
                    chars += chunk.total_uncompressed_size
                    break
        return meta.num_rows, chars, True
    with shard.fs.open(shard.path, "rb") as handle:
        head = handle.read(JSONL_SAMPLE_BYTES)
    whole = len(head) < JSONL_SAMPLE_BYTES
    text = _decompress_head(shard.path, head)
    lines = text.split(b"\n")
    if not whole:
        lines = lines[:-1]  # the last line may be cut
    rows = chars = 0
    for line in lines:
        if not line.strip():
            continue
        rows += 1
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            chars += len(next((row[f] for f in CONTENT_FIELDS if isinstance(row.get(f), str)), ""))
    if whole:
        return rows, chars, True
    scale = shard.size() / max(1, len(head))
    return int(rows * scale), int(chars * scale), False


def _decompress_head(path: str, head: bytes) -> bytes:
    """The decompressed start of a (possibly cut) gzip or zstd stream."""
    name = path.lower()
    if name.endswith(".gz"):
        return zlib.decompressobj(wbits=16 + zlib.MAX_WBITS).decompress(head)
    if name.endswith((".zst", ".zstd")):
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(head)
    return head


def _judge_config(spec: RunSpec, settings: Settings, templates: Any):
    """The PyEdu-R judge's config when the run's ingest options ask for it."""
    from flows.ingest import ingest_options
    from flows.ingest_judge import judge_config

    judge = ingest_options(spec.ingest).judge
    return judge_config(judge, settings, templates) if judge is not None else None


def _stored_pairs(store: Any, per_function: int) -> dict[str, list[tuple[str, str]]]:
    """The first pairs of each function from the store's complete collect_io
    datasets (earlier runs), by function id: only the columns needed, at most
    ``per_function`` pairs kept, the first dataset that has a function wins."""
    pairs: dict[str, list[tuple[int, str, str]]] = {}
    for key in store.dataset_keys("collect_io"):
        manifest = store.manifest("collect_io", key)
        if manifest is None:
            continue
        found: dict[str, list[tuple[int, str, str]]] = {}
        for part in range(int(manifest["parts"])):
            for function_id, index, input_json, output_json in store.read_frame(
                    "collect_io", key, part, columns=PAIR_COLUMNS).iter_rows():
                if function_id not in pairs:
                    found.setdefault(function_id, []).append((index, input_json, output_json))
        for function_id, rows in found.items():
            pairs[function_id] = sorted(rows)[:per_function]
    return {function_id: [(i, o) for _, i, o in rows] for function_id, rows in pairs.items()}


def _cached_normalization(blob: bytes | None, json_mode: bool):
    """The parsed cached answer of a normalization request (None: not cached)."""
    if blob is None:
        return None
    try:
        text = json.loads(blob)["text"]
    except (ValueError, KeyError, TypeError):
        return None
    return parsing.parse_normalization(text, json_mode=json_mode)


def _revision_requests(first: list[ChatRequest], rounds: int) -> list[ChatRequest]:
    """Every round's prompt is the previous one plus an answer and its feedback
    (all answers wrong: the caller scales by the expected wrong share)."""
    from codeio.llm.openai_client import CHARS_PER_TOKEN

    answer = "x" * (ASSUMED_ANSWER_COMPLETION_TOKENS * CHARS_PER_TOKEN)
    feedback = "x" * ASSUMED_FEEDBACK_CHARS
    out: list[ChatRequest] = []
    current = first
    for _ in range(rounds):
        current = [ChatRequest(messages=r.messages + ({"role": "assistant", "content": answer},
                                                      {"role": "user", "content": feedback}),
                               model=r.model, temperature=r.temperature, max_tokens=r.max_tokens) for r in current]
        out += current
    return out


def render_estimate(estimate: dict[str, Any], console: Console) -> None:
    table = Table(title=f"dry run: teacher {estimate['teacher']} ({estimate['model']})")
    table.add_column("item")
    table.add_column("estimate", justify="right")
    for name in ("raw_files", "unified_functions", "offline_functions", "rejected_at_ingest", "instances_estimate"):
        guess = name == "instances_estimate" and not estimate["instances_bounded"]
        table.add_row(name, str(estimate[name]) + (" (a guess: corpus:/git: rows are not read)" if guess else ""))
    if estimate["corpus_files"] or estimate["git_files"]:
        rows = f"{estimate['scale_rows']}" + (" (estimated from JSONL heads)" if estimate["scale_rows_estimated"] else "")
        table.add_row("corpus: / git: files", f"{estimate['corpus_files']} / {estimate['git_files']}")
        table.add_row("corpus: / git: rows", rows)
    for name, value in estimate["requests"].items():
        table.add_row(f"requests: {name}", str(value))
    for name, value in estimate["cached"].items():
        table.add_row(f"cached (free): {name}", str(value))
    table.add_row("prompt tokens", str(estimate["prompt_tokens"]))
    table.add_row("completion tokens", f"{estimate['completion_tokens']} (max {estimate['completion_tokens_max']})")
    cost = estimate["cost_usd"]
    table.add_row("cost (USD)", "no price set (CODEIO_LLM_PRICES)" if cost is None
                  else f"{cost:.4f} (max {estimate['cost_usd_max']:.4f})")
    if estimate["budget_usd"] is not None:
        verdict = {True: "within", False: "OVER", None: "unknown"}[estimate["within_budget"]]
        table.add_row("budget (USD)", f"{estimate['budget_usd']:.4f} ({verdict})")
    console.print(table)
    console.print(estimate["note"])
