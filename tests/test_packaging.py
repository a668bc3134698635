"""Packaging facts: declared ranges match the pins CI tests, typing marker, one version,
and a repository that points at nothing outside itself."""

from __future__ import annotations

import importlib.metadata
import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import captum_leg

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / ".ci" / "minimum-constraints.txt"

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _requirements() -> list:
    project = _project()
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra, items in project["optional-dependencies"].items():
        reqs += [Requirement(r) for r in items if not r.startswith("captum-leg[")]
    return reqs


def _pins() -> dict:
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def test_every_lower_bound_is_the_pinned_minimum_ci_installs():
    reqs, pins = _requirements(), _pins()
    assert reqs and pins
    for req in reqs:
        lower = [s.version for s in req.specifier if s.operator == ">="]
        assert len(lower) == 1, f"{req}: one lower bound (>=) expected"
        assert pins.get(req.name.lower()) == lower[0], f"{req} vs {CONSTRAINTS.name}"
    assert set(pins) == {r.name.lower() for r in reqs}, "constraints name a package pyproject does not"


def test_no_upper_bounds_without_a_reason():
    # a cap must come with a comment in pyproject.toml naming the break; none is known now
    for req in _requirements():
        assert not [s for s in req.specifier if s.operator in ("<", "<=", "==", "~=")], str(req)


def test_typing_marker_and_single_version():
    assert (ROOT / "captum_leg" / "py.typed").is_file()
    text = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'captum_leg = \[\s*"py.typed"\s*\]', text)
    assert "version" in _project()["dynamic"] and "version" not in _project()
    try:
        installed = importlib.metadata.version("captum-leg")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("captum-leg is not installed")
    assert installed == captum_leg.__version__


def test_repository_points_at_nothing_outside_itself():
    paths = r"\.\./shared|/work/|/root/|/home/|/tmp/"
    outside = re.compile(r"LEG_METHOD\.md|" + paths)
    files = [ROOT / "README.md", ROOT / "pyproject.toml", *ROOT.glob("captum_leg/**/*.py"),
             *[p for p in (ROOT / "docs").rglob("*") if p.suffix in (".md", ".py", ".ipynb", ".rst")
               and "_build" not in p.parts and "jupyter_execute" not in p.parts]]
    offenders = []
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        found = outside.search(path.read_text(encoding="utf-8"))
        if found:
            offenders.append(f"{rel}: {found.group(0)}")
    assert not offenders
