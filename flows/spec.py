"""The run specification: every parameter of one pipeline run, in one place.

``RunSpec`` is what a user chooses (sources, teacher, ablation axes, output);
``Settings`` is where the run happens (store, database, endpoint, limits). The
CLI, the flows (pipeline, nightly, sweep branches), the dry-run estimate and the
scale benchmark all take a ``RunSpec``; Prefect renders it as one form section
of a deployment. ``stage_configs`` is the one pure mapping from a spec (plus
settings and templates) to the frozen stage configs whose hashes are the
dataset keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StrictBool, StrictFloat, StrictInt, ValidationError

from codeio import examples, prompting
from codeio.settings import Settings, load_settings
from codeio.stages import assemble, build_prompts, collect_io, normalize, synthesize, verify
from storage.export import EXPORT_FORMATS
from storage.lineage import scrub_secrets

Teacher = Literal["offline", "openai"]
TaskMix = Literal["both", "input", "output"]
Placement = Literal["prompt", "response", "none"]
WrongAnswerPolicy = Literal["keep", "ground_truth"]
ExportFormat = Literal[EXPORT_FORMATS]  # type: ignore[valid-type]  # the tuple's members
TASK_MIXES: dict[str, tuple[str, ...]] = {"both": ("output", "input"), "input": ("input",), "output": ("output",)}


class RunSpec(BaseModel):
    """What one run makes: its sources, teacher and ablation axes, and where the samples go."""

    model_config = ConfigDict(frozen=True, extra="forbid", title="Run specification")

    sources: tuple[str, ...] = Field(("sample",), min_length=1,
                                     description="jsonl:PATH | dir:PATH | unified:PATH | sample")
    limit: StrictInt | None = Field(None, ge=1, description="take the first N rows of the sources, before filtering")
    teacher: Teacher | None = Field(None, description="offline | openai (none: openai when an endpoint is set)")
    model: str | None = Field(None, description="model name (none: CODEIO_LLM_MODEL)")
    revision_rounds: StrictInt = Field(1, ge=0, le=2, description="CodeI/O++ revision rounds R")
    pairs_per_function: StrictInt = Field(3, ge=1, le=10, description="K: pairs per function used for instances")
    rejection_sampling: StrictBool = Field(False, description="keep only samples whose last turn verified")
    task_mix: TaskMix = Field("both", description="which predictions: both | input | output")
    placement: Placement = Field("prompt", description="reference code placement: prompt | response | none")
    wrong_answer_policy: WrongAnswerPolicy = Field(
        "keep", description="keep | ground_truth (replace wrong answers, no CoT)")
    instance_fraction: StrictFloat = Field(1.0, gt=0.0, le=1.0,
                                           description="training-sample scaling: a seeded nested subset")
    subset_seed: StrictInt = Field(0, description="seed of the instance subset")
    out: str | None = Field(None, description="write the final samples to this path (or URL)")
    export_formats: tuple[ExportFormat, ...] = Field(("jsonl",), min_length=1,
                                                     description="jsonl | parquet | chat (with out)")
    ingest: dict[str, Any] | None = Field(None, description="ingestion options: codemix, pyedu, dedup, decontam "
                                                             "(see `codeio ingest`); none: sources as they are")

    def replace(self, **changes: Any) -> RunSpec:
        """A validated copy with ``changes``."""
        return type(self).model_validate({**self.model_dump(), **changes})

    def load_settings(self, store: str | None = None, llm_base_url: EndpointURL | str | None = None) -> Settings:
        """The run's settings: the environment, then the flow's overrides and the spec's model."""
        return load_settings(store=store, llm_base_url=endpoint_value(llm_base_url), llm_model=self.model)


class EndpointURL(SecretStr):
    """An LLM endpoint URL as a flow parameter: what leaves the process (Prefect's
    flow-run parameters, reprs) has its password and secret query parameters
    redacted; the flow reads the real URL with ``get_secret_value()``."""

    def _display(self) -> str:  # type: ignore[override]
        return scrub_secrets(self.get_secret_value())


def endpoint_value(url: EndpointURL | str | None) -> str | None:
    """The URL itself, whether the flow was called with the wrapper or a plain string."""
    return url.get_secret_value() if isinstance(url, SecretStr) else url


def spec_errors(error: ValidationError, names: dict[str, str] | None = None) -> list[str]:
    """One line per invalid field (its first error), the field named as the user wrote
    it (``names`` maps field names to flags or grid keys)."""
    names = names or {}
    lines, seen = [], set()
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else ""
        if field in seen:
            continue
        seen.add(field)
        where = names.get(field, field)
        value = item.get("input")
        got = "" if item["type"] == "extra_forbidden" or isinstance(value, dict) else f" (got {value!r})"
        lines.append(f"{where}: {item['msg']}{got}" if where else f"{item['msg']}{got}")
    return lines


def resolve_teacher(settings: Settings, teacher: str | None) -> str:
    """openai only when asked for, or when an endpoint is configured; a key alone never selects it."""
    if teacher:
        if teacher not in ("offline", "openai"):
            raise ValueError(f"teacher must be 'offline' or 'openai', got {teacher!r}")
        return teacher
    return "openai" if settings.llm_base_url else "offline"


def uses_llm(settings: Settings, teacher: str) -> bool:
    """Whether the run talks to an endpoint: its teacher does, or one is configured
    (raw files are then normalized with it)."""
    return teacher == "openai" or bool(settings.llm_base_url)


@dataclass(frozen=True)
class StageConfigs:
    """The frozen config of every stage of one run (they enter the dataset keys)."""

    normalize: normalize.NormalizeConfig
    collect_io: collect_io.CollectConfig
    build_prompts: build_prompts.PromptConfig
    synthesize: synthesize.TeacherConfig
    verify: verify.VerifyConfig
    assemble: assemble.AssembleConfig


def stage_configs(spec: RunSpec, settings: Settings, templates: prompting.PromptTemplates, *,
                  raw_sources: bool) -> StageConfigs:
    """The stage configs of a run of ``spec``. ``raw_sources``: whether ingest found raw
    files; without them normalize only passes unified rows through, and no LLM setting
    may re-key them (and all of collect_io)."""
    teacher = resolve_teacher(settings, spec.teacher)
    llm = uses_llm(settings, teacher)
    if not raw_sources:
        norm = normalize.NormalizeConfig(teacher="none", model="")
    else:
        norm = normalize.NormalizeConfig(
            teacher="openai" if llm else "offline",
            model=(settings.normalize_model or settings.llm_model) if llm else "",
            temperature=settings.llm_temperature, max_tokens=settings.llm_max_tokens,
            template_hash=templates.hash_of(["normalize_json" if settings.llm_json_mode else "normalize"]),
            json_mode=settings.llm_json_mode,
            extraction_version="" if llm else examples.EXTRACTION_VERSION)
    return StageConfigs(
        normalize=norm,
        collect_io=collect_io.CollectConfig(sample_timeout_s=settings.collect_timeout_s,
                                            call_timeout_s=settings.exec_timeout_s,
                                            memory_mb=settings.exec_memory_mb,
                                            min_pairs=settings.collect_min_pairs,
                                            type_driven_pairs=settings.collect_type_driven_pairs),
        build_prompts=build_prompts.PromptConfig(pairs_per_function=spec.pairs_per_function,
                                                 tasks=TASK_MIXES[spec.task_mix], placement=spec.placement,
                                                 template_version=templates.label,
                                                 template_hash=templates.hash_of(prompting.PROMPT_TEMPLATES)),
        synthesize=synthesize.TeacherConfig(teacher=teacher,
                                            model="offline" if teacher == "offline" else settings.llm_model,
                                            temperature=settings.llm_temperature,
                                            max_tokens=settings.llm_max_tokens),
        verify=verify.VerifyConfig(timeout_s=settings.exec_timeout_s, memory_mb=settings.exec_memory_mb,
                                   template_hash=templates.hash_of(prompting.FEEDBACK_TEMPLATES)),
        assemble=assemble.AssembleConfig(revision_rounds=spec.revision_rounds,
                                         rejection_sampling=spec.rejection_sampling,
                                         wrong_answer_policy=spec.wrong_answer_policy,
                                         instance_fraction=spec.instance_fraction, subset_seed=spec.subset_seed),
    )
