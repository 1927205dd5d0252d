"""normalize: raw code file -> unified function (one LLM call per raw file).

Unified sources already have main code, description and pairs: they pass
through (their pairs are re-validated by collect_io). Raw files need a teacher
LLM; without one, the pairs a file carries itself (doctests, see
codeio.examples) make one unified function per function that has them, and a
file without any is rejected with a reason that names the settings. Problems
(a statement with its solution, ``leetcode:`` sources) go to the LLM as statement
+ solution; without one their statement's examples are the pairs. One source
may thus give several functions: the stage counts sources (in = kept +
rejected) and reports the functions it wrote in its ``functions`` counter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

from codeio import normalize as parsing
from codeio.examples import OfflineFunction
from codeio.examples.offline import normalization_text, offline_functions
from codeio.llm.base import ChatLLM, ChatRequest
from codeio.records import SOURCE_FILE, UNIFIED_FUNCTION, dumps, reject, stable_id
from codeio.stages.base import StageOutput

VERSION = "2"
READS = SOURCE_FILE
WRITES = UNIFIED_FUNCTION
NEEDS_LLM_MESSAGE = (
    "raw code needs an LLM to normalize it: set CODEIO_LLM_BASE_URL (and CODEIO_LLM_API_KEY, "
    "CODEIO_LLM_MODEL) or pass --teacher openai --llm-base-url URL --model NAME"
)


@dataclass(frozen=True)
class NormalizeConfig:
    teacher: str  # "openai", "offline" (cannot normalize raw code) or "none" (the shard holds no raw file)
    model: str
    temperature: float = 0.7
    max_tokens: int = 4096
    template_version: str = parsing.NORMALIZE_TEMPLATE_VERSION
    template_hash: str = ""  # hash of the (possibly overridden) template text
    json_mode: bool = False
    # codeio.examples.EXTRACTION_VERSION when the offline extractors make the functions ("" with an
    # LLM, whose output they do not shape), so an improved extractor is not answered from the cache
    extraction_version: str = ""


def normalize_shard(
    sources: Sequence[dict[str, Any]],
    config: NormalizeConfig,
    llm: ChatLLM | None,
    template: str | None = None,
) -> StageOutput:
    READS.check(sources)
    out = StageOutput(stats={"needs_llm": 0, "offline_functions": 0, "offline_skipped": {}})
    raw: list[dict[str, Any]] = []
    for source in sources:
        if source["kind"] == "unified":
            out.records.append(_from_unified(source))
        elif llm is None:
            _normalize_offline(source, out)
        else:
            raw.append(source)
    if raw and llm is not None:
        _normalize_with_llm(raw, config, llm, template, out)
    out.stats["sources_kept"] = len({record["source_id"] for record in out.records})
    out.stats["functions"] = len(out.records)
    out.kept = out.stats["sources_kept"]  # the summary's out is in sources, like its in
    return out


def _normalize_offline(source: dict[str, Any], out: StageOutput) -> None:
    """The functions whose pairs the source carries, or a reject that says what to set."""
    found = offline_functions(source)
    for reason, count in found.skipped.items():
        out.stats["offline_skipped"][reason] = out.stats["offline_skipped"].get(reason, 0) + count
    if found.functions:
        out.records.extend(_from_offline(source, function) for function in found.functions)
        out.stats["offline_functions"] += len(found.functions)
        return
    if source["kind"] == "raw":
        out.rejects.append(reject(source["source_id"], "needs_llm",
                                  f"{NEEDS_LLM_MESSAGE}; no pairs found in the source ({found.describe_skipped()})"))
        out.stats["needs_llm"] += 1
        return
    top = found.skipped.most_common(1)[0][0] if found.skipped else "nothing_found"
    out.rejects.append(reject(source["source_id"], f"no_offline_pairs:{top}",
                              f"{found.describe_skipped()}; an LLM endpoint would normalize it instead"))


def _function_record(source: dict[str, Any], main_code: str, io_description: str, generator_code: str | None,
                     problem_statement: str, given_pairs: list | None, teacher: str, llm_call_id: str | None) -> dict[str, Any]:
    function_id = stable_id("function", source["source_id"], main_code, io_description, generator_code, problem_statement)
    return {
        "function_id": function_id,
        "source_id": source["source_id"],
        "main_code": main_code,
        "io_description": io_description,
        "generator_code": generator_code,
        "problem_statement": problem_statement,
        "given_pairs": dumps(given_pairs) if given_pairs is not None else None,
        "teacher": teacher,
        "llm_call_id": llm_call_id,
        "origin": source["origin"],
    }


def _from_unified(source: dict[str, Any]) -> dict[str, Any]:
    unified = json.loads(source["unified"])
    return _function_record(
        source,
        main_code=source["content"],
        io_description=unified.get("io_requirements") or "",
        generator_code=unified.get("input_generator"),
        problem_statement=unified.get("problem_description") or "",
        given_pairs=unified.get("ios") or [],
        teacher="source",
        llm_call_id=None,
    )


def _from_offline(source: dict[str, Any], function: OfflineFunction) -> dict[str, Any]:
    """The function's record; its origin is the source's plus the function's name (a file
    gives several functions, and each sample's origin must say which one it came from)."""
    try:
        origin = json.loads(source.get("origin") or "{}")
    except ValueError:
        origin = {}
    origin = {**(origin if isinstance(origin, dict) else {}), "function": function.name}
    return _function_record(
        {**source, "origin": dumps(origin)},
        main_code=function.main_code,
        io_description=function.io_description,
        generator_code=function.generator_code,
        problem_statement=function.problem_statement,
        given_pairs=list(function.pairs),
        teacher=f"source:{function.kind}",
        llm_call_id=None,
    )


def _normalize_with_llm(raw: list[dict[str, Any]], config: NormalizeConfig, llm: ChatLLM, template: str | None,
                        out: StageOutput) -> None:
    response_format = {"type": "json_object"} if config.json_mode else None
    requests = [
        ChatRequest(
            messages=tuple(parsing.build_normalize_messages(normalization_text(source), template=template,
                                                            json_mode=config.json_mode)),
            model=config.model,
            temperature=config.temperature,
            max_tokens=config.max_tokens,
            response_format=response_format,
        )
        for source in raw
    ]
    results, usage = llm.complete(requests)
    out.stats["llm"] = usage.as_dict()
    for source, result in zip(raw, results):
        if not result.ok:
            out.reject_failed_call(source["source_id"], "llm_failed", result.error, result.text)
            continue
        try:
            parsed = parsing.parse_normalization(result.text, json_mode=config.json_mode)
        except (ValueError, SyntaxError, RecursionError, MemoryError) as error:
            parsed = parsing.ParseFailure("parser_error", f"{type(error).__name__}: {error}")
        if isinstance(parsed, parsing.ParseFailure):
            out.rejects.append(reject(source["source_id"], f"unparseable:{parsed.reason}", f"{parsed.detail}\n---\n{result.text}"))
            continue
        out.records.append(
            _function_record(
                source,
                main_code=parsed.main_code,
                io_description=parsed.io_description,
                generator_code=parsed.generator_code,
                problem_statement=parsed.problem_statement,
                given_pairs=None,
                teacher=f"openai:{result.model or config.model}",
                llm_call_id=result.call_id,
            )
        )
