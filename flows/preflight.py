"""Checks of a run's inputs before any server or cluster starts: the sources, the
store URL, the lineage database, the prompt templates and the output path. Each problem is one line
that names what to fix; the commands print them all and exit 2."""

from __future__ import annotations

import os
from pathlib import Path

import fsspec
from sqlalchemy.exc import SQLAlchemyError

from codeio.prompting import PromptTemplates, TemplateError
from codeio.settings import Settings
from codeio.sources import SHARD_KINDS, SourceSpecError, parse_source_specs
from storage.lineage import LineageDB, scrub_secrets

LOCAL_PROTOCOLS = ("file", "local")


def check_inputs(sources: list[str] | tuple[str, ...], out: str | None, settings: Settings | None, *,
                 database: bool = True, sources_name: str = "--source") -> list[str]:
    """Every problem found, one line each (empty: the run may start). ``database``:
    also open (and migrate) the lineage database, as the run will; ``sources_name``:
    where the user wrote the sources. Without ``settings`` (they are invalid
    themselves) the store and the database are not checked."""
    problems = []
    try:
        problems += [f"{sources_name}: {problem}" for problem in _listing_problems(parse_source_specs(list(sources)))]
    except SourceSpecError as error:
        problems.append(f"{sources_name}: {error}")
    if out:
        problems += [f"--out {out!r}: {problem}" for problem in _location_problems(out, folder=False)]
    if settings is None:
        return problems
    problems += [f"store {settings.store!r} (--store, CODEIO_STORE): {problem}"
                 for problem in _location_problems(settings.store, folder=True)]
    try:  # a broken template override fails here, not as a worker's traceback later
        PromptTemplates.load(settings.prompt_dir)
    except TemplateError as error:
        problems.append(f"prompt templates (CODEIO_PROMPT_DIR): {error}")
    if database:
        problems += _database_problems(settings.database_url)
    return problems


def _listing_problems(specs) -> list[str]:
    """``git:`` sources that are no working tree and local ``corpus:`` paths that hold no
    shard file (listings only; remote corpora are listed by the run, with its credentials)."""
    from fsspec.implementations.local import LocalFileSystem

    from codeio.ingest.readers import _expand, git_files, is_remote  # noqa: PLC2701 - the run's own listing

    problems = []
    for spec in specs:
        try:
            if spec.kind == "git":
                git_files(spec.resolved)
            elif spec.kind in SHARD_KINDS and not is_remote(spec.path):
                _expand(LocalFileSystem(), str(Path(spec.path).expanduser()))
        except SourceSpecError as error:
            problems.append(str(error))
    return problems


def _location_problems(url: str, folder: bool) -> list[str]:
    """Whether a store folder (``folder``) or an output file can be written at ``url``."""
    protocol, path = fsspec.core.split_protocol(url)
    if protocol and protocol not in LOCAL_PROTOCOLS:
        try:
            fsspec.get_filesystem_class(protocol)
        except (ValueError, ImportError) as error:
            return [str(error).splitlines()[0]]
        return []
    target = Path(path).expanduser()
    if target.exists() and folder != target.is_dir():
        return ["is a file, not a folder" if folder else "is a folder, not a file"]
    ancestor = target if folder and target.exists() else target.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return [f"{ancestor} is a file, so the path cannot be created"]
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return [f"{ancestor} is not writable"]
    return []


def isolation_problem(settings: Settings) -> str | None:
    """With CODEIO_SANDBOX_REQUIRE_ISOLATION=true and shards running on this machine (no
    CODEIO_DASK_ADDRESS): start one sandbox server here, as the workers will, and say
    what the kernel refused (None: full isolation, or not required). Remote workers
    check their own when their pool starts."""
    if not settings.sandbox_require_isolation or settings.dask_address:
        return None
    from codeio.sandbox import SandboxConfig, create_executor
    from codeio.sandbox.pool import IsolationUnavailable

    try:
        create_executor(SandboxConfig(workers=1, preload=(), require_isolation=True)).close()
    except IsolationUnavailable as error:
        return str(error)
    return None


def _database_problems(url: str) -> list[str]:
    """Open the lineage database and bring its schema up to date, as a run does first."""
    shown = scrub_secrets(url)
    try:
        lineage = LineageDB(url)
    except (SQLAlchemyError, ValueError, OSError) as error:
        return [f"lineage database {shown!r} (CODEIO_DATABASE_URL): {_first_line(error)}"]
    try:
        lineage.upgrade()
    except (SQLAlchemyError, OSError) as error:
        return [f"lineage database {shown!r} (CODEIO_DATABASE_URL): {_first_line(error)}"]
    finally:
        lineage.close()
    return []


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return scrub_secrets(text[0]) if text else type(error).__name__
