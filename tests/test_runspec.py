"""The run specification: one typed, frozen home for a run's parameters, and the
one mapping from it to the stage configs whose hashes are the dataset keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from flows.spec import RunSpec, spec_errors

# Keys of sample-corpus runs, first recorded by the code path before the run
# specification existed (run_pipeline with one keyword per parameter, stage configs
# built inline). A deliberate key change re-records them: tests/data/record_sample_run_keys.py.
RECORDED = Path(__file__).resolve().parent / "data" / "sample_run_keys.json"


def test_sample_corpus_runs_keep_their_dataset_keys(env, prefect_harness):
    from codeio.settings import load_settings
    from flows.pipeline import run_pipeline
    from tasks.resources import environment_fingerprint

    recorded = json.loads(RECORDED.read_text())
    settings = load_settings()
    environment = environment_fingerprint(tuple(settings.sandbox_preload))
    if environment != recorded["environment"]:
        pytest.skip(f"keys recorded under {recorded['environment']}; this interpreter is {environment} "
                    "(collect_io's key includes it)")
    for name, case in recorded["cases"].items():
        summary = run_pipeline(settings, RunSpec(**case["params"]), progress=False)
        keys = {stage["label"]: stage["key"] for stage in summary["stages"]}
        assert keys == case["keys"], name
        assert summary["samples"] == case["samples"], name


def test_the_spec_is_frozen_and_validates_every_field():
    spec = RunSpec()
    with pytest.raises(ValidationError):
        spec.limit = 3  # type: ignore[misc]
    assert spec.replace(limit=3).limit == 3 and spec.limit is None
    bad = {"limit": -3, "revision_rounds": 3, "pairs_per_function": 0, "task_mix": "neither", "placement": "top",
           "wrong_answer_policy": "drop", "instance_fraction": 0.0, "teacher": "oracle", "export_formats": ("csv",),
           "sources": ()}
    for field, value in bad.items():
        with pytest.raises(ValidationError) as error:
            RunSpec(**{field: value})
        (line,) = spec_errors(error.value, {field: f"--{field}"})
        assert line.startswith(f"--{field}: "), line
    with pytest.raises(ValidationError):
        RunSpec(revision_rounds=True)  # a YAML `true` is not a round count
    with pytest.raises(ValidationError):
        RunSpec(rounds=1)  # unknown fields are errors, not ignored


def test_stage_configs_follow_the_spec():
    from codeio import prompting
    from codeio.settings import load_settings
    from flows.spec import stage_configs

    settings = load_settings(llm_base_url=None)
    templates = prompting.PromptTemplates.load(None)
    spec = RunSpec(task_mix="input", pairs_per_function=5, placement="none", revision_rounds=2,
                   wrong_answer_policy="ground_truth", instance_fraction=0.25, subset_seed=3)
    configs = stage_configs(spec, settings, templates, raw_sources=True)
    assert (configs.build_prompts.tasks, configs.build_prompts.pairs_per_function,
            configs.build_prompts.placement) == (("input",), 5, "none")
    assert (configs.assemble.revision_rounds, configs.assemble.wrong_answer_policy,
            configs.assemble.instance_fraction, configs.assemble.subset_seed) == (2, "ground_truth", 0.25, 3)
    assert configs.synthesize.teacher == "offline" and configs.normalize.teacher == "offline"
    unified_only = stage_configs(spec, settings, templates, raw_sources=False)
    assert unified_only.normalize.teacher == "none"
    with_endpoint = stage_configs(spec, load_settings(llm_base_url="http://127.0.0.1:9/v1", llm_model="m"),
                                  templates, raw_sources=True)
    assert (with_endpoint.synthesize.teacher, with_endpoint.synthesize.model) == ("openai", "m")
    assert with_endpoint.normalize.teacher == "openai"
    # the offline extractors' version keys only the runs they shape: an LLM run's normalize key
    # (and its API spend) is not thrown away when an extractor improves
    from codeio.examples import EXTRACTION_VERSION
    assert configs.normalize.extraction_version == EXTRACTION_VERSION
    assert with_endpoint.normalize.extraction_version == "" and unified_only.normalize.extraction_version == ""
