"""The tutorial notebook executes (fast mode) and the Sphinx site builds.

Deselect the slow notebook run with ``-m "not slow"``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
NOTEBOOK = DOCS / "tutorials" / "leg_vs_integrated_gradients.ipynb"
METHODS = ["LEG", "LEG-TV λ=0.1", "LEG-TV λ=0.3", "LEG gradient path", "IG (× input)",
           "IG (gradient)", "Saliency", "SmoothGrad"]
NOTEBOOK_1D = DOCS / "tutorials" / "leg_1d_signals.ipynb"
METHODS_1D = ["LEG", "LEG gradient path", "IG (× input)", "IG (gradient)"]
# LEG-TV on 1-D grids needs the LP backends' N-D support: until then the notebook says
# it skipped LEG-TV (and why) instead of printing its rows.
LEG_TV_1D = "LEG-TV λ="


def _needs_docs_extra() -> None:
    for module in ("sphinx", "myst_nb", "furo", "latex2mathml"):
        pytest.importorskip(module, reason=f"{module} is not installed (pip install 'captum-leg[docs]')")


def _outputs_text(nb: dict) -> str:
    parts = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            text = out.get("text") or out.get("data", {}).get("text/plain", "")
            parts.append("".join(text) if isinstance(text, list) else text)
    return "\n".join(parts)


def _check_outputs(text: str) -> None:
    for name in METHODS:
        assert name in text
    # significance at a false-discovery rate, not a raw |LEG / SE| > 2 count; the
    # gradient path's cost and its comparison with the black-box map
    assert "cells are non-zero at FDR 5% (Benjamini-Hochberg)" in text
    assert "> 2" not in text
    assert re.search(r"gradient path: \d+ forward and \d+ backward passes", text)
    assert "cells where they differ at FDR 5%" in text


def test_stored_notebook_has_full_run_outputs():
    nb = json.loads(NOTEBOOK.read_text())
    text = _outputs_text(nb)
    assert "FAST=False" in text, "the stored notebook must carry outputs of a full run"
    assert not any(o.get("output_type") == "error"
                   for c in nb["cells"] for o in c.get("outputs", []))
    n_png = sum("image/png" in o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", []))
    assert n_png >= 5
    _check_outputs(text)
    # LEG at its defaults: 1000 perturbations per channel, 332 for the gradient path
    assert "3000 forward passes (1000 per channel)" in text
    assert "gradient path: 996 forward and 996 backward passes" in text


def _execute_fast(path: Path, monkeypatch, tmp_path) -> str:
    """Run a tutorial in fast mode; return its outputs' text (any failing cell raises)."""
    nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed")
    nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed")
    pytest.importorskip("ipykernel", reason="ipykernel is not installed")
    monkeypatch.setenv("CAPTUM_LEG_TUTORIAL_FAST", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError on any failing cell
    return _outputs_text(nb)


@pytest.mark.slow
def test_notebook_executes_in_fast_mode(monkeypatch, tmp_path):
    pytest.importorskip("efficientnet_lite_pytorch", reason="captum-leg[models] is not installed")
    text = _execute_fast(NOTEBOOK, monkeypatch, tmp_path)
    assert "FAST=True" in text
    _check_outputs(text)


def _check_1d_outputs(text: str) -> None:
    for name in METHODS_1D:
        assert name in text
    assert LEG_TV_1D in text
    # The accuracy table and the cost of each method are printed.
    assert "corr" in text and "forwards" in text and "backwards" in text
    assert "forward and 0 backward passes per signal" in text  # LEG, a black box
    # significance at a false-discovery rate, not a raw |LEG / SE| > 2 count
    assert "cells non-zero at FDR 5% per signal" in text and "> 2" not in text


def test_stored_1d_notebook_has_full_run_outputs():
    assert NOTEBOOK_1D.stat().st_size < 1_000_000, "keep the stored notebook small"
    nb = json.loads(NOTEBOOK_1D.read_text())
    text = _outputs_text(nb)
    assert "FAST=False" in text, "the stored notebook must carry outputs of a full run"
    assert not any(o.get("output_type") == "error"
                   for c in nb["cells"] for o in c.get("outputs", []))
    n_png = sum("image/png" in o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", []))
    assert n_png >= 3
    _check_1d_outputs(text)
    # LEG at its defaults: 1000 perturbations per channel, 332 for the gradient path
    assert "LEG: 1000 forward and 0 backward passes per signal" in text
    assert "gradient path: 332 forward and 332 backward passes per signal" in text


@pytest.mark.slow
def test_1d_notebook_executes_in_fast_mode(monkeypatch, tmp_path):
    text = _execute_fast(NOTEBOOK_1D, monkeypatch, tmp_path)
    assert "FAST=True" in text
    _check_1d_outputs(text)


def test_sphinx_build(tmp_path):
    _needs_docs_extra()
    out = tmp_path / "html"
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "--keep-going", "-q", "-E",
         "-d", str(tmp_path / "doctrees"), str(DOCS), str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "WARNING" not in proc.stderr and "warning(s)" not in proc.stderr, proc.stderr[-4000:]
    for page in ("index.html", "method.html", "api.html", "visualization.html",
                 "tutorials/leg_vs_integrated_gradients.html", "tutorials/leg_1d_signals.html"):
        assert (out / page).exists(), page
    api = (out / "api.html").read_text()
    for name in ("LinearlyEstimatedGradient", "visualize_saliency_multiple", "attr_to_hwc",
                 "visualize_signal_saliency", "visualize_volume_saliency"):
        assert name in api
    # the results pages render: the sanity table has its seven columns ("|rho|" escaped),
    # and the link to the method page's section finds it
    sanity = (out / "results" / "sanity" / "sanity.html").read_text()
    assert sanity.count('<th class="head">') == 7 and "<p>LEG |rho|</p>" in sanity
    results = (out / "results" / "README.html").read_text()
    assert results.count('<th class="head"><p>LEG |rho|</p>') == 1
    assert 'href="../method.html#measured-precision"' in results
    assert 'id="measured-precision"' in (out / "method.html").read_text()
    # offline: maths is MathML written at build time, and no page loads a remote script
    # or stylesheet (links to other sites are fine)
    method = (out / "method.html").read_text()
    assert method.count("<math ") >= 20
    scripts = re.findall(r"<script\b.*?</script>", method, re.I | re.S)
    assert scripts and not [s for s in scripts if "mathjax" in s.lower()]
    remote = re.compile(r"<(?:script|link)\b[^>]*(?:src|href)=[\"'](?:https?:)?//", re.I)
    for page in out.rglob("*.html"):
        html = page.read_text()
        assert not remote.search(html), (page, remote.search(html).group(0))
        assert "cdn" not in " ".join(re.findall(r"<script\b[^>]*>", html, re.I)).lower(), page


def _build_one_page(tmp_path, index_md: str, module: str = "") -> subprocess.CompletedProcess:
    """Build a site of one page with the project's conf.py and extensions (and, if given,
    a module ``user_module`` for the page to document)."""
    _needs_docs_extra()
    src = tmp_path / "src"
    (src / "_static").mkdir(parents=True)
    (src / "conf.py").write_text((DOCS / "conf.py").read_text())
    shutil.copytree(DOCS / "_ext", src / "_ext")
    (src / "index.md").write_text(index_md)
    (tmp_path / "user_module.py").write_text(module)
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "--keep-going", "-q",
         str(src), str(tmp_path / "html")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )


def test_sphinx_build_fails_on_a_broken_page(tmp_path):
    proc = _build_one_page(tmp_path, "# Broken\n\nSee {doc}`no_such_page`.\n")
    assert proc.returncode != 0
    assert "no_such_page" in proc.stderr


def test_sphinx_build_fails_on_a_docstring_warning(tmp_path):
    module = 'def f(x):\n    """One line.\n\n    Args:\n        x: an *unclosed emphasis\n    """\n'
    page = "# API\n\n```{eval-rst}\n.. autofunction:: user_module.f\n```\n"
    proc = _build_one_page(tmp_path, page, module)
    assert proc.returncode != 0
    assert "docstring of user_module.f" in proc.stderr and "fail the build" in proc.stderr
    fine = _build_one_page(tmp_path / "fine", page, module.replace("*unclosed", "closed"))
    assert fine.returncode == 0, fine.stderr[-2000:]


def test_maths_latex2mathml_cannot_render_fails_the_build(tmp_path):
    proc = _build_one_page(tmp_path, "# Maths\n\nFine: $\\big\\lVert x \\big\\rVert$. Unknown: $\\notacommand x$.\n")
    assert proc.returncode != 0
    assert "maths left unrendered (\\notacommand)" in proc.stderr
    assert "lVert" not in proc.stderr  # the norm bars are rendered
