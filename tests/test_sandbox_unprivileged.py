"""The sandbox suites again as an unprivileged user (issue 9): the hostile
corpus, state between calls and functions, forged frames. Run as root, this
test re-runs them through ``setpriv`` as ``nobody``; the checkout and the venv
are bound read-only at a path that user can reach (the clone may sit under a
0700 folder such as /root), inside a private mount namespace of the test."""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUITES = ("tests/test_sandbox_hostile.py", "tests/test_sandbox_state.py", "tests/test_sandbox_frames.py")
USER = "nobody"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="running unprivileged already: the suites run directly")


def _missing() -> str | None:
    for tool in ("setpriv", "unshare", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} (util-linux) is not installed"
    try:
        pwd.getpwnam(USER)
    except KeyError:
        return f"no user {USER!r} on this machine"
    return None


def test_sandbox_suites_pass_as_an_unprivileged_user():
    reason = _missing()
    if reason:
        pytest.skip(reason)
    user = pwd.getpwnam(USER)
    base = Path(tempfile.mkdtemp(prefix="codeio-unprivileged-", dir="/var/tmp"))
    try:
        base.chmod(0o755)
        src, venv, home = base / "src", base / "venv", base / "home"
        for folder in (src, venv, home):
            folder.mkdir()
        os.chown(home, user.pw_uid, user.pw_gid)
        prefix = Path(sys.prefix).resolve()
        binds = [(ROOT, src)]
        python = f"{venv}/bin/python" if not prefix.is_relative_to(ROOT) else f"{src}/{prefix.relative_to(ROOT)}/bin/python"
        if not prefix.is_relative_to(ROOT):
            binds.append((prefix, venv))
        mounts = " && ".join(f"mount --bind {shlex.quote(str(a))} {shlex.quote(str(b))} && "
                             f"mount -o remount,bind,ro {shlex.quote(str(b))}" for a, b in binds)
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
               "PYTHONPATH": str(src), "PYTHONDONTWRITEBYTECODE": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        pytest_cmd = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp", str(home / "pytest"),
                      "--rootdir", str(src), *SUITES]
        inner = (f"{mounts} && cd {shlex.quote(str(src))} && exec setpriv --reuid={user.pw_uid} --regid={user.pw_gid} "
                 f"--clear-groups env -i {' '.join(f'{k}={shlex.quote(v)}' for k, v in env.items())} "
                 f"{shlex.join(pytest_cmd)}")
        out = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", inner],
                             capture_output=True, text=True, timeout=900)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    tail = (out.stdout + out.stderr)[-6000:]
    assert out.returncode == 0, tail
    summary = out.stdout.strip().splitlines()[-1]
    assert "passed" in summary and "failed" not in summary and "skipped" not in summary, tail
