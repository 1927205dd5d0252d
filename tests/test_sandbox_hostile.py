"""The hostile corpus (tests/hostile/*.py) against the real sandbox: each is
rejected or contained with the right status, good functions in the same run
still pass, and no file, connection, secret or process escapes.

Runs as root here, and again as an unprivileged user through
tests/test_sandbox_unprivileged.py."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from codeio.execution import ExecStatus, Limits, RunRequest
from codeio.sandbox import SandboxConfig, create_executor
from codeio.sandbox.pool import IsolationUnavailable, missing_guarantees

HOSTILE = Path(__file__).resolve().parent / "hostile"
SECRET = "sk-codeio-test-" + uuid.uuid4().hex
SECRET_VARS = ("CODEIO_LLM_API_KEY", "OPENAI_API_KEY", "AWS_SECRET_ACCESS_KEY")
FAST = Limits(timeout_s=1.0)
S = ExecStatus



def code(name: str) -> str:
    return (HOSTILE / name).read_text()


@pytest.fixture(scope="module")
def executor():
    saved = {k: os.environ.get(k) for k in SECRET_VARS}
    os.environ.update({k: SECRET for k in SECRET_VARS})
    ex = create_executor(SandboxConfig(workers=2))
    try:
        yield ex
    finally:
        ex.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


CASES = [
    # file, input, limits, expected status of every call
    ("infinite_loop.py", {"x": 1}, FAST, S.TIMEOUT),
    ("ignore_signals.py", {"x": 1}, FAST, S.TIMEOUT),
    ("big_alloc.py", {"x": 1}, Limits(memory_mb=1024), S.MEMORY),
    ("fork_bomb.py", {"x": 1}, FAST, S.EXCEPTION),
    ("os_exit.py", {"x": 1}, FAST, S.KILLED),
    ("sys_exit.py", {"x": 1}, FAST, S.EXCEPTION),
    ("segfault.py", {"x": 1}, FAST, S.KILLED),
    ("deep_recursion.py", {"x": 1}, Limits(timeout_s=5.0), S.KILLED),
    ("print_flood.py", {"x": 1}, FAST, S.OUTPUT_LIMIT),
    ("fd_flood.py", {"x": 1}, FAST, S.OUTPUT_LIMIT),
    # as root the child's own uid may not signal the server; unprivileged, the server is the init of the
    # child's PID namespace, which the kernel does not let it kill (the call returns): either way it survives
    ("kill_parent.py", {"x": 1}, FAST, S.EXCEPTION if os.geteuid() == 0 else S.OK),
    ("stdin_read.py", {"x": 1}, FAST, S.OK),
    ("endless_thread.py", {"x": 1}, FAST, S.EXCEPTION),
    ("corrupt_channel.py", {"x": 1}, FAST, S.SANDBOX_ERROR),
    ("good.py", {"x": 21}, FAST, S.OK),
]


def test_hostile_corpus_gets_the_right_status_and_good_code_still_passes(executor):
    pids_before = set(executor.server_pids())

    def run_case(case):
        name, inp, limits, _ = case
        text = json.dumps(inp)
        return executor.run(RunRequest(code=code(name), inputs_json=(text, text), limits=limits, stop_on_fatal=False))

    def run_good(i):
        return executor.run(RunRequest(code=code("good.py"), inputs_json=(json.dumps({"x": i}),)))[0]

    with ThreadPoolExecutor(4) as pool:
        hostile = pool.map(run_case, CASES)
        good = pool.map(run_good, range(30))
        hostile, good = list(hostile), list(good)
    for case, results in zip(CASES, hostile):
        assert [r.status for r in results] == [case[3]] * 2, (case[0], [r.describe() for r in results])
    assert [r.value_json for r in good] == [str(2 * i) for i in range(30)]
    by_name = {case[0]: results for case, results in zip(CASES, hostile)}
    assert by_name["good.py"][0].value_json == "42"
    assert by_name["sys_exit.py"][0].error_type == "SystemExit"
    if os.geteuid() == 0:
        assert by_name["kill_parent.py"][0].error_type == "PermissionError"
    assert by_name["stdin_read.py"][0].value_json == '""'
    assert "SIGSEGV" in by_name["segfault.py"][0].error_message
    # Nobody killed a server: the same ones are still serving.
    assert set(executor.server_pids()) == pids_before


def test_secrets_never_reach_the_sandbox(executor):
    res = executor.run(RunRequest(code=code("env_secret.py"), inputs_json=('{"x": 1}',), check_size=False))[0]
    assert res.status is S.OK
    assert SECRET not in res.value_json
    assert json.loads(res.value_json) == {}  # no secret-looking variable, no readable ancestor environment
    for pid in executor.server_pids():
        assert SECRET.encode() not in Path(f"/proc/{pid}/environ").read_bytes()


def test_secret_in_the_owners_launch_environment_stays_out(tmp_path):
    """A secret set before the pipeline started (so it is in /proc/<pid>/environ
    of every ancestor) must not be readable from the sandbox either."""
    script = tmp_path / "owner.py"
    script.write_text(
        "import sys\n"
        "from codeio.execution import RunRequest\n"
        "from codeio.sandbox import SandboxConfig, create_executor\n"
        "with create_executor(SandboxConfig(workers=1, preload=('math',))) as ex:\n"
        f"    code = open({str(HOSTILE / 'env_secret.py')!r}).read()\n"
        "    res = ex.run(RunRequest(code=code, inputs_json=('{\"x\": 1}',), check_size=False))[0]\n"
        "    print(res.status.value, res.value_json)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(HOSTILE.parents[1]), **{k: SECRET for k in SECRET_VARS})
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok ")
    assert SECRET not in out.stdout


def test_network_is_cut(executor):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        res = executor.run(RunRequest(code=code("tcp_connect.py"), inputs_json=(json.dumps({"port": port}),)))[0]
        assert res.status is S.EXCEPTION and res.error_type in ("OSError", "PermissionError", "ConnectionRefusedError", "TimeoutError")
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()


def test_raw_socket_calls_reach_no_listener(executor):
    """ctypes socket()/connect(): past any Python-level guard, to a loopback listener."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    try:
        res = executor.run(RunRequest(code=code("raw_tcp_connect.py"),
                                      inputs_json=(json.dumps({"port": listener.getsockname()[1]}),)))[0]
        assert res.status is S.OK and res.value_json != '"connected"', res.describe()
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()


@pytest.fixture
def outside(tmp_path_factory):
    """A world-readable folder outside the sandbox, as another service would have one."""
    folder = Path(tempfile.mkdtemp(prefix="codeio-outside-", dir="/var/tmp" if os.path.isdir("/var/tmp") else None))
    folder.chmod(0o755)
    yield folder
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()


def test_no_connection_to_a_unix_socket_outside(executor, outside):
    path = outside / "service.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    path.chmod(0o777)
    listener.listen(8)
    listener.setblocking(False)
    try:
        res = executor.run(RunRequest(code=code("unix_connect.py"), inputs_json=(json.dumps({"path": str(path)}),)))[0]
        assert res.status is S.OK and json.loads(res.value_json) == [], res.describe()
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()


def test_no_host_file_is_readable(executor, outside):
    secret = outside / "notes.txt"
    secret.write_text("a world-readable file of someone else")
    secret.chmod(0o644)
    checkout = Path(__file__).resolve()
    targets = [str(secret), str(checkout), str(checkout.parents[1] / "pyproject.toml"), "/etc/hostname",
               "/etc/passwd", f"/proc/{os.getpid()}/environ", "/proc/1/environ"]
    res = executor.run(RunRequest(code=code("read_outside.py"), inputs_json=(json.dumps({"paths": targets}),),
                                  check_size=False))[0]
    assert res.status is S.OK and json.loads(res.value_json) == {}, res.value_json


def test_no_file_is_written_outside_the_work_dir(executor, tmp_path):
    tag = uuid.uuid4().hex
    targets = [str(tmp_path / f"escape-{tag}"), f"/tmp/escape-{tag}", f"/var/tmp/escape-{tag}",
               f"/dev/shm/escape-{tag}", str(Path(__file__).resolve().parents[1] / f"escape-{tag}"),
               f"/root/escape-{tag}"]
    res = executor.run(RunRequest(code=code("write_outside.py"), inputs_json=(json.dumps({"paths": targets}),),
                                  check_size=False))[0]
    assert res.status is S.OK and json.loads(res.value_json) == []
    for target in targets:
        assert not os.path.exists(target), target


def test_escaped_processes_are_reaped():
    ex = create_executor(SandboxConfig(workers=1, preload=("math",)))
    try:
        uids = set(ex.sandbox_uids())
        allow = Limits(timeout_s=1.0, max_processes=3)
        res = ex.run(RunRequest(code=code("setsid_escape.py"), inputs_json=('{"x": 1}',), limits=allow))[0]
        assert res.status is S.OK
        escapee = int(res.value_json)
        bomb = ex.run(RunRequest(code=code("fork_bomb.py"), inputs_json=('{"x": 1}',), limits=allow))[0]
        assert bomb.status is S.EXCEPTION
        thread = ex.run(RunRequest(code=code("endless_thread.py"), inputs_json=('{"x": 1}',), limits=allow))[0]
        assert thread.status is S.OK and thread.value_json == "2"
        # The server reaps a batch's leftovers before it takes the next job.
        ex.run(RunRequest(code=code("good.py"), inputs_json=('{"x": 1}',)))
        left = _descendants(ex.server_pids())
        assert escapee not in [_inner_pid(pid) for pid in left]  # its pid inside the server's PID namespace
        assert len(left) <= 3  # the server (init of its PID namespace), its next warm child, the last being reaped
        assert len(_processes_of(uids)) <= 2  # at most the next warm child and the last, being reaped
    finally:
        ex.close()
    assert _processes_of(uids) == []  # close() returns a uid only once nothing runs under it


def test_set_order_nondeterminism_is_caught_by_the_recheck(executor):
    inp = (json.dumps({"words": ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]}),)
    first = executor.run(RunRequest(code=code("set_order.py"), inputs_json=inp))[0]
    same = executor.run(RunRequest(code=code("set_order.py"), inputs_json=inp))[0]
    recheck = executor.run(RunRequest(code=code("set_order.py"), inputs_json=inp, recheck=True, seed=1))[0]
    assert first.ok and recheck.ok
    assert first.value_json == same.value_json
    assert first.value_json != recheck.value_json
    good = executor.run(RunRequest(code=code("good.py"), inputs_json=('{"x": 4}',), recheck=True, seed=1))[0]
    assert good.value_json == "8"


def _status(pid: int) -> dict[str, str]:
    try:
        with open(f"/proc/{pid}/status") as fh:
            return dict(line.rstrip("\n").split(":\t", 1) for line in fh if ":\t" in line)
    except OSError:
        return {}


def _descendants(roots: list[int]) -> list[int]:
    """Live processes below ``roots`` (escapees come back to the server, the init of its PID namespace)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _status(int(entry))
            if fields and not fields.get("State", "").startswith("Z"):
                parents[int(entry)] = int(fields.get("PPid", "0"))
    found, frontier = [], set(roots)
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier}
        found.extend(frontier)
    return found


def _inner_pid(pid: int) -> int:
    return int(_status(pid).get("NSpid", str(pid)).split()[-1])


def _process_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _processes_of(uids: set[int]) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as fh:
                for line in fh:
                    if line.startswith("Uid:"):
                        if int(line.split()[1]) in uids and _process_alive(int(entry)):
                            found.append(int(entry))
                        break
        except OSError:
            continue
    return found


def test_isolation_is_complete_here_and_a_missing_part_can_be_an_error():
    with create_executor(SandboxConfig(workers=1, preload=("math",))) as ex:
        info = ex.server_info()
        assert missing_guarantees(ex) == []
        assert all(info[k] for k in ("netns", "mountns", "pidns", "fs_view", "seccomp"))
        assert info["userns"] is (os.geteuid() != 0)
    with pytest.raises(IsolationUnavailable, match="isolation turned off"):
        create_executor(SandboxConfig(workers=1, preload=("math",), isolate_network=False, require_isolation=True))
