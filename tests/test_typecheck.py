"""The package type-checks: ``mypy`` with the settings of pyproject.toml's ``[tool.mypy]``
(untyped definitions refused in ``captum_leg``) reports no error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
# matplotlib's stubs type Figure.subplots as a union of ndarray and Axes before 3.10,
# which the plotting code, written against the newer overloads, cannot index: at the
# minimum versions (matplotlib 3.8) the check would fail on the stubs, not the code.
TYPED_MATPLOTLIB = Version("3.10")


def test_mypy_reports_no_error() -> None:
    pytest.importorskip("mypy", reason="mypy is not installed (it comes with the 'test' extra)")
    matplotlib = pytest.importorskip("matplotlib")
    if Version(matplotlib.__version__) < TYPED_MATPLOTLIB:
        pytest.skip(f"matplotlib {matplotlib.__version__} < {TYPED_MATPLOTLIB}: its stubs predate the typed subplots")
    # the settings and the files to check come from pyproject.toml, found from ROOT
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", "--hide-error-context"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, f"mypy found errors:\n{run.stdout}{run.stderr}"


def test_mypy_checks_the_package_strictly() -> None:
    # the check above is only as good as its settings: untyped functions must be errors
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        tomllib = pytest.importorskip("tomli")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert config["files"] == ["captum_leg"]
    assert config["disallow_untyped_defs"] and config["disallow_incomplete_defs"] and config["check_untyped_defs"]
