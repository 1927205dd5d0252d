"""The sandbox suites again as an unprivileged user (issue 9): the hostile
corpus, state between calls and functions, forged frames. Run as root, this
test re-runs them through ``setpriv`` as ``nobody`` (tests/unprivileged.py:
the checkout and the venv bound read-only where that user can reach them)."""

from __future__ import annotations

import os

import pytest

from unprivileged import Unprivileged, missing_requirement

SUITES = ("tests/test_sandbox_hostile.py", "tests/test_sandbox_state.py", "tests/test_sandbox_frames.py")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="running unprivileged already: the suites run directly")


def test_sandbox_suites_pass_as_an_unprivileged_user():
    reason = missing_requirement()
    if reason:
        pytest.skip(reason)
    with Unprivileged() as nobody:
        out = nobody.run([nobody.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp",
                          str(nobody.home / "pytest"), "--rootdir", str(nobody.src), *SUITES],
                         env={}, cwd=nobody.src)
    tail = (out.stdout + out.stderr)[-6000:]
    assert out.returncode == 0, tail
    summary = out.stdout.strip().splitlines()[-1]
    assert "passed" in summary and "failed" not in summary and "skipped" not in summary, tail
