"""conda.yaml, the environment `mlflow run .` creates: pyproject.toml's dependencies exactly, a Python the project
supports, and the project imported from its own folder."""

import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]


def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def conda_dependencies() -> list:
    return yaml.safe_load((REPO / "conda.yaml").read_text())["dependencies"]


def conda_pip() -> list[str]:
    lists = [entry["pip"] for entry in conda_dependencies() if isinstance(entry, dict) and "pip" in entry]
    assert len(lists) == 1, "conda.yaml needs one pip list"
    return lists[0]


def by_name(requirements: list[str]) -> dict[str, tuple]:
    """{normalized name: (name, extras, version bounds, marker)}; an entry pip reads but PEP 508 does not (`-e .`)
    fails here."""
    parsed = [Requirement(text) for text in requirements]
    found = {
        canonicalize_name(r.name): (
            canonicalize_name(r.name),
            tuple(sorted(r.extras)),
            str(r.specifier),
            str(r.marker or ""),
        )
        for r in parsed
    }
    assert len(found) == len(parsed), f"a package listed twice in {requirements}"
    return found


def test_conda_env_has_exactly_the_project_dependencies():
    wanted, listed = by_name(project()["dependencies"]), by_name(conda_pip())
    assert not sorted(set(wanted) - set(listed)), f"conda.yaml lacks {sorted(set(wanted) - set(listed))}"
    differing = {
        name: {"conda.yaml": listed[name], "pyproject": wanted[name]} for name in wanted if listed[name] != wanted[name]
    }
    assert not differing, f"extras or version bounds differ: {differing}"
    assert not sorted(set(listed) - set(wanted)), f"not in pyproject: {sorted(set(listed) - set(wanted))}"


def test_conda_python_is_one_the_project_supports():
    pins = [entry for entry in conda_dependencies() if isinstance(entry, str) and entry.split("=")[0] == "python"]
    assert len(pins) == 1 and "pip" in conda_dependencies()
    assert SpecifierSet(project()["requires-python"]).contains(pins[0].split("=", 1)[1])


def test_mlflow_run_imports_the_project_from_its_folder():
    """The project is not installed in the env (MLflow reuses a conda env by a hash of conda.yaml alone, so an
    `-e .` would import whichever folder created it first): each entry point runs `python -m`, which puts MLflow's
    working directory for the command, the project folder, first on sys.path."""
    mlproject = yaml.safe_load((REPO / "MLproject").read_text())
    assert mlproject["conda_env"] == "conda.yaml"
    for name, entry in mlproject["entry_points"].items():
        assert entry["command"].startswith("python -m skinml."), name
