"""Dask worker preload of the embedded LocalCluster: what a shard's first task run
would import (Prefect's task engine and client, every stage), imported while the
worker starts, which the flow overlaps with its own start-up, instead of during
the first task run, on the critical path."""

from __future__ import annotations

import prefect.client.orchestration  # noqa: F401
import prefect.task_engine  # noqa: F401

import tasks.lane  # noqa: F401 - every stage task and its stage
