"""Re-record tests/data/sample_run_keys.json after a deliberate change of dataset
keys (a stage VERSION bump, a new config field): runs each recorded case on the
sample corpus in a fresh store and writes its keys back. Never to make a failing
keys test pass without knowing which change moved the keys.

    .venv/bin/python tests/data/record_sample_run_keys.py
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))


def main() -> None:
    path = HERE / "sample_run_keys.json"
    recorded = json.loads(path.read_text())
    work = Path(tempfile.mkdtemp(prefix="codeio-keys-"))
    os.environ.update(CODEIO_STORE=str(work / "store"), CODEIO_DATABASE_URL=f"sqlite:///{work / 'lineage.db'}",
                      CODEIO_DASK_WORKERS="0", PREFECT_HOME=str(work / "prefect"))
    for name in ("CODEIO_LLM_BASE_URL", "CODEIO_LLM_API_KEY", "OPENAI_API_KEY"):
        os.environ.pop(name, None)
    from prefect.testing.utilities import prefect_test_harness

    from codeio.settings import load_settings
    from flows.pipeline import run_pipeline
    from tasks.resources import environment_fingerprint
    from flows.spec import RunSpec

    settings = load_settings()
    recorded["environment"] = environment_fingerprint(tuple(settings.sandbox_preload))
    with prefect_test_harness(server_startup_timeout=120):
        for case in recorded["cases"].values():
            summary = run_pipeline(settings, RunSpec(**case["params"]), progress=False)
            case["keys"] = {stage["label"]: stage["key"] for stage in summary["stages"]}
            case["samples"] = summary["samples"]
    path.write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
