"""Wiring of PyEdu-R's optional LLM judge into the ingestion stages: between
``ingest select`` and ``ingest dedup``, on the workers, shard by shard, through the
run's LLM layer (worker clients with the store's response cache, bounded
concurrency, retries of transient errors, the run's budget, token and cost
accounting per shard in lineage)."""

from __future__ import annotations

import dataclasses
from typing import Any

from codeio.ingest import judge
from codeio.prompting import PromptTemplates
from codeio.settings import Settings
from tasks.ingest_judge import ingest_judge_task
from tasks.shard import DatasetRef

LABEL = "ingest judge"


def judge_config(config: judge.JudgeConfig, settings: Settings, templates: PromptTemplates) -> judge.JudgeConfig:
    """The config with its model (the normalization model unless set) and its template's hash."""
    return dataclasses.replace(config, model=config.model or settings.normalize_model or settings.llm_model,
                               template_hash=templates.hash_of([judge.TEMPLATE_NAME]))


def add_judge_stage(orchestrator: Any, config: judge.JudgeConfig, settings: Settings, candidates: DatasetRef,
                    parts: int) -> DatasetRef:
    """Run the judge over ``candidates`` and return the candidates it keeps. The stage
    gets the endpoint config (no key: workers read their own) even when the run's other
    stages have none (an offline teacher), and only for itself."""
    from flows.pipeline import llm_config

    if not settings.llm_base_url:
        raise ValueError("the PyEdu-R judge (--pyedu-judge, ingest option pyedu_judge) needs an LLM endpoint: set "
                         "CODEIO_LLM_BASE_URL (and CODEIO_LLM_API_KEY)")
    runtime = orchestrator.runtime
    templates = runtime.templates if runtime.templates is not None else PromptTemplates.load(settings.prompt_dir)
    orchestrator.runtime = dataclasses.replace(runtime, llm=runtime.llm or llm_config(settings, "openai"),
                                               templates=templates)
    try:
        return orchestrator.add("ingest_judge", judge.VERSION, ingest_judge_task,
                                judge_config(config, settings, templates), {"candidates": candidates}, parts,
                                label=LABEL, may_retry=True)
    finally:
        orchestrator.runtime = runtime  # the later stages keep their own endpoint config (or none)
