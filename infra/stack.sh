#!/usr/bin/env bash
# A local production-like stack on loopback: S3 (moto), PostgreSQL, Prefect server,
# Dask scheduler + workers. Usage: infra/stack.sh up|down|env|status
# The work is done by infra/stack.py with the project's interpreter
# ($CODEIO_PYTHON, default <repo>/.venv/bin/python); see infra/README.md.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${CODEIO_PYTHON:-$here/../.venv/bin/python}"
if [[ ! -x "$python" ]]; then
    echo "stack.sh: no Python at $python (set CODEIO_PYTHON)" >&2
    exit 1
fi
exec "$python" "$here/stack.py" "$@"
