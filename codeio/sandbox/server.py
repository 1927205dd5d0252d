"""The fork server: a single-threaded process started with a scrubbed
environment (no secrets ever), which preloads modules once and forks one
isolated child per batch of calls. Run as
``python -P -m codeio.sandbox.server CONFIG_JSON`` by :mod:`codeio.sandbox.pool`.

Once per server (``setup``, with :mod:`codeio.sandbox.isolation`): a user
namespace when not root, then network, mount, IPC and PID namespaces (the
server becomes init of the latter), the preloads, then a minimal filesystem
view, then the seccomp filter (no sockets, ptrace, mounts, namespaces, keyctl,
bpf...), which every child inherits. Per job, the server compiles the code
(small, silent code only: see ``_compile``) and forks the child, which inherits
the job and the code object. Per child, in order (see ``_isolate`` and
``_apply_limits``):

- own session/process group; stdin is /dev/null; stdout/stderr go to a file
  in its private work dir (RLIMIT_FSIZE caps it) and, at Python level, to a
  sink that ends the call with OUTPUT_LIMIT past ``max_output_bytes``;
- as root: an unprivileged uid leased to this server alone (61000 + n);
  unprivileged: no capability left;
- RLIMIT_AS / CPU / FSIZE / NPROC / NOFILE / CORE from the request;
- per-call deadline enforced from outside: the child reports one frame per
  call and its process group is SIGKILLed when a frame is late; after each
  batch, ``kill(-1)`` reaps escapees (setsid, double fork) when the code was
  allowed to fork; the server's death ends its children (they are in its PID
  namespace, of which it is init; without one, PR_SET_PDEATHSIG), and
  PR_SET_PDEATHSIG ties the server to its owner.

Whatever the kernel refuses is a missing guarantee (``isolation.lost``: name,
the kernel's reason, what is lost), reported with the server's info: logged by
the pool and carried to the run summary, an error with ``require_isolation``.
docs/SANDBOX.md lists what each mode isolates.
"""

from __future__ import annotations

import ctypes
import fcntl
import gc
import importlib
import json
import os
import resource
import _signal
import signal
import sys
import time
from typing import Any, NamedTuple

from codeio.sandbox import frames, isolation
from codeio.sandbox.protocol import ChannelClosed, ChannelTimeout, FrameReader, ProtocolError, write_frame

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
CHILD_PROCESS_NAME = b"codeio-sandbox"
PR_SET_CHILD_SUBREAPER = 36
PRIVATE_TMPFS_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")
PRIVATE_TMPFS_SIZE = "256m"  # all work dirs of one server together (files are also capped by RLIMIT_FSIZE)
WORK_ROOT_NS = "/tmp"  # inside the server's own mount namespace
KILL_GRACE_S = 0.5  # wait for a SIGKILLed child to be reaped
LOAD_EXTRA_S = 3.0  # the code's top level (imports not preloaded: sympy ~1.5 s) gets one call timeout plus this
FRESH_FRAME = {"fresh": True}  # the child's request to be replaced after a call that changed shared state
RUN_STATUS_FATAL = {"timeout", "memory", "killed", "output_limit", "sandbox_error"}
SAMPLE_TICK_FACTOR = 2.0  # a sampling attempt (generator + entry) may take 2 per-call timeouts
NOFILE_LIMIT = 256
CHILD_CHANNEL_FD = 3
SERVER_COMPILE_MAX_CHARS = 64 << 10  # longer code is compiled in the child, under its limits
CHILD_FRAME_OVERHEAD = 64 << 10
# numpy.random is left out on purpose: its ten extension modules add ~60 memory
# mappings, which makes every fork ~0.4 ms slower; children that use it import
# it (and get it seeded) on first use.
WARM_SUBMODULES = {"numpy": ("numpy.linalg",)}

_libc = ctypes.CDLL(None, use_errno=True)
CHILD_DEFAULT_SIGNALS = (int(signal.SIGPIPE), int(signal.SIGINT), int(signal.SIGTERM))
_SIG_DFL = int(signal.SIG_DFL)


class Child(NamedTuple):
    pid: int
    chan_r: int  # results from the child
    pidfd: int  # -1 when pidfd_open is unavailable
    workdir: str


_prctl = isolation.prctl
_mount = isolation.mount


def _code_paths_under(target: str) -> list[str]:
    """The interpreter, the venv, the project and every import path that live under a
    folder about to be hidden by a private tmpfs (a checkout under /tmp, say): they
    must stay importable inside the sandbox. Nested paths collapse into their parent."""
    project = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    candidates = {project, sys.prefix, sys.base_prefix, sys.exec_prefix, *[p for p in sys.path if p]}
    prefix = target.rstrip("/") + "/"
    inside = sorted({os.path.realpath(p) for p in candidates if os.path.realpath(p).startswith(prefix)
                     and os.path.isdir(os.path.realpath(p))})
    kept: list[str] = []
    for path in inside:
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    return kept


def _opened(paths: list[str]) -> list[tuple[str, int]]:
    """O_PATH handles taken before the tmpfs hides the paths."""
    return [(path, os.open(path, os.O_PATH | os.O_DIRECTORY)) for path in paths]


def _bind_back_read_only(kept: list[tuple[str, int]]) -> None:
    for path, fd in kept:
        try:
            os.makedirs(path, mode=0o755, exist_ok=True)
            _mount(f"/proc/self/fd/{fd}", path, None, isolation.MS_BIND | isolation.MS_REC, None)
            _mount("none", path, None, isolation.MS_BIND | isolation.MS_REMOUNT | isolation.MS_RDONLY | isolation.MS_NOSUID | isolation.MS_NODEV, None)
        finally:
            os.close(fd)


class Server:
    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.uid: int | None = cfg.get("uid")
        self.slot = cfg["slot"]
        self.is_root = os.geteuid() == 0
        self.userns = False
        self.netns = False
        self.mountns = False
        self.pidns = False
        self.fs_view = False
        self.seccomp = False
        self.notes: list[dict[str, str]] = []  # missing guarantees (isolation.lost)
        self.work_root = cfg["work_root"]
        self.batch = 0
        self.pid = os.getpid()
        self.raw_fork: Any = None  # libc fork when single-threaded (see _fork)
        self.deferred: list[tuple[Child, int]] = []
        self.dying: list[Child] = []  # answered, SIGKILLed, not yet reaped (no fork allowed to them)

    # ---- start-up ---------------------------------------------------------
    def setup(self) -> None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != self.cfg["parent_pid"]:
            os._exit(0)  # the owner died before PDEATHSIG was armed
        if self.cfg.get("isolate_network", True):
            self._enter_isolation()
        else:
            off = isolation.NEEDS_USER_NAMESPACE if self.is_root else ("user_namespace", *isolation.NEEDS_USER_NAMESPACE)
            self.notes += [isolation.lost(name, "isolation turned off in the configuration") for name in off]
        try:
            _prctl(PR_SET_CHILD_SUBREAPER, 1)
        except OSError as exc:
            self.notes.append(isolation.lost("subreaper", isolation.kernel_reason(exc)))
        self._preload()
        if self.pidns and self.mountns:
            try:
                isolation.build_root(self.cfg["package_root"], with_proc=True)
                self.fs_view = True
                self.work_root = WORK_ROOT_NS
            except OSError as exc:
                self.notes.append(isolation.lost("filesystem_view", isolation.kernel_reason(exc)))
        elif not any(item["guarantee"] == "filesystem_view" for item in self.notes):
            self.notes.append(isolation.lost("filesystem_view", "needs both the mount and the PID namespace"))
        if self.mountns and not self.fs_view:
            self._private_tmp()
        if not self.mountns:
            os.makedirs(self.work_root, mode=0o711, exist_ok=True)
            os.chmod(self.work_root, 0o711)
        self.seccomp = self._probe_seccomp()
        if self.seccomp:
            # Once here rather than in every child (children inherit it): the server
            # needs none of what it refuses once the namespaces and the view are built.
            isolation.install_seccomp()
        self.raw_fork = _raw_fork_if_single_threaded()

    def _enter_isolation(self) -> None:
        """User namespace when unprivileged, then net/mount/IPC/PID; as init of
        the PID namespace this process cannot be signalled by its children."""
        if not self.is_root:
            try:
                isolation.enter_user_namespace()
                self.userns = True
            except OSError as exc:
                reason = isolation.kernel_reason(exc)
                self.notes.append(isolation.lost("user_namespace", reason))
                self.notes += [isolation.lost(name, f"needs the user namespace: {reason}")
                               for name in isolation.NEEDS_USER_NAMESPACE]
                return
        got = isolation.enter_namespaces(self.notes)
        self.netns, self.mountns, self.pidns = got["net"], got["mount"], got["pid"]
        if self.pidns:
            isolation.become_namespace_init()
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # tied to the holder outside, which is tied to the owner
            self.pid = os.getpid()
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
                signal.signal(sig, signal.SIG_DFL)  # init ignores default-handled signals from its namespace
        if self.userns:
            isolation.set_not_dumpable()

    def _probe_seccomp(self) -> bool:
        if not isolation.seccomp_available():
            self.notes.append(isolation.lost("seccomp", f"no filter for {os.uname().machine}"))
            return False
        pid = os.fork()
        if pid == 0:
            try:
                isolation.install_seccomp()
                ok = _libc.unshare(0) != 0  # refused now (EPERM)
            except BaseException:  # noqa: BLE001 - reported through the exit code
                ok = False
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            return True
        self.notes.append(isolation.lost("seccomp", "the kernel refused the filter"))
        return False

    def _private_tmp(self) -> None:
        """Without the minimal view: private tmpfs over the shared temporary folders,
        with the code paths under them bound back read-only."""
        try:
            _mount("none", "/", None, isolation.MS_REC | isolation.MS_PRIVATE, None)
            for target in PRIVATE_TMPFS_DIRS:
                if os.path.isdir(target):
                    keep = _opened(_code_paths_under(target))
                    # root-owned 0755: the sandbox uid can write only in its own work dir
                    _mount("tmpfs", target, "tmpfs", isolation.MS_NOSUID | isolation.MS_NODEV, f"mode=0755,size={PRIVATE_TMPFS_SIZE}")
                    _bind_back_read_only(keep)
            self.work_root = WORK_ROOT_NS
        except OSError as exc:
            self.mountns = False
            self.notes.append(isolation.lost("private_tmp", isolation.kernel_reason(exc)))

    def _preload(self) -> None:
        self.preloaded: dict[str, str] = {}
        self.missing: list[str] = []
        for name in self.cfg["preload"]:
            try:
                mod = importlib.import_module(name)
            except Exception as exc:  # noqa: BLE001 - a broken optional package is only noted
                self.missing.append(f"{name}: {type(exc).__name__}")
                continue
            self.preloaded[name] = str(getattr(mod, "__version__", ""))
        # Lazily imported numpy parts that children would otherwise import again,
        # then the child's own code, specialized once here (see child.warm_up).
        for name in WARM_SUBMODULES.get("numpy", ()) if "numpy" in self.preloaded else ():
            try:
                importlib.import_module(name)
            except Exception as exc:  # noqa: BLE001
                self.missing.append(f"{name}: {type(exc).__name__}")
        child = self.child_module = importlib.import_module("codeio.sandbox.child")
        child.install_seed_on_import()
        child.warm_up()
        # What every child had set in its sys (argv, no .pyc writes) is set here once: a
        # write to sys in a child makes it re-read all of sys for its guard.
        sys.argv = ["main"]
        sys.dont_write_bytecode = True
        # Children must not walk (and so copy-on-write) every preloaded object in a GC pass.
        gc.collect()
        gc.freeze()

    def probe_child_imports(self) -> bool:
        """Can the sandbox uid read the standard library? (A Python under a 0700
        home directory cannot import anything not preloaded after the switch.)"""
        if not (self.is_root and self.uid is not None):
            return True
        import sysconfig

        stdlib = sysconfig.get_paths()["stdlib"]
        purelib = sysconfig.get_paths()["purelib"]
        pid = os.fork()
        if pid == 0:
            ok = False
            try:
                os.setgroups([])
                os.setgid(self.uid)
                os.setuid(self.uid)
                ok = all(os.access(p, os.R_OK | os.X_OK) for p in (stdlib, purelib) if os.path.isdir(p))
            finally:
                os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0

    def info(self) -> dict[str, Any]:
        return {
            "python": sys.version.split()[0],
            "implementation": sys.implementation.name,
            "preloaded": self.preloaded,
            "missing": self.missing,
            "userns": self.userns,
            "netns": self.netns,
            "mountns": self.mountns,
            "pidns": self.pidns,
            "fs_view": self.fs_view,
            "seccomp": self.seccomp,
            "uid": self.uid if self.is_root else None,
            "mode": isolation.mode(self.is_root, self.userns),
            "missing_guarantees": self.notes,
            "notes": [isolation.describe(item) for item in self.notes],
            "child_imports_ok": self.probe_child_imports(),
            "hashseed": os.environ.get("PYTHONHASHSEED"),
        }

    # ---- main loop -------------------------------------------------------
    def serve(self, inp: int, out: int) -> None:
        reader = FrameReader(inp)
        write_frame(out, {"ready": True, "info": self.info()})
        while True:
            try:
                job = reader.read(None)
            except ChannelClosed:
                self._reap_dying()
                return
            if job.get("kind") == "ping":
                write_frame(out, {"pong": True, "usage": _usage()})
                continue
            try:
                if job["kind"] == "run":
                    response = {"results": self.run_batch(job)}
                else:
                    response = self.sample(job)
            except Exception as exc:  # noqa: BLE001 - our own failure: report it, keep serving
                response = {"error": f"{type(exc).__name__}: {exc}"}
            write_frame(out, response)
            self.finish_deferred()

    # ---- one child -------------------------------------------------------
    def _make_workdir(self) -> str:
        self.batch += 1
        path = os.path.join(self.work_root, f"s{self.slot}-{self.pid}-{self.batch}")
        os.mkdir(path, 0o700)
        if self.is_root and self.uid is not None:
            os.chown(path, self.uid, self.uid)
        return path

    def _start_child(self, job: dict[str, Any], start: int, compiled: Any) -> Child:
        """Fork an isolated child for ``job``: it inherits the job (no frame to read)
        and the code compiled here (``compiled``, see ``_compile``)."""
        self._reap_dying()
        workdir = self._make_workdir()
        r, w = os.pipe()
        self.child_module.snapshot_before_fork()
        pid = self._fork()
        if pid == 0:
            try:
                os.close(r)
                self._isolate(w, workdir)
                _apply_limits(job["limits"], self._nproc_base())
                self.child_module.child_main(job, CHILD_CHANNEL_FD, start, compiled)
            finally:
                os._exit(99)
        os.close(w)
        os.set_blocking(r, False)
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            pidfd = -1
        return Child(pid, r, pidfd, workdir)

    def _compile(self, job: dict[str, Any]) -> Any:
        """The code compiled in the server, once per job (in a child the compiler's
        allocations cost ~1 ms of copy-on-write faults), or None: then the child
        compiles it itself, under its limits. Hostile source is bounded here: only
        code up to ``SERVER_COMPILE_MAX_CHARS`` is compiled, and any error or warning
        (deep nesting, a syntax error, a SyntaxWarning) leaves it to the child,
        which reports it exactly as before."""
        return self.child_module.compile_guarded(job.get("code"), SERVER_COMPILE_MAX_CHARS)

    def _fork(self) -> int:
        """fork(2) without Python's after-fork hooks (threading, random, logging
        re-initialisation: ~200 copy-on-write faults and ~0.7 ms per child) when
        this server is single-threaded, where skipping them is sound: no lock can
        be held by another thread, and every child seeds random itself."""
        if self.raw_fork is None:
            return os.fork()
        pid = self.raw_fork()
        if pid < 0:
            raise OSError(ctypes.get_errno(), "fork failed")
        return pid

    def finish_deferred(self) -> None:
        """Children whose results are already answered: SIGKILLed now; reaped and
        cleaned up after (``_reap_dying``) right before the next fork, so that their
        exit (~1 ms of unmapping) overlaps reading and compiling the next job. A child
        that was allowed to fork is reaped at once: its escapees must not live on."""
        while self.deferred:
            child, max_processes = self.deferred.pop()
            if max_processes > 0:
                self._finish_child(child)
                self._cleanup(child.workdir, max_processes)
            else:
                _kill_group(child.pid)
                self.dying.append(child)

    def _reap_dying(self) -> None:
        """Reap the children killed by ``finish_deferred`` and clean up after them (their
        work dirs, the private /tmp and /dev/shm): always before another child starts."""
        while self.dying:
            child = self.dying.pop()
            self._finish_child(child)
            self._cleanup(child.workdir, 0)

    def _isolate(self, chan: int, workdir: str) -> None:
        """In the child: new session, descriptors, uid switch (order matters).
        Resource limits follow once the job is known (lowering needs no privilege)."""
        os.setsid()
        _set_process_name(CHILD_PROCESS_NAME)  # visible in ps/top as the sandboxed child
        os.chdir(workdir)
        chan_hi = fcntl.fcntl(chan, fcntl.F_DUPFD, 10)
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(chan_hi, CHILD_CHANNEL_FD)
        os.closerange(CHILD_CHANNEL_FD + 1, 1 << 16)
        if self.is_root and self.uid is not None:
            os.setgroups([])
            os.setgid(self.uid)
            os.setuid(self.uid)
        elif self.userns:
            isolation.drop_capabilities()
        log = os.open("output.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        if not self.pidns:  # in its PID namespace, the server's death kills every child anyway
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # after setuid: credential changes clear it
        if os.getppid() != self.pid:
            os._exit(0)
        os.environ["HOME"] = workdir
        os.environ["TMPDIR"] = workdir
        for sig in CHILD_DEFAULT_SIGNALS:
            _signal.signal(sig, _SIG_DFL)  # the C function: signal.signal's enum wrapping costs ~60 page copies
        if not self.netns:
            sys.addaudithook(_deny_network)  # weaker fallback: Python-level sockets only

    def _nproc_base(self) -> int:
        """RLIMIT_NPROC counts every process of the uid. As root the child has a uid
        of its own (base 0); in a user namespace with its own PID namespace, the
        server's uid also runs the server, its holder and this child: they are the
        base (the visible processes plus the holder, minus this child)."""
        if self.is_root or not (self.userns and self.fs_view):
            return 0
        return sum(1 for e in os.listdir("/proc") if e.isdigit())

    def _finish_child(self, child: Child) -> tuple[int, float]:
        """SIGKILL the child's group, reap it, return (wait status, cpu seconds)."""
        pid, r, pidfd = child.pid, child.chan_r, child.pidfd
        _kill_group(pid)
        try:
            _, status, usage = os.wait4(pid, 0)
        except ChildProcessError:
            status, usage = 0, None
        os.close(r)
        if pidfd >= 0:
            os.close(pidfd)
        cpu = (usage.ru_utime + usage.ru_stime) if usage is not None else 0.0
        return status, cpu

    def _cleanup(self, workdir: str, max_processes: int) -> None:
        if max_processes > 0 and ((self.is_root and self.uid is not None) or self.pidns):
            self._reap_uid()
        while True:  # orphans re-parented to us (subreaper)
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
        _remove_tree(workdir)
        if self.fs_view:
            for folder in PRIVATE_TMPFS_DIRS:  # nothing a child left there reaches the next one
                _empty(folder)
        elif not self.mountns and self.is_root and self.uid is not None:
            _remove_owned(self.uid)

    def _reap_uid(self) -> None:
        """kill(-1, SIGKILL) from the sandbox uid, or from inside the PID namespace
        (where it reaches every process but init): ends every escapee of this slot."""
        pid = os.fork()
        if pid == 0:
            try:
                if self.is_root and self.uid is not None:
                    os.setgroups([])
                    os.setgid(self.uid)
                    os.setuid(self.uid)
                os.kill(-1, signal.SIGKILL)
            except BaseException:  # noqa: BLE001
                pass
            os._exit(0)
        os.waitpid(pid, 0)
        deadline = time.monotonic() + KILL_GRACE_S
        while time.monotonic() < deadline:
            try:
                reaped, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if reaped == 0:
                time.sleep(0.001)

    def _death_result(self, status: int, cpu: float, limits: dict[str, Any], timed_out: bool, during: str) -> dict[str, Any]:
        if timed_out:
            return {"status": "timeout", "error_message": f"deadline of {limits['timeout_s']} s exceeded{during}"}
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= limits["cpu_s"]):
                return {"status": "timeout", "error_message": f"CPU limit exceeded{during}"}
            if sig == signal.SIGXFSZ:
                return {"status": "output_limit", "error_message": f"file size limit exceeded{during}"}
            return {"status": "killed", "error_message": f"killed by {signal.Signals(sig).name}{during}"}
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
        from codeio.sandbox.child import EXIT_MEMORY

        if code == EXIT_MEMORY:
            return {"status": "memory", "error_message": f"out of memory{during}"}
        return {"status": "killed", "error_message": f"process exited with code {code} without a result{during}"}

    # ---- run -------------------------------------------------------------
    def run_batch(self, job: dict[str, Any]) -> list[dict[str, Any]]:
        n = len(job["inputs"])
        limits = job["limits"]
        results: list[dict[str, Any]] = []
        job["require"] = [job["entry"]]
        compiled = self._compile(job)
        while len(results) < n:
            start = len(results)
            limits["cpu_s"] = float(limits["timeout_s"]) * (n - start + 1) + LOAD_EXTRA_S
            child = self._start_child(job, start, compiled)
            try:
                ended = self._read_calls(child, job, results)
            except BaseException:
                self._retire(child, limits)
                raise
            if not ended:
                self.deferred.append((child, int(limits["max_processes"])))
                break
            status, cpu = self._retire(child, limits)
            if ended.fresh:
                continue  # the child changed shared state: a new one takes the rest
            if ended.bad is not None:
                # The child broke the protocol: nothing it said counts, for any call.
                failure = {"status": "sandbox_error", "error_message": f"malformed frame from the child: {ended.bad}"}
                results[:] = [dict(failure) for _ in range(n)]
                break
            fatal: dict[str, Any] | None = ended.fatal
            if fatal is None and len(results) < n:
                during = "" if ended.loaded else " while loading the code"
                fatal = self._death_result(status, cpu, limits, ended.timed_out, during)
                if not ended.loaded:
                    results.extend([dict(fatal) for _ in range(n - len(results))])
                    break
                results.append(fatal)
            if fatal is not None and len(results) < n and job["stop_on_fatal"]:
                skipped = {"status": fatal["status"],
                           "error_message": f"not run: call {len(results) - 1} of the batch was fatal ({fatal['status']})"}
                results.extend([dict(skipped) for _ in range(n - len(results))])
        return results

    def _read_calls(self, child: Child, job: dict[str, Any], results: list[dict[str, Any]]) -> _Ended | None:
        """Collect one child's call results into ``results``; None when it answered
        every call, else why it stopped (it must then be retired)."""
        limits = job["limits"]
        n = len(job["inputs"])
        timeout = float(limits["timeout_s"])
        max_chars = int(limits["max_output_bytes"])
        reader = FrameReader(child.chan_r, _child_frame_cap(limits))
        extra = (child.pidfd,) if child.pidfd >= 0 else ()
        deadline = time.monotonic() + timeout + LOAD_EXTRA_S
        loaded = False
        first = len(results)
        try:
            while len(results) < n:
                frame = reader.read(deadline, extra)
                deadline = time.monotonic() + timeout
                if frame == FRESH_FRAME and len(results) > first:
                    return _Ended(loaded, fresh=True)
                if not loaded:
                    failure = frames.load_frame(frame, max_chars)
                    if failure is None:
                        loaded = True
                        continue
                    results.extend([dict(failure) for _ in range(n - len(results))])
                    return None
                res = frames.call_result(frame, max_chars, bool(job["check_size"]))
                results.append(res)
                if res["status"] in RUN_STATUS_FATAL:
                    return _Ended(loaded, fatal=res)
        except ChannelTimeout:
            return _Ended(loaded, timed_out=True)
        except ChannelClosed:
            return _Ended(loaded)
        except ProtocolError as exc:
            return _Ended(loaded, bad=str(exc)[:200])
        return None

    def _retire(self, child: Child, limits: dict[str, Any]) -> tuple[int, float]:
        status, cpu = self._finish_child(child)
        self._cleanup(child.workdir, int(limits["max_processes"]))
        return status, cpu

    # ---- sample ----------------------------------------------------------
    def sample(self, job: dict[str, Any]) -> dict[str, Any]:
        limits = job["limits"]
        limits["cpu_s"] = float(limits["timeout_s"]) + LOAD_EXTRA_S + 1
        job["require"] = [job["generator"], job["entry"]]
        child = self._start_child(job, 0, self._compile(job))
        tracker = frames.SampleTracker(int(job["max_attempts"]), int(job["max_pairs"]), int(limits["max_output_bytes"]))
        try:
            response, timed_out = self._read_sample(child, job, tracker)
        except BaseException:
            self._retire(child, limits)
            raise
        if response is not None:
            self.deferred.append((child, int(limits["max_processes"])))
        else:
            status, cpu = self._retire(child, limits)
            if isinstance(timed_out, str):  # a malformed frame: no pair of this child counts
                tracker.pairs = []
                response = {"status": "sandbox_error", "error_message": f"malformed frame from the child: {timed_out}",
                            "attempts": tracker.attempts, "rejected": {}}
            else:
                per_call = float(job["per_call_timeout_s"])
                death = self._death_result(status, cpu, {**limits, "timeout_s": per_call}, timed_out, " during sampling")
                response = {"status": death["status"], "error_message": death["error_message"],
                            "attempts": tracker.attempts, "rejected": {}}
        response["pairs"] = tracker.pairs
        return response

    def _read_sample(self, child: Child, job: dict[str, Any],
                     tracker: frames.SampleTracker) -> tuple[dict[str, Any] | None, bool | str]:
        """(summary, False) when the child finished; (None, timed out?) when it died or
        hung; (None, reason) when it sent a malformed frame."""
        limits = job["limits"]
        budget = float(limits["timeout_s"])
        per_call = float(job["per_call_timeout_s"])
        reader = FrameReader(child.chan_r, _child_frame_cap(limits))
        extra = (child.pidfd,) if child.pidfd >= 0 else ()
        hard_end = time.monotonic() + budget + LOAD_EXTRA_S + 1.0
        deadline = min(hard_end, time.monotonic() + per_call + LOAD_EXTRA_S)
        try:
            while True:
                attempts = tracker.attempts
                summary = tracker.feed(reader.read(deadline, extra))
                if summary is not None:
                    return summary, False
                if tracker.attempts != attempts:
                    deadline = min(hard_end, time.monotonic() + SAMPLE_TICK_FACTOR * per_call + 0.5)
        except ChannelTimeout:
            return None, True
        except ChannelClosed:
            return None, False
        except ProtocolError as exc:
            return None, str(exc)[:200]


class _Ended(NamedTuple):
    """Why a child stopped answering before the end of its batch."""

    loaded: bool
    fatal: dict[str, Any] | None = None  # it reported a fatal status itself
    timed_out: bool = False
    bad: str | None = None  # it sent a malformed frame
    fresh: bool = False  # a call changed shared state: the next calls need a new child


def _kill_group(pid: int) -> None:
    """SIGKILL a child (not yet reaped: its pid cannot be reused) and its process group."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _set_process_name(name: bytes) -> None:
    """PR_SET_NAME through /proc (no ctypes call in the child: its first calls copy ~100 pages)."""
    try:
        fd = os.open("/proc/thread-self/comm", os.O_WRONLY)
    except OSError:
        _libc.prctl(PR_SET_NAME, name, 0, 0, 0)
        return
    try:
        os.write(fd, name)
    except OSError:
        _libc.prctl(PR_SET_NAME, name, 0, 0, 0)
    finally:
        os.close(fd)


def _raw_fork_if_single_threaded() -> Any:
    """libc's fork, callable with the GIL held, when this process has one thread (else None)."""
    try:
        if len(os.listdir("/proc/self/task")) != 1:
            return None
    except OSError:
        return None
    fork = ctypes.PyDLL(None, use_errno=True).fork
    fork.argtypes = ()
    fork.restype = ctypes.c_int
    return fork


def _usage() -> dict[str, float]:
    """CPU seconds and page faults of the server and of its reaped children (for profiling)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"server_cpu": own.ru_utime + own.ru_stime, "server_minflt": own.ru_minflt,
            "children_cpu": children.ru_utime + children.ru_stime, "children_minflt": children.ru_minflt}


def _child_frame_cap(limits: dict[str, Any]) -> int:
    """A child frame holds one value (capped at max_output_bytes, at most 6x
    longer once JSON-escaped) plus short messages: anything bigger is hostile."""
    return 6 * int(limits["max_output_bytes"]) + CHILD_FRAME_OVERHEAD


NETWORK_AUDIT_EVENTS = frozenset({"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg",
                                  "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr"})


def _deny_network(event: str, args: tuple[Any, ...]) -> None:
    if event in NETWORK_AUDIT_EVENTS:
        raise PermissionError(f"network access is not allowed in the sandbox ({event})")


def _apply_limits(limits: dict[str, Any], nproc_base: int = 0) -> None:
    _setrlimit(resource.RLIMIT_CPU, int(limits["cpu_s"]) + 1)
    _setrlimit(resource.RLIMIT_AS, int(limits["memory_mb"]) << 20)
    _setrlimit(resource.RLIMIT_FSIZE, int(limits["max_file_bytes"]))
    _setrlimit(resource.RLIMIT_CORE, 0)
    _setrlimit(resource.RLIMIT_NOFILE, NOFILE_LIMIT)
    _setrlimit(resource.RLIMIT_NPROC, nproc_base + 1 + int(limits["max_processes"]))


def _setrlimit(which: int, value: int) -> None:
    soft, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(which, (value, value))


def _remove_tree(path: str) -> None:
    """rmtree without importing shutil (which loads bz2/lzma into the server), without
    recursion (os.walk recurses: a child's deep tree would exceed the recursion limit
    here) and without following symlinks. Safe as root: every process of the sandbox
    uid is dead when it runs."""
    stack = [path]
    emptied: list[str] = []
    while stack:
        folder = stack.pop()
        emptied.append(folder)
        try:
            entries = os.scandir(folder)
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    is_dir = False
                if is_dir:
                    stack.append(entry.path)
                else:
                    _unlink(entry.path)
    for folder in reversed(emptied):  # children before their parents
        try:
            os.rmdir(folder)
        except OSError:
            pass


def _empty(folder: str) -> None:
    try:
        with os.scandir(folder) as it:
            entries = [(entry.path, entry.is_dir(follow_symlinks=False)) for entry in it]
    except OSError:
        return
    for path, is_dir in entries:
        if is_dir:
            _remove_tree(path)
        else:
            _unlink(path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _remove_owned(uid: int) -> None:
    """Fallback without a mount namespace: drop what the sandbox uid left in the
    world-writable directories."""
    for base in PRIVATE_TMPFS_DIRS:
        try:
            entries = os.scandir(base)
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    if entry.stat(follow_symlinks=False).st_uid != uid:
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        _remove_tree(entry.path)
                    else:
                        os.unlink(entry.path)
                except OSError:
                    continue


def main() -> None:
    cfg = json.loads(sys.argv[1])
    # Descriptors: 0 = jobs in, 1 = responses out. Keep stdout clean of prints.
    out = os.dup(1)
    null = os.open("/dev/null", os.O_WRONLY)
    os.dup2(null, 1)
    os.close(null)
    sys.stdout = sys.stderr
    server = Server(cfg)
    server.setup()
    server.serve(0, out)


if __name__ == "__main__":
    main()
