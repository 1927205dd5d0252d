"""Run a command as an unprivileged user (``nobody``) from a root test: the
checkout and the venv are bound read-only at paths that user can reach (the
clone may sit under a 0700 folder such as /root), inside a private mount
namespace of the test, and the command runs through ``setpriv`` with a clean
environment and a home folder of its own."""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
USER = "nobody"
TOOLS = ("setpriv", "unshare", "mount")
BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}


def missing_requirement() -> str | None:
    """Why this machine cannot run a command as an unprivileged user (None: it can)."""
    if os.geteuid() != 0:
        return "not running as root: cannot switch to another user"
    for tool in TOOLS:
        if shutil.which(tool) is None:
            return f"{tool} (util-linux) is not installed"
    try:
        pwd.getpwnam(USER)
    except KeyError:
        return f"no user {USER!r} on this machine"
    return None


class Unprivileged:
    """``with Unprivileged() as nobody: nobody.run([nobody.python, ...], env)``;
    ``src`` is the checkout as that user sees it, ``home`` a folder it owns."""

    def __enter__(self) -> Unprivileged:
        self.user = pwd.getpwnam(USER)
        self.base = Path(tempfile.mkdtemp(prefix="codeio-unprivileged-", dir="/var/tmp"))
        self.base.chmod(0o755)
        self.src, venv, self.home = self.base / "src", self.base / "venv", self.base / "home"
        for folder in (self.src, venv, self.home):
            folder.mkdir()
        os.chown(self.home, self.user.pw_uid, self.user.pw_gid)
        prefix = Path(sys.prefix).resolve()
        self.binds = [(ROOT, self.src)]
        if prefix.is_relative_to(ROOT):
            self.python = f"{self.src}/{prefix.relative_to(ROOT)}/bin/python"
        else:
            self.python = f"{venv}/bin/python"
            self.binds.append((prefix, venv))
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.base, ignore_errors=True)

    def run(self, argv: list[str], env: dict[str, str], cwd: Path | None = None,
            timeout: float = 900) -> subprocess.CompletedProcess:
        """``argv`` as the unprivileged user (env: added to BASE_ENV, HOME and PYTHONPATH)."""
        mounts = " && ".join(f"mount --bind {shlex.quote(str(a))} {shlex.quote(str(b))} && "
                             f"mount -o remount,bind,ro {shlex.quote(str(b))}" for a, b in self.binds)
        full = {**BASE_ENV, "HOME": str(self.home), "PYTHONPATH": str(self.src), **env}
        inner = (f"{mounts} && cd {shlex.quote(str(cwd or self.home))} && exec setpriv --reuid={self.user.pw_uid} "
                 f"--regid={self.user.pw_gid} --clear-groups env -i "
                 f"{' '.join(f'{k}={shlex.quote(v)}' for k, v in full.items())} {shlex.join(argv)}")
        return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", inner],
                               capture_output=True, text=True, timeout=timeout)
