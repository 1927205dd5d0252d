"""A local production-like stack on loopback, up and down in one command.

    infra/stack.sh up      start what is missing, print the settings to export
    infra/stack.sh env     print them again (eval "$(infra/stack.sh env)")
    infra/stack.sh status  one line per service
    infra/stack.sh down    stop what `up` started

What ``up`` brings up, every service bound to 127.0.0.1:

- an S3 server (moto's server mode; in-memory: its objects go away with it) and
  a bucket for the store and for Prefect's persisted results;
- PostgreSQL for lineage: the server already running on the port is reused (a
  ``codeio`` database is created when absent and kept by ``down``); when none
  answers, a private cluster is initialized under the state directory and run
  as the postgres user;
- a Prefect server (its own SQLite database under the state directory) with a
  saved ``remote-file-system`` block on the bucket for persisted task results;
- a Dask scheduler with its dashboard and ``--workers`` worker processes, which
  get the same settings as the flow (store, credentials, Prefect API).

Every process is started in its own session; its pid, command and log are
recorded in ``stack.json`` under the state directory (``$CODEIO_STACK_DIR``,
default ``<repo>/.codeio/stack``), and ``down`` stops exactly those pids after
checking that each still runs the recorded command.

Ports and names come from ``CODEIO_STACK_*`` variables (see :data:`DEFAULTS`),
so a test can run a private stack next to a developer's.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
DEFAULTS = {
    "CODEIO_STACK_DIR": str(ROOT / ".codeio" / "stack"),
    "CODEIO_STACK_S3_PORT": "9000",
    "CODEIO_STACK_PREFECT_PORT": "4200",
    "CODEIO_STACK_DASK_PORT": "8786",
    "CODEIO_STACK_DASHBOARD_PORT": "8787",
    "CODEIO_STACK_PG_PORT": "5432",
    "CODEIO_STACK_WORKERS": "2",
    "CODEIO_STACK_BUCKET": "codeio",
    "CODEIO_STACK_DATABASE": "codeio",
    "CODEIO_STACK_REGION": "us-east-1",
}
RESULTS_BLOCK = "codeio-results"
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 15.0
POLL_S = 0.2
STATE_FILE = "stack.json"
PG_USER = "postgres"


class StackError(RuntimeError):
    """A service did not come up (the message says which and where its log is)."""


@dataclass
class Service:
    name: str
    pid: int
    argv: list[str]
    log: str
    kind: str = "process"  # or "postgres-private" (stopped with pg_ctl)


@dataclass
class Stack:
    state_dir: str
    s3_port: int
    prefect_port: int
    dask_port: int
    dashboard_port: int
    pg_port: int
    workers: int
    bucket: str
    database: str
    region: str
    access_key: str
    secret_key: str
    postgres: str = "reused"  # or "private"
    services: list[Service] = field(default_factory=list)

    # -- what clients use ------------------------------------------------------
    @property
    def s3_endpoint(self) -> str:
        return f"http://{HOST}:{self.s3_port}"

    @property
    def prefect_api(self) -> str:
        return f"http://{HOST}:{self.prefect_port}/api"

    @property
    def dask_address(self) -> str:
        return f"tcp://{HOST}:{self.dask_port}"

    @property
    def dashboard(self) -> str:
        return f"http://{HOST}:{self.dashboard_port}"

    @property
    def database_url(self) -> str:
        return f"postgresql+psycopg://{PG_USER}@{HOST}:{self.pg_port}/{self.database}"

    def settings(self) -> dict[str, str]:
        """The environment of the flow process and of every worker."""
        return {
            "CODEIO_STORE": f"s3://{self.bucket}/store",
            "CODEIO_S3_ENDPOINT_URL": self.s3_endpoint,
            "CODEIO_S3_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "CODEIO_DATABASE_URL": self.database_url,
            "CODEIO_DASK_ADDRESS": self.dask_address,
            "PREFECT_API_URL": self.prefect_api,
            "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
            "PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK": f"remote-file-system/{RESULTS_BLOCK}",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }

    def exports(self) -> str:
        return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in self.settings().items())

    # -- persistence -------------------------------------------------------------
    @property
    def path(self) -> Path:
        return Path(self.state_dir) / STATE_FILE

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        tmp.chmod(0o600)  # it holds the S3 credentials
        tmp.replace(self.path)

    @classmethod
    def load(cls, state_dir: Path) -> "Stack | None":
        path = state_dir / STATE_FILE
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        data["services"] = [Service(**item) for item in data.get("services", [])]
        return cls(**data)


# --------------------------------------------------------------------------- helpers


def venv_bin(name: str) -> str:
    """A console script of this interpreter's environment, else from PATH."""
    local = Path(sys.executable).with_name(name)
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise StackError(f"{name} is not installed")
    return found


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def wait_for(what: str, check, service: Service | None = None, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if service is not None and not pid_alive(service.pid):
            raise StackError(f"{what} exited during start-up; see {service.log}")
        if time.monotonic() > deadline:
            where = f"; see {service.log}" if service else ""
            raise StackError(f"{what} did not come up within {timeout:.0f} s{where}")
        time.sleep(POLL_S)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie has exited: reap it when it is our child, else report it dead
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def runs_command(service: Service) -> bool:
    """The pid still runs what we started (pids are reused after a reboot or a crash)."""
    try:
        argv = Path(f"/proc/{service.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    wanted = os.path.basename(service.argv[0])
    # a console script shows up as "python SCRIPT ...": look at the first few words
    return any(os.path.basename(part.decode(errors="replace")) == wanted for part in argv[:3])


def spawn(stack: Stack, name: str, argv: list[str], env: dict[str, str], cwd: Path | None = None) -> Service:
    log = Path(stack.state_dir) / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                cwd=str(cwd or stack.state_dir), start_new_session=True)
    service = Service(name=name, pid=proc.pid, argv=argv, log=str(log))
    stack.services.append(service)
    stack.save()
    return service


def base_env(stack: Stack) -> dict[str, str]:
    env = dict(os.environ)
    env.update(stack.settings())
    env.setdefault("DO_NOT_TRACK", "1")
    return env


# --------------------------------------------------------------------------- services


def start_s3(stack: Stack) -> None:
    service = spawn(stack, "s3", [venv_bin("moto_server"), "-H", HOST, "-p", str(stack.s3_port)], base_env(stack))
    wait_for("the S3 server", lambda: http_ok(f"{stack.s3_endpoint}/moto-api/"), service)
    import boto3

    client = boto3.client("s3", endpoint_url=stack.s3_endpoint, region_name=stack.region,
                          aws_access_key_id=stack.access_key, aws_secret_access_key=stack.secret_key)
    client.create_bucket(Bucket=stack.bucket)


def pg_bin(name: str) -> str:
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise StackError(f"PostgreSQL's {name} is not installed")
    return found


def as_postgres(argv: list[str]) -> list[str]:
    """initdb and pg_ctl refuse to run as root."""
    if os.geteuid() != 0:
        return argv
    return [shutil.which("runuser") or "runuser", "-u", PG_USER, "--", *argv]


def start_private_postgres(stack: Stack) -> None:
    data = Path(stack.state_dir) / "postgres"
    sockets = Path(stack.state_dir) / "postgres-socket"
    log = Path(stack.state_dir) / "logs" / "postgres.log"
    for folder in (data.parent, sockets, log.parent):
        folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        import pwd

        owner = pwd.getpwnam(PG_USER)
        for path in (sockets, log.parent):
            os.chown(path, owner.pw_uid, owner.pw_gid)
        Path(stack.state_dir).chmod(0o755)
    if not (data / "PG_VERSION").exists():
        data.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            os.chown(data, owner.pw_uid, owner.pw_gid)
        subprocess.run(as_postgres([pg_bin("initdb"), "-D", str(data), "-U", PG_USER, "--auth=trust"]),
                       check=True, stdout=subprocess.DEVNULL)
    options = f"-p {stack.pg_port} -k {sockets} -c listen_addresses={HOST} -c fsync=off"
    subprocess.run(as_postgres([pg_bin("pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "start"]),
                   check=True, stdout=subprocess.DEVNULL)
    pid = int((data / "postmaster.pid").read_text().split()[0])
    stack.services.append(Service("postgres", pid, [pg_bin("postgres"), "-D", str(data)], str(log),
                                  kind="postgres-private"))
    stack.postgres = "private"
    stack.save()


def ensure_database(stack: Stack) -> None:
    import psycopg

    admin = f"host={HOST} port={stack.pg_port} user={PG_USER} dbname=postgres connect_timeout=5"
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (stack.database,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{stack.database}"')


def start_postgres(stack: Stack) -> None:
    if not port_open(stack.pg_port):
        start_private_postgres(stack)
    ensure_database(stack)


def start_prefect(stack: Stack) -> None:
    env = base_env(stack)
    env["PREFECT_HOME"] = str(Path(stack.state_dir) / "prefect")
    env.pop("PREFECT_API_URL")  # the server itself is not a client of another API
    for name in ("PREFECT_RESULTS_PERSIST_BY_DEFAULT", "PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK"):
        env.pop(name)
    service = spawn(stack, "prefect", [venv_bin("prefect"), "server", "start", "--host", HOST,
                                       "--port", str(stack.prefect_port)], env)
    wait_for("the Prefect server", lambda: http_ok(f"{stack.prefect_api}/health"), service)
    save_results_block(stack)


def save_results_block(stack: Stack) -> None:
    """Prefect's persisted results go to the bucket. The block names the endpoint
    only: credentials come from each process' AWS_* environment, so none is
    stored in Prefect's database."""
    sys.path.insert(0, str(ROOT))
    from storage.store import s3_storage_options

    script = (
        "import json, sys\n"
        "from prefect.filesystems import RemoteFileSystem\n"
        "basepath, settings, name = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]\n"
        "RemoteFileSystem(basepath=basepath, settings=settings).save(name, overwrite=True)\n"
    )
    options = s3_storage_options(stack.s3_endpoint, stack.region, None, None)
    env = base_env(stack)
    for name in ("PREFECT_RESULTS_PERSIST_BY_DEFAULT", "PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK"):
        env.pop(name)
    subprocess.run([sys.executable, "-c", script, f"s3://{stack.bucket}/prefect-results", json.dumps(options),
                    RESULTS_BLOCK], env=env, check=True, stdout=subprocess.DEVNULL, timeout=START_TIMEOUT_S)


def start_dask(stack: Stack) -> None:
    env = base_env(stack)
    env.setdefault("DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED", "false")  # no 10 ms stack sampler in workers
    scratch = Path(stack.state_dir) / "dask-scratch"
    env["DASK_TEMPORARY_DIRECTORY"] = str(scratch)
    scheduler = spawn(stack, "dask-scheduler", [venv_bin("dask"), "scheduler", "--host", HOST, "--port",
                                                str(stack.dask_port), "--dashboard-address",
                                                f"{HOST}:{stack.dashboard_port}"], env)
    wait_for("the Dask scheduler", lambda: port_open(stack.dask_port), scheduler)
    workers = spawn(stack, "dask-workers", [venv_bin("dask"), "worker", stack.dask_address, "--nworkers",
                                            str(stack.workers), "--nthreads", "1", "--memory-limit", "2GiB",
                                            "--host", HOST, "--local-directory", str(scratch)], env)
    wait_for(f"{stack.workers} Dask workers", lambda: dask_workers(stack) >= stack.workers, workers)
    wait_for("the Dask dashboard", lambda: http_ok(f"{stack.dashboard}/status"), scheduler)


def dask_workers(stack: Stack) -> int:
    """Workers the scheduler knows, from the dashboard's JSON API (no client needed)."""
    try:
        with urllib.request.urlopen(f"{stack.dashboard}/json/counts.json", timeout=2) as response:
            return int(json.load(response).get("workers", 0))
    except (urllib.error.URLError, OSError, ValueError):
        return 0


# --------------------------------------------------------------------------- commands


def new_stack() -> Stack:
    value = {name: os.environ.get(name, default) for name, default in DEFAULTS.items()}
    return Stack(
        state_dir=str(Path(value["CODEIO_STACK_DIR"]).resolve()),
        s3_port=int(value["CODEIO_STACK_S3_PORT"]), prefect_port=int(value["CODEIO_STACK_PREFECT_PORT"]),
        dask_port=int(value["CODEIO_STACK_DASK_PORT"]), dashboard_port=int(value["CODEIO_STACK_DASHBOARD_PORT"]),
        pg_port=int(value["CODEIO_STACK_PG_PORT"]), workers=int(value["CODEIO_STACK_WORKERS"]),
        bucket=value["CODEIO_STACK_BUCKET"], database=value["CODEIO_STACK_DATABASE"],
        region=value["CODEIO_STACK_REGION"], access_key=f"codeio-{secrets.token_hex(6)}",
        secret_key=secrets.token_urlsafe(24),
    )


def state_dir() -> Path:
    return Path(os.environ.get("CODEIO_STACK_DIR", DEFAULTS["CODEIO_STACK_DIR"])).resolve()


def running(stack: Stack) -> list[Service]:
    return [s for s in stack.services if pid_alive(s.pid) and runs_command(s)]


def up() -> int:
    existing = Stack.load(state_dir())
    if existing is not None:
        if len(running(existing)) == len(existing.services):
            print(existing.exports())
            return 0
        stop(existing)  # half a stack from a crash: start afresh
    stack = new_stack()
    busy = [f"{name}={port}" for name, port in (("s3", stack.s3_port), ("prefect", stack.prefect_port),
                                                ("dask", stack.dask_port), ("dashboard", stack.dashboard_port))
            if port_open(port)]
    if busy:
        print(f"ports already in use on {HOST}: {', '.join(busy)} (set CODEIO_STACK_*_PORT)", file=sys.stderr)
        return 1
    stack.save()
    try:
        start_s3(stack)
        start_postgres(stack)
        start_prefect(stack)
        start_dask(stack)
    except (StackError, OSError, subprocess.SubprocessError) as error:
        print(f"stack: {error}", file=sys.stderr)
        stop(stack)
        return 1
    except BaseException:  # anything unexpected (or Ctrl-C): leave nothing half-started
        stop(stack)
        raise
    print(stack.exports())
    return 0


def stop_service(service: Service) -> None:
    if not (pid_alive(service.pid) and runs_command(service)):
        return
    if service.kind == "postgres-private":
        data = service.argv[-1]
        subprocess.run(as_postgres([pg_bin("pg_ctl"), "-D", data, "-m", "fast", "-w", "stop"]),
                       check=False, stdout=subprocess.DEVNULL)
        return
    try:
        os.killpg(service.pid, signal.SIGTERM)  # its own session: the group holds its children
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while pid_alive(service.pid) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    try:
        os.killpg(service.pid, signal.SIGKILL)  # stragglers of the group, if any
    except ProcessLookupError:
        pass


def stop(stack: Stack) -> None:
    for service in reversed(stack.services):
        stop_service(service)
    stack.path.unlink(missing_ok=True)


def down() -> int:
    stack = Stack.load(state_dir())
    if stack is None:
        print("stack: nothing to stop", file=sys.stderr)
        return 0
    stop(stack)
    return 0


def env() -> int:
    stack = Stack.load(state_dir())
    if stack is None:
        print("stack: not up (run `infra/stack.sh up`)", file=sys.stderr)
        return 1
    print(stack.exports())
    return 0


def status() -> int:
    stack = Stack.load(state_dir())
    if stack is None:
        print("stack: not up")
        return 1
    alive = {s.pid for s in running(stack)}
    for service in stack.services:
        print(f"{service.name:15s} pid {service.pid:<8d} {'running' if service.pid in alive else 'STOPPED'}  "
              f"log {service.log}")
    print(f"postgres: {stack.postgres} at {HOST}:{stack.pg_port}, database {stack.database}")
    print(f"dashboard: {stack.dashboard}/status   prefect UI: http://{HOST}:{stack.prefect_port}/")
    return 0 if len(alive) == len(stack.services) else 1


COMMANDS = {"up": up, "down": down, "env": env, "status": status}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="infra/stack.sh", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=sorted(COMMANDS))
    return COMMANDS[parser.parse_args(argv).command]()


if __name__ == "__main__":
    sys.exit(main())
