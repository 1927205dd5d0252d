"""Record schemas of every stage, and the ids that tie them together.

Records are plain dicts (a shard holds hundreds to thousands of them and is
written as one Parquet file). JSON-valued fields (inputs, outputs, messages,
origins) are stored as JSON text so that Parquet never has to guess a type.
Each stage declares the schema it reads and the one it writes; ``check`` runs on
entry so a wrong parent fails loudly with the column that is missing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

# Column types: python type names that storage maps to Parquet/Polars types.
STR, INT, FLOAT, BOOL = "str", "int", "float", "bool"


class SchemaError(ValueError):
    """A shard does not have the columns its stage declares."""


@dataclass(frozen=True)
class Schema:
    name: str
    fields: tuple[tuple[str, str], ...]  # (column, type); every column nullable

    @property
    def columns(self) -> list[str]:
        return [name for name, _ in self.fields]

    def check(self, records: Iterable[Mapping[str, Any]]) -> None:
        required = set(self.columns)
        for index, record in enumerate(records):
            missing = required.difference(record)
            if missing:
                raise SchemaError(f"{self.name} record #{index} lacks {sorted(missing)}")

    def project(self, record: Mapping[str, Any]) -> dict[str, Any]:
        return {name: record.get(name) for name in self.columns}


def _schema(name: str, *fields: tuple[str, str]) -> Schema:
    return Schema(name, tuple(fields))


SOURCE_FILE = _schema(
    "source_file",
    ("source_id", STR),  # sha256 of the content (plus the unified payload when present)
    ("source_name", STR),  # the --source spec it came from
    ("kind", STR),  # "raw" (needs normalization), "problem" (statement + solution) or "unified" (has main code and pairs)
    ("origin", STR),  # JSON: {"path", "repo", "blob_id", "row", "license"}
    ("content", STR),  # raw file text, or the refcode of a unified row
    ("unified", STR),  # JSON of the unified row (problem_description, io_requirements, ios, ...), of a problem's statement, or null
)

UNIFIED_FUNCTION = _schema(
    "unified_function",
    ("function_id", STR),
    ("source_id", STR),
    ("main_code", STR),
    ("io_description", STR),
    ("generator_code", STR),  # null for unified sources (their pairs are given)
    ("problem_statement", STR),
    ("given_pairs", STR),  # JSON list of {"input","output"} for unified sources, else null
    ("teacher", STR),  # model that normalized it, or "source" for unified rows
    ("llm_call_id", STR),
    ("origin", STR),
)

IO_PAIR = _schema(
    "io_pair",
    ("pair_id", STR),
    ("function_id", STR),
    ("source_id", STR),
    ("pair_index", INT),
    ("input", STR),  # JSON object of keyword arguments
    ("output", STR),  # JSON value, as the code returned it here
    ("given_output", STR),  # provenance: the output a unified source gave (matched within tolerance), else null
    ("determinism_checked", BOOL),
)

INSTANCE = _schema(
    "instance",
    ("instance_id", STR),
    ("function_id", STR),
    ("source_id", STR),
    ("pair_id", STR),
    ("pair_index", INT),
    ("task", STR),  # "output" (predict the output) or "input" (predict a feasible input)
    ("messages", STR),  # JSON list of chat messages of round 1
    ("template_version", STR),
    ("variant", STR),  # placement of the reference code: prompt / response / none
    ("main_code", STR),  # needed by input-prediction verification
    ("input", STR),  # the true input (JSON)
    ("output", STR),  # the true output (JSON)
    ("origin", STR),
)

RESPONSE = _schema(
    "response",
    ("response_id", STR),
    ("instance_id", STR),
    ("round", INT),  # 1 = first answer, 2 = after one revision, ...
    ("messages", STR),  # JSON list of the messages sent for this round
    ("text", STR),  # answer (or partial text of a failed call)
    ("ok", BOOL),  # False: the call failed (error says why); still kept
    ("error", STR),
    ("teacher", STR),  # "offline" or "openai"
    ("model", STR),
    ("finish_reason", STR),
    ("prompt_tokens", INT),
    ("completion_tokens", INT),
    ("llm_call_id", STR),
)

VERDICT = _schema(
    "verdict",
    ("instance_id", STR),
    ("round", INT),
    ("status", STR),  # success, mismatch, no_answer, exception, timeout, llm_failed
    ("feedback", STR),  # message shown to the teacher in the next round
    ("extracted", STR),  # JSON of the extracted answer, or null
    ("actual", STR),  # JSON of the value produced by the predicted input (input task)
)

SAMPLE = _schema(
    "sample",
    ("sample_id", STR),
    ("instance_id", STR),
    ("function_id", STR),
    ("source_id", STR),
    ("task", STR),
    ("variant", STR),
    ("prompt", STR),
    ("turn_1", STR),
    ("feedback_1", STR),
    ("turn_2", STR),
    ("feedback_2", STR),
    ("turn_3", STR),
    ("feedback_3", STR),
    ("rounds", INT),  # number of teacher turns in this sample
    ("verified", BOOL),  # the last turn verified correct
    ("final_status", STR),
    ("teacher", STR),
    ("model", STR),
    ("origin", STR),
)

REJECT = _schema(
    "reject",
    ("record_id", STR),
    ("reason", STR),  # short machine-readable reason, counted in the summary
    ("detail", STR),  # human-readable detail (error message, raw LLM output, ...)
)


def stable_id(*parts: Any, length: int = 24) -> str:
    """Content-derived id: the same parts always give the same id (no run ids,
    shard numbers or times), so reruns and other stores compare equal."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:length]


def dumps(value: Any) -> str:
    """JSON text as stored in records (key order preserved, NaN allowed so that it
    can be detected and rejected rather than crash the writer)."""
    return json.dumps(value, ensure_ascii=False)


def reject(record_id: str, reason: str, detail: str = "") -> dict[str, str]:
    return {"record_id": record_id, "reason": reason, "detail": detail}
