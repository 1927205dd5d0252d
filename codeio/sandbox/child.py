"""What runs inside a forked child, after isolation is in place: exec the code
once, then run the batch (``run``) or the generator loop (``sample``),
reporting through length-prefixed JSON frames on one pipe.

Result dicts use the field names of :class:`codeio.execution.CallResult`.
"""

from __future__ import annotations

import ast
import builtins
import errno
import importlib.machinery
import json
import linecache
import os
import random
import signal
import sys
import time
import traceback
import warnings
from typing import Any, Callable

from codeio.sandbox.protocol import write_frame
from codeio.sandbox.sizecheck import is_finite, size_violation

MODULE_NAME = "__codeio_sandbox__"  # not "__main__": demo blocks of scraped code stay inert
CODE_FILENAME = "<code>"
MAX_TRACEBACK_CHARS = 2000
# A call's top level is run again from the compiled code, imports included (a
# cached import is ~1 us). After this many re-runs, with as many calls still to
# come, the top-level imports are split off once (parsing the code again costs
# about as much as eight re-runs of a typical import header).
FAST_RELOAD_AFTER = 8
MAX_MESSAGE_CHARS = 1000
EXIT_MEMORY = 97  # the child could not even report a MemoryError
EXIT_INTERNAL = 98
NON_FATAL_STATUSES = frozenset({"ok", "exception", "invalid_value"})

_dumps = json.dumps
_loads = json.loads


class OutputLimitExceeded(BaseException):
    """Raised by the capped stdout/stderr sink (BaseException: user code rarely catches it)."""


class CallTimeout(BaseException):
    """Raised by the per-call interval timer during sampling."""


class CappedSink:
    """sys.stdout / sys.stderr replacement: counts what is printed, keeps nothing,
    and ends the child once the per-call cap is passed."""

    encoding = "utf-8"
    errors = "strict"

    def __init__(self, on_overflow: Callable[[], None]) -> None:
        self.limit = 0
        self.used = 0
        self._on_overflow = on_overflow

    def write(self, text: str) -> int:
        self.used += len(text)
        if self.used > self.limit:
            self._on_overflow()
        return len(text)

    def flush(self) -> None:
        return None

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        raise OSError("captured stream has no file descriptor")

    @property
    def buffer(self) -> "CappedSink":
        return self  # sys.stdout.buffer.write(b"...") is counted the same way


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def status_of(exc: BaseException) -> str:
    """Exceptions that are really resource limits get the limit's status."""
    if isinstance(exc, MemoryError):
        return "memory"
    if isinstance(exc, OSError) and exc.errno == errno.EFBIG:
        return "output_limit"  # RLIMIT_FSIZE (Python ignores SIGXFSZ, so the write fails)
    return "exception"


def exception_result(exc: BaseException, duration: float = 0.0, status: str | None = None) -> dict[str, Any]:
    try:
        message = str(exc)
    except Exception:  # a hostile __str__
        message = "<unprintable message>"
    try:
        frames = traceback.extract_tb(exc.__traceback__)
        frames = [f for f in frames if f.filename == CODE_FILENAME] or frames[-3:]
        tb = "".join(traceback.format_list(frames[-8:]))
    except Exception:
        tb = ""
    return {
        "status": status or status_of(exc),
        "error_type": type(exc).__name__,
        "error_message": _short(message, MAX_MESSAGE_CHARS),
        "traceback": _short(tb, MAX_TRACEBACK_CHARS),
        "duration_s": duration,
    }


class _SeedState:
    """The seed of the call in progress, for modules imported during the call."""

    current = 0


def _seed_numpy(module: Any, seed: int) -> None:
    try:
        module.seed(seed % (1 << 32))
    except Exception:  # a broken or monkeypatched numpy is the code's problem
        pass


def _seed(seed: int) -> None:
    _SeedState.current = seed
    random.seed(seed)
    np_random = sys.modules.get("numpy.random")
    if np_random is not None:
        _seed_numpy(np_random, seed)


class _SeedingLoader:  # duck-typed: importlib.abc would pull shutil, bz2, lzma into the server
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def create_module(self, spec: Any) -> Any:
        return self.inner.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self.inner.exec_module(module)
        _seed_numpy(module, _SeedState.current)


class _SeedOnImport:
    """Seeds numpy.random when a child imports it lazily (it is not preloaded)."""

    NAMES = frozenset({"numpy.random"})

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name not in self.NAMES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _SeedingLoader(spec.loader)
        return spec


def install_seed_on_import() -> None:
    """Called once in the server: children inherit the hook."""
    if not any(isinstance(f, _SeedOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _SeedOnImport())


def new_code_module() -> Any:
    """A new module for the code to run in. It goes in ``sys.modules`` under its
    ``__name__``: dataclasses, typing.get_type_hints, pickle and enum look a class's
    module up there by ``__module__``. Its ``__file__`` is the code's file name,
    whose lines are in ``linecache`` (see :func:`cache_source`): ``inspect.getsource``
    and tracebacks find the code as they would in a file."""
    module = type(sys)(MODULE_NAME)
    module.__builtins__ = builtins  # type: ignore[attr-defined]
    module.__file__ = CODE_FILENAME  # type: ignore[attr-defined]
    return module


def cache_source(code: str) -> None:
    """The code's lines in ``linecache`` under its file name (no modification time:
    ``linecache.checkcache`` keeps such entries, as it does for zip imports)."""
    linecache.cache[CODE_FILENAME] = (len(code), None, code.splitlines(True), CODE_FILENAME)


def code_module() -> Any:
    """A new module for the code, registered (before the guard is in place)."""
    module = new_code_module()
    sys.modules[MODULE_NAME] = module
    return module


ALWAYS_WATCHED = ("builtins", "sys", "os", "os.path", "random", "json", "math", "collections", "itertools",
                  "functools", "operator", "copy", "re", "string", "heapq", "bisect", "numpy")


class StateGuard:
    """Shared state a call could change for the calls after it, in the same child.

    Each call gets a fresh namespace (the code's top level run again), so the
    code's own globals never carry over. What lives outside it is either put
    back after every call (recursion limit, environment, working directory,
    import path) or compared with its state after loading: which modules are
    imported, and the attributes of the standard modules, of ``sys``/``builtins``
    and of every module the code refers to. When a call changed any of that,
    the rest of the batch runs in a fresh child.

    The comparison costs a few microseconds: a dict's version tag changes on
    every write to it, so the attributes are compared one by one only when a
    watched dict was written to (a submodule imported on first use, say).
    """

    def __init__(self, namespace: dict[str, Any]) -> None:
        self.recursion_limit = sys.getrecursionlimit()
        self.environ = dict(_environ_data())
        self.cwd = os.getcwd()
        self.path = list(sys.path)
        self.meta_path = list(sys.meta_path)
        snapshot = _SNAPSHOT if _SNAPSHOT.tags is not None else None
        self.watched = []
        attributes = []
        for module in self._watched(namespace):
            entry = snapshot.unchanged(module) if snapshot is not None else None
            if entry is None:  # written to since the server's snapshot (or no tags): read it here
                names = tuple(vars(module))
                entry = (names, tuple(map(id, map(vars(module).get, names))))
            self.watched.append((vars(module), entry[0]))
            attributes.append(entry[1])
        # Taken before the fork and still a valid reference (see ServerSnapshot).
        self.modules = snapshot.modules if snapshot is not None else self._modules()
        self.attributes = attributes
        self.tags = _version_tags([sys.modules] + [d for d, _ in self.watched],
                                  snapshot.cells if snapshot is not None else None)
        self.tag_values = self.tags.read() if self.tags is not None else None
        self.threads = len(sys._current_frames())
        self.cwd_mtime = os.stat(self.cwd).st_mtime_ns

    def register(self, module: Any) -> None:
        """Make ``module`` the code's module in ``sys.modules``, a write not taken for
        a change (done between calls, before any of the code runs). Only when
        ``sys.modules`` was not written to since the last check: a write by the
        code (the generator, say) must still be seen by :meth:`changed`."""
        if self.tags is None:
            sys.modules[MODULE_NAME] = module
            return
        modules_tag = self.tags.cells[0]  # sys.modules is the first watched dict
        unwritten = modules_tag.value == self.tag_values[0]
        sys.modules[MODULE_NAME] = module
        if unwritten:
            self.tag_values[0] = modules_tag.value

    @staticmethod
    def _modules() -> tuple[int, ...]:
        """The code's own module is left out: every call registers a new one."""
        return tuple(id(m) for name, m in list(sys.modules.items()) if name != MODULE_NAME)

    @staticmethod
    def _watched(namespace: dict[str, Any]) -> list[Any]:
        names = set(ALWAYS_WATCHED)
        for value in list(namespace.values()):
            if type(value) is type(sys):
                names.add(value.__name__)
            else:
                owner = getattr(value, "__module__", None)
                if isinstance(owner, str):
                    names.add(owner)
        return [sys.modules[n] for n in sorted(names) if n in sys.modules and n != MODULE_NAME]

    def _attributes(self) -> list[tuple[int, ...]]:
        """Identity of every attribute the watched modules had after loading (added
        ones, like a submodule imported on first use, do not count)."""
        return [tuple(map(id, map(d.get, keys))) for d, keys in self.watched]

    def restore(self) -> None:
        """Put back what is cheap to put back."""
        if sys.getrecursionlimit() != self.recursion_limit:
            sys.setrecursionlimit(self.recursion_limit)
        if _environ_data() != self.environ:
            os.environ.clear()
            os.environ.update({k.decode("utf-8", "surrogateescape"): v.decode("utf-8", "surrogateescape")
                               for k, v in self.environ.items()})
        try:
            os.chdir(self.cwd)
        except OSError:
            pass
        sys.path[:] = self.path
        sys.meta_path[:] = self.meta_path

    def changed(self) -> bool:
        """Did a call change what cannot be put back? (New imports are fine; a
        replaced or removed module, a patched attribute, a live thread, a file
        left in the work dir are not.)"""
        if len(sys._current_frames()) != self.threads or os.stat(self.cwd).st_mtime_ns != self.cwd_mtime:
            return True
        if self.tags is not None:
            now = self.tags.read()
            if now == self.tag_values:
                return False  # nothing watched was written to
        modules = self._modules()
        if modules[: len(self.modules)] != self.modules or self._attributes() != self.attributes:
            return True
        if self.tags is not None:
            self.tag_values = now  # written to, but only added to: the new tags are the reference
        return False


def _environ_data() -> dict[bytes, bytes]:
    return os.environ._data  # type: ignore[attr-defined]  # the bytes mapping behind os.environ


class _VersionTags:
    """The version tags of some dicts (CPython 3.11-3.13 ``ma_version_tag``): read in C."""

    def __init__(self, dicts: list[dict[Any, Any]], known: dict[int, Any] | None = None) -> None:
        import ctypes

        self.dicts = dicts  # kept alive: the addresses below point into them
        known = known or {}
        self.cells = [known.get(id(d)) or ctypes.c_uint64.from_address(id(d) + _TAG_OFFSET) for d in dicts]

    def read(self) -> list[int]:
        return [cell.value for cell in self.cells]


_TAG_OFFSET = 3 * 8  # PyObject_HEAD (refcount, type), ma_used, then ma_version_tag


_TAGS_WORK: list[bool] = []  # the answer of _tags_work, once known (the server's is inherited)


def _tags_work() -> bool:
    """Does this interpreter have the tags where expected? Probed once per process tree
    (a probe in every child, through ctypes, cost ~150 copy-on-write faults)."""
    if not _TAGS_WORK:
        _TAGS_WORK.append(_probe_tags())
    return _TAGS_WORK[0]


def _probe_tags() -> bool:
    """Checked on a probe dict: the tag must change on each write and not otherwise."""
    if sys.implementation.name != "cpython" or not (3, 11) <= sys.version_info[:2] <= (3, 13):
        return False
    probe: dict[str, int] = {}
    tags = _VersionTags([probe])
    first = tags.read()
    probe["a"] = 1
    second = tags.read()
    unchanged = tags.read()
    probe["a"] = 2
    third = tags.read()
    return first != second == unchanged != third


def _version_tags(dicts: list[dict[Any, Any]], known: dict[int, Any] | None = None) -> _VersionTags | None:
    """Tags when this interpreter has them (else None, and every check compares
    attributes one by one); ``known`` holds cells made before (the snapshot's)."""
    if not _tags_work():
        return None
    return _VersionTags(dicts, known)


class ServerSnapshot:
    """The guard's reference state, taken in the fork server before each fork.

    Reading every attribute of the watched modules in a child (``id()`` of each)
    writes their reference counts: every page they live on is copied, some 500
    page faults per child. The server reads them once instead; a child takes the
    snapshot of a module whose dict version tag has not moved since (no write to
    it in between: tags only grow), and reads the others itself. The modules in
    ``sys.modules`` are the snapshot's too: after loading, the child's list starts
    with them unless the load replaced or removed one, and then the guard sees a
    change at the first call that imports anything (a fresh child for the rest:
    conservative, never wrong)."""

    def __init__(self) -> None:
        self.tags: bool | None = None  # unknown until the first refresh
        self.modules: tuple[int, ...] = ()
        self.modules_tag = -1
        self.entries: dict[str, tuple[dict[str, Any], int, tuple[str, ...], tuple[int, ...]]] = {}
        self.cells: dict[int, Any] = {}

    def refresh(self) -> None:
        """Bring the snapshot up to date (in the server). Only when ``sys.modules`` was
        written to since the last refresh (an import): the server's modules are not
        written to between forks, and a module whose dict was is not taken from the
        snapshot anyway (its tag moved)."""
        if self.tags is None:
            self.tags = _tags_work() or False
        if not self.tags:
            return
        modules_cell = self._cell(sys.modules)
        if modules_cell.value == self.modules_tag:
            return
        self.modules = StateGuard._modules()
        self.modules_tag = modules_cell.value
        for name, module in list(sys.modules.items()):
            namespace = getattr(module, "__dict__", None)
            if name == MODULE_NAME or type(module) is not type(sys) or not isinstance(namespace, dict):
                continue
            entry = self.entries.get(name)
            tag = self._cell(namespace).value
            if entry is None or entry[0] is not namespace or entry[1] != tag:
                names = tuple(namespace)
                self.entries[name] = (namespace, tag, names, tuple(map(id, map(namespace.get, names))))

    def _cell(self, namespace: dict[Any, Any]) -> Any:
        cell = self.cells.get(id(namespace))
        if cell is None:
            cell = self.cells[id(namespace)] = _VersionTags([namespace]).cells[0]
        return cell

    def write_through(self, module: Any, values: dict[str, Any]) -> None:
        """Set attributes of ``module`` in a child and keep its snapshot valid: when the
        module was not written to since the snapshot (so nothing but these writes has
        happened to it), the entry takes the new values and the new version tag,
        instead of being re-read in the child (for ``sys``, ~90 page copies)."""
        name = module.__name__
        namespace = vars(module)
        entry = self.entries.get(name) if self.tags else None
        valid = (entry is not None and entry[0] is namespace and self.cells[id(namespace)].value == entry[1]
                 and all(key in entry[2] for key in values))
        for key, value in values.items():
            setattr(module, key, value)
        if valid:
            names = entry[2]
            ids = list(entry[3])
            for key, value in values.items():
                ids[names.index(key)] = id(value)
            self.entries[name] = (namespace, self.cells[id(namespace)].value, names, tuple(ids))

    def unchanged(self, module: Any) -> tuple[tuple[str, ...], tuple[int, ...]] | None:
        """(names, ids) of the module's attributes as the server saw them, when its
        dict was not written to since."""
        entry = self.entries.get(module.__name__)
        namespace = vars(module)
        if entry is None or entry[0] is not namespace or self.cells[id(namespace)].value != entry[1]:
            return None
        return entry[2], entry[3]


_SNAPSHOT = ServerSnapshot()


def snapshot_before_fork() -> None:
    """Called by the fork server right before each fork."""
    _SNAPSHOT.refresh()


class Child:
    def __init__(self, job: dict[str, Any], chan: int) -> None:
        self.job = job
        self.chan = chan
        self.current: int | None = None
        self.sink = CappedSink(self._overflow)
        self.namespace: dict[str, Any] = {}

    def send(self, obj: Any) -> None:
        write_frame(self.chan, obj)

    def _overflow(self) -> None:
        raise OutputLimitExceeded()

    def _install_streams(self, limit: int) -> None:
        self.sink.limit = limit
        self.sink.used = 0
        if sys.stdout is not self.sink or sys.stderr is not self.sink:
            # Only when needed: every write to sys's dict moves its version tag, and the
            # guard would then compare sys attribute by attribute after the call.
            _SNAPSHOT.write_through(sys, {"stdout": self.sink, "stderr": self.sink})

    def load(self, compiled: Any = None) -> bool:
        """Exec the code once (``compiled`` by the server, or compiled here). Reports
        {"load": "ok"} or {"load": "error", "result": ...}."""
        limits = self.job["limits"]
        self._install_streams(limits["max_output_bytes"])
        self.module = code_module()
        self.namespace = vars(self.module)
        cache_source(self.job["code"])
        t0 = time.perf_counter()
        try:
            self.compiled = compiled if compiled is not None else compile(self.job["code"], CODE_FILENAME, "exec")
            exec(self.compiled, self.namespace)
        except OutputLimitExceeded:
            self.send({"load": "error", "result": {"status": "output_limit", "error_message": "printed too much while loading"}})
            return False
        except BaseException as exc:
            self.send({"load": "error", "result": exception_result(exc, time.perf_counter() - t0)})
            return False
        for name in self.job.get("require", ()):
            if not callable(self.namespace.get(name)):
                self.send({"load": "error", "result": {
                    "status": "exception", "error_type": "NameError",
                    "error_message": f"name '{name}' is not defined (or not callable)"}})
                return False
        self.without_imports = None
        self.import_bindings: dict[str, Any] = {}
        self.reruns = 0
        self.guard = StateGuard(self.namespace)
        self.source_entry = linecache.cache.get(CODE_FILENAME)
        self.send({"load": "ok"})
        return True

    def fresh_namespace(self, remaining: int) -> dict[str, Any]:
        """The code's top level run again in a new namespace: every call starts from
        the state right after loading (globals, mutable defaults, caches of the code).

        After ``FAST_RELOAD_AFTER`` re-runs with at least as many calls to come, the
        top-level imports are not run again when that is provably the same: they only
        bind names to modules and attributes the guard watches, so the names are bound
        as after loading and the rest of the top level is run."""
        self.reruns += 1
        linecache.cache[CODE_FILENAME] = self.source_entry
        module = new_code_module()
        self.guard.register(module)
        namespace = vars(module)
        if self.without_imports is not None:
            namespace.update(self.import_bindings)
            exec(self.without_imports, namespace)
        else:
            exec(self.compiled, namespace)
            if self.reruns == FAST_RELOAD_AFTER and remaining >= FAST_RELOAD_AFTER:
                self._prepare_fast_reload(namespace)
                self.guard.register(module)  # this call's module again
        return namespace

    def _prepare_fast_reload(self, reference: dict[str, Any]) -> None:
        """Split off the top-level imports, and keep that only if a run of the rest
        with the imported names pre-bound as in ``reference`` (a whole run of the
        top level, made just now) gives the same bindings."""
        try:
            tree = ast.parse(self.job["code"])
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return
        names: list[str] = []
        rest = []
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)) and not any(a.name == "*" for a in node.names) \
                    and not (isinstance(node, ast.ImportFrom) and node.module == "__future__"):
                names.extend((a.asname or a.name).split(".")[0] for a in node.names)
            else:
                rest.append(node)
        if not names:
            return
        missing = object()
        bindings = {name: reference.get(name, missing) for name in names}
        if any(value is missing for value in bindings.values()):
            return
        printed = self.sink.used  # the probe's prints are not the call's
        try:
            code = compile(ast.Module(body=rest, type_ignores=[]), CODE_FILENAME, "exec")
            probe_module = new_code_module()
            self.guard.register(probe_module)  # a write the guard does not take for a change
            probe = vars(probe_module)
            probe.update(bindings)
            exec(code, probe)
        except BaseException:  # noqa: BLE001 - any doubt: run the whole top level each time
            return
        finally:
            self.sink.used = printed
        if probe.keys() != reference.keys() or any(probe[n] is not bindings[n] for n in names):
            return
        self.without_imports = code
        self.import_bindings = bindings

    # ---- run ------------------------------------------------------------
    def run(self, start: int) -> None:
        job = self.job
        inputs = job["inputs"]
        limits = job["limits"]
        check_size = job["check_size"]
        max_value_chars = limits["max_output_bytes"]
        seed = job["seed"]
        namespace = self.namespace
        for i in range(start, len(inputs)):
            self._install_streams(limits["max_output_bytes"])
            if i > start:
                try:
                    namespace = self.fresh_namespace(len(inputs) - i)
                except BaseException as exc:  # the top level failed this time (nondeterministic code)
                    self.send(exception_result(exc, status="output_limit" if isinstance(exc, OutputLimitExceeded) else None))
                    return
            fn = namespace.get(job["entry"])
            result = self._call_one(fn, inputs[i], seed, check_size, max_value_chars)
            self.guard.restore()
            self.send(result)
            if result["status"] not in NON_FATAL_STATUSES:
                return  # the server starts a fresh child for what remains, if asked to
            if i + 1 < len(inputs) and self.guard.changed():
                self.send({"fresh": True})  # the call changed shared state: the rest runs in a new child
                return

    def _call_one(self, fn: Callable[..., Any], input_json: str, seed: int, check_size: bool, max_chars: int) -> dict[str, Any]:
        try:
            args = _loads(input_json)
        except ValueError as exc:
            return {"status": "invalid_value", "error_type": "ValueError", "error_message": f"input is not JSON: {exc}"}
        _seed(seed)
        t0 = time.perf_counter()
        try:
            if not callable(fn):
                raise NameError(f"name '{self.job['entry']}' is not defined (or not callable)")
            value = fn(**args) if isinstance(args, dict) else fn(args)
        except OutputLimitExceeded:
            return {"status": "output_limit", "error_message": "printed more than the output cap",
                    "duration_s": time.perf_counter() - t0}
        except BaseException as exc:  # SystemExit and KeyboardInterrupt are the code's exceptions too
            return exception_result(exc, time.perf_counter() - t0)
        duration = time.perf_counter() - t0
        return self._encode_value(value, duration, check_size, max_chars)

    @staticmethod
    def _encode_value(value: Any, duration: float, check_size: bool, max_chars: int) -> dict[str, Any]:
        try:
            text = _dumps(value, allow_nan=True)
        except MemoryError as exc:
            return exception_result(exc, duration)
        except BaseException as exc:  # TypeError, ValueError (circular), or a hostile __iter__
            return {"status": "invalid_value", "error_type": type(exc).__name__,
                    "error_message": _short(f"result is not JSON-serializable: {exc}", MAX_MESSAGE_CHARS),
                    "duration_s": duration}
        if len(text) > max_chars:
            return {"status": "invalid_value", "error_message": f"result JSON is {len(text)} characters",
                    "duration_s": duration}
        if check_size:
            try:
                reason = size_violation(value)
            except BaseException as exc:  # noqa: BLE001 - hostile containers
                reason = f"size check failed: {type(exc).__name__}"
            if reason:
                return {"status": "invalid_value", "error_type": "SizeLimit",
                        "error_message": f"result too large: {reason}", "duration_s": duration}
        return {"status": "ok", "value_json": text, "duration_s": duration}

    # ---- sample ---------------------------------------------------------
    def sample(self) -> None:
        job = self.job
        gen = self.namespace[job["generator"]]
        limits = job["limits"]
        per_call = float(job["per_call_timeout_s"])
        budget_end = time.monotonic() + float(limits["timeout_s"])
        max_attempts = int(job["max_attempts"])
        max_pairs = int(job["max_pairs"])
        rejected: dict[str, int] = {}
        seen: set[str] = set()
        pairs = 0
        attempts = 0
        failures = 0
        last_error: dict[str, Any] | None = None

        def reject(reason: str) -> None:
            rejected[reason] = rejected.get(reason, 0) + 1

        def on_alarm(signum: int, frame: Any) -> None:
            raise CallTimeout()

        signal.signal(signal.SIGALRM, on_alarm)
        _seed(job["seed"])
        stopped_by_budget = False
        while attempts < max_attempts and pairs < max_pairs:
            if attempts and self.guard.changed():
                break  # later calls would not start from the loaded state: stop with what is sound
            if time.monotonic() >= budget_end:
                stopped_by_budget = True
                break
            attempts += 1
            self.send({"tick": attempts})
            self.guard.register(self.module)  # the generator's module, not the last call's
            self._install_streams(limits["max_output_bytes"])
            signal.setitimer(signal.ITIMER_REAL, per_call)
            try:
                inp = gen()
            except CallTimeout:
                reject("generator_timeout")
                failures += 1
                continue
            except OutputLimitExceeded:
                reject("generator_output_limit")
                failures += 1
                continue
            except BaseException as exc:
                signal.setitimer(signal.ITIMER_REAL, 0)
                reject("generator_exception")
                failures += 1
                last_error = exception_result(exc)
                continue
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            if not isinstance(inp, dict):
                reject("input_not_dict")
                continue
            try:
                input_json = _dumps(inp, allow_nan=True)
            except BaseException:  # noqa: BLE001
                reject("input_not_json")
                continue
            if input_json in seen:
                reject("duplicate")
                continue
            seen.add(input_json)
            if size_violation(inp) is not None:
                reject("input_too_large")
                continue
            if not is_finite(inp):
                reject("input_not_finite")
                continue
            state = random.getstate()
            np_random = sys.modules.get("numpy.random")
            np_state = np_random.get_state() if np_random is not None else None
            signal.setitimer(signal.ITIMER_REAL, per_call)
            try:
                fn = self.fresh_namespace(max_attempts - attempts)[job["entry"]]
                _seed(job["seed"])
                value = fn(**_loads(input_json))
            except CallTimeout:
                reject("entry_timeout")
                failures += 1
                continue
            except OutputLimitExceeded:
                reject("entry_output_limit")
                failures += 1
                continue
            except BaseException as exc:
                signal.setitimer(signal.ITIMER_REAL, 0)
                reject("entry_exception")
                failures += 1
                last_error = exception_result(exc)
                continue
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                random.setstate(state)
                if np_state is not None:
                    np_random.set_state(np_state)
                self.guard.restore()
            if value is None:
                reject("output_none")
                continue
            try:
                output_json = _dumps(value, allow_nan=True)
            except BaseException:  # noqa: BLE001
                reject("output_not_json")
                continue
            if size_violation(value) is not None:
                reject("output_too_large")
                continue
            if not is_finite(value):
                reject("output_not_finite")
                continue
            pairs += 1
            self.send({"pair": [input_json, output_json]})
        status = "ok"
        summary: dict[str, Any] = {"done": True, "attempts": attempts, "rejected": rejected}
        if attempts and failures == attempts and pairs == 0:
            status = "exception"
        elif stopped_by_budget:
            status = "timeout"
            summary["error_message"] = f"sampling budget exhausted after {attempts} attempts"
        summary["status"] = status
        if last_error is not None and status == "exception":
            summary["error_type"] = last_error.get("error_type")
            summary["error_message"] = last_error.get("error_message")
        self.send(summary)


WARMUP_CODE = "def main_solution(a, b):\n    return {'sum': a + b, 'items': [a, b]}\n"
WARMUP_ROUNDS = 64


def warm_up() -> None:
    """Run the child's code paths in the server a few times before any fork:
    3.11 specializes bytecode in place, and writes done once in the server are
    not copy-on-write faults in every child."""
    r, w = os.pipe()
    try:
        job = {"kind": "run", "code": WARMUP_CODE, "entry": "main_solution", "inputs": ['{"a": 1, "b": 2}'] * 2,
               "limits": {"max_output_bytes": 1 << 20}, "check_size": True, "seed": 0, "require": ["main_solution"]}
        saved = sys.stdout, sys.stderr
        try:
            for _ in range(WARMUP_ROUNDS):
                child = Child(job, w)
                if child.load():
                    child.run(0)
                while True:
                    os.set_blocking(r, False)
                    try:
                        if not os.read(r, 1 << 16):
                            break
                    except BlockingIOError:
                        break
        finally:
            sys.stdout, sys.stderr = saved
            sys.modules.pop(MODULE_NAME, None)  # the server keeps no code module for its children
    finally:
        os.close(r)
        os.close(w)


def compile_guarded(code: Any, max_chars: int) -> Any:
    """The code compiled as :meth:`Child.load` would (same flags, same file name), for
    the fork server: None unless that is plainly harmless and silent, i.e. for source
    longer than ``max_chars`` (the compiler's memory grows with it), and whenever the
    compiler fails (syntax error, nesting too deep, out of memory) or warns. The child
    then compiles the code itself, under its limits, with its usual errors and warnings."""
    if not isinstance(code, str) or len(code) > max_chars:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            return compile(code, CODE_FILENAME, "exec")
    except Exception:  # noqa: BLE001 - any failure: the child compiles and reports it
        return None


def child_main(job: dict[str, Any], chan: int, start: int, compiled: Any = None) -> None:
    """Entry point in the forked child; never returns."""
    code = 0
    try:
        child = Child(job, chan)
        if child.load(compiled):
            if job["kind"] == "run":
                child.run(start)
            else:
                child.sample()
    except MemoryError:
        code = EXIT_MEMORY
    except BaseException:  # noqa: BLE001 - the child must never fall back into server code
        code = EXIT_INTERNAL
    os._exit(code)
