"""Every third-party module our code imports comes from a declared dependency.

A module that only arrives as somebody else's dependency disappears (or changes
meaning) when that package changes its own requirements: the product packages
must import only what ``[project.dependencies]`` declares (with its extras),
tests, benchmarks and infra scripts only that plus the ``dev`` extra.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import ROOT

PRODUCT = ("codeio", "flows", "tasks", "storage")
TOOLING = ("tests", "benchmarks", "infra")
# not our code: corpus files and hostile functions are data that the sandbox runs
DATA_DIRS = (ROOT / "codeio" / "corpus", ROOT / "tests" / "hostile")


def _declared(requirements: list[str]) -> set[str]:
    """Distribution names a list of requirements brings in directly, the requirements
    of each requested extra included (``dask[distributed]`` declares distributed)."""
    names: set[str] = set()
    for text in requirements:
        requirement = Requirement(text)
        names.add(canonicalize_name(requirement.name))
        for extra in requirement.extras:
            for inner in metadata.requires(requirement.name) or []:
                inner_requirement = Requirement(inner)
                if inner_requirement.marker is not None and inner_requirement.marker.evaluate({"extra": extra}):
                    names.add(canonicalize_name(inner_requirement.name))
    return names


def _imports(folder: str) -> dict[str, set[str]]:
    """Top-level third-party modules imported under ``folder`` -> files importing them."""
    local = {path.stem for path in ROOT.glob("*/*.py")} | set(PRODUCT) | set(TOOLING)
    found: dict[str, set[str]] = {}
    for path in (ROOT / folder).rglob("*.py"):
        if any(path.is_relative_to(data) for data in DATA_DIRS) or ".venv" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top not in sys.stdlib_module_names and top not in local:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def _undeclared(folders: tuple[str, ...], declared: set[str]) -> dict[str, list[str]]:
    providers = metadata.packages_distributions()
    missing: dict[str, list[str]] = {}
    for folder in folders:
        for module, files in _imports(folder).items():
            dists = {canonicalize_name(d) for d in providers.get(module, [])}
            if not dists & declared:
                missing[f"{module} (from {sorted(dists) or 'nothing installed'})"] = sorted(files)
    return missing


def test_every_import_is_a_declared_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = _declared(project["dependencies"])
    dev = runtime | _declared(project["optional-dependencies"]["dev"])
    assert _undeclared(PRODUCT, runtime) == {}
    assert _undeclared(TOOLING, dev) == {}


def test_declared_dependencies_are_pinned():
    """The CI installs with ``-c constraints.txt``: each declared distribution has a pin."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pinned = {canonicalize_name(line.split("==")[0]) for line in (ROOT / "constraints.txt").read_text().splitlines()
              if "==" in line and not line.startswith("#")}
    declared = _declared(project["dependencies"]) | _declared(project["optional-dependencies"]["dev"])
    assert sorted(declared - pinned) == []
