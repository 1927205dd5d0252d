"""One settings model for the whole run, loaded once at the flow entrypoint.

Environment variables carry the ``CODEIO_`` prefix; ``OPENAI_API_KEY`` is
accepted for the key. Secrets are ``SecretStr`` and ``public_dump`` is what gets
stored with the run (lineage, artifacts): it never contains them.
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_STORE = "./.codeio/store"
DEFAULT_DATABASE_URL = "sqlite:///./.codeio/lineage.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CODEIO_", extra="ignore", populate_by_name=True)

    # storage
    store: str = DEFAULT_STORE
    storage_options: dict[str, Any] = Field(default_factory=dict)  # fsspec options for the store URL
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_key: SecretStr | None = Field(default=None, validation_alias=AliasChoices("CODEIO_S3_KEY", "AWS_ACCESS_KEY_ID"))
    s3_secret: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("CODEIO_S3_SECRET", "AWS_SECRET_ACCESS_KEY")
    )
    database_url: str = DEFAULT_DATABASE_URL
    # records per shard (one Prefect task each): big enough that a task's ~0.1-0.3 s of
    # orchestration stays small next to its work, small enough to bound memory
    shard_size: int = Field(default=1000, ge=1)

    # teacher LLM
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("CODEIO_LLM_API_KEY", "OPENAI_API_KEY")
    )
    llm_model: str = "deepseek-chat"
    # the model that normalizes raw files (default: llm_model); a teacher comparison
    # that changes only llm_model then keeps the same functions, pairs and prompts
    normalize_model: str | None = None
    llm_timeout: float = Field(default=120.0, gt=0)
    llm_temperature: float = 0.7
    llm_max_tokens: int = 4096
    llm_concurrency: int = Field(default=64, ge=1)
    llm_max_attempts: int = Field(default=6, ge=1)
    llm_backoff_base_s: float = Field(default=0.5, ge=0)  # first retry waits up to this (full jitter), doubling
    llm_requests_per_minute: float | None = None
    llm_tokens_per_minute: float | None = None
    llm_budget_usd: float | None = None
    # USD per 1M tokens: {"model": [input, output]}
    llm_prices: dict[str, tuple[float, float]] = Field(default_factory=dict)
    llm_fail_on_finish_reasons: tuple[str, ...] = ("length", "content_filter")
    llm_json_mode: bool = False  # response_format json_object for normalization

    # execution
    exec_timeout_s: float = 5.0  # per call during verification
    collect_timeout_s: float = 60.0  # whole generator sampling budget per function
    collect_min_pairs: int = Field(default=2, ge=1)  # a function with fewer verified pairs is dropped (paper: 2)
    # functions with given pairs (doctests, statement examples, unified rows) and no input generator get
    # more pairs from inputs drawn after the shapes of their examples' values (codeio.examples.typegen)
    collect_type_driven_pairs: bool = True
    exec_memory_mb: int = 1024
    # fail instead of warning when the kernel refuses part of the sandbox isolation (user namespaces...)
    sandbox_require_isolation: bool = False
    sandbox_preload: tuple[str, ...] = (
        "math", "random", "itertools", "collections", "functools", "heapq", "bisect",
        "re", "string", "json", "statistics", "fractions", "decimal", "copy", "datetime", "numpy",
    )

    # compute
    dask_address: str | None = None
    dask_workers: int | None = None
    # Prefect tags on shard tasks, for tag-based concurrency limits ("llm", "sandbox"): each tagged
    # task run then asks the API for slots before it starts (a round trip, and at times a 2 s wait,
    # per shard), so none by default; Dask's worker threads already bound what runs at once
    task_tags: tuple[str, ...] = ()
    # run each shard through consecutive stages in one task (a lane) wherever no LLM stage sits in
    # between: no barrier per stage, one task run per part instead of one per stage and part
    fuse_stages: bool = True
    # shards per task run for the ingestion stages (each shard keeps its own key and marker);
    # unset: about two task runs per worker slot (a task run costs a worker two Prefect clients)
    shards_per_task: int | None = Field(default=None, ge=1)
    # runs that share the lineage database claim each dataset they compute there; a claim lives this
    # long without renewal (the holder renews it every third), so a crashed run blocks others at most this
    claim_lease_s: float = Field(default=120.0, gt=0)
    # Ctrl-C or SIGTERM asks a run to stop; what has not stopped after this long is killed
    cancel_grace_s: float = Field(default=30.0, gt=0)

    # prompts
    prompt_dir: str | None = None  # a folder whose *.txt templates override the shipped ones

    def public_dump(self) -> dict[str, Any]:
        """Everything but the secrets, for lineage and artifacts."""
        data = self.model_dump(mode="json")
        for name, field in type(self).model_fields.items():
            if field.annotation is not None and "SecretStr" in str(field.annotation):
                data[name] = "**set**" if getattr(self, name) is not None else None
        # fsspec options may carry credentials (key, secret, token, ...): keep only their names
        data["storage_options"] = sorted(self.storage_options)
        return data


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment, then apply explicit overrides (CLI flags,
    flow parameters) that are not None."""
    base = Settings()
    clean = {k: v for k, v in overrides.items() if v is not None}
    if not clean:
        return base
    return base.model_copy(update=clean)
