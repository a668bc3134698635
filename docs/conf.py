"""Sphinx configuration for captum-leg.

Build (offline, no pandoc, notebooks are rendered from their stored outputs), from the
repository root, with the ``docs`` extra installed::

    python -m sphinx -b html --keep-going docs docs/_build/html

Maths is rendered to MathML at build time (``docs/_ext/mathml.py``), so the pages load
no script from the network.

Strictness: every warning fails the build (exit status 1), wherever it comes from: a
docstring formatting slip, a module that fails to import, a broken page, a bad toctree
or a broken cross-reference. The generated docs/results/ pages other than its entry page
are reached by links from that page, not by a toctree, so they are marked orphan.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, List

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "_ext"))

import captum_leg  # noqa: E402  (after the path tweak)

project = "captum-leg"
author = "captum-leg developers"
release = version = captum_leg.__version__
copyright = "captum-leg developers"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "mathml",  # docs/_ext/mathml.py: maths rendered at build time, no CDN
    "sphinx.ext.viewcode",
    "myst_nb",
]

# Notebooks are shown with the outputs stored in them; nothing is executed here.
nb_execution_mode = "off"
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3  # "page.md#section-title" links, as on GitHub
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "**.ipynb_checkpoints", "jupyter_execute", "README.md"]

autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_inherit_docstrings = False  # Captum's base-class docstrings would repeat ours
napoleon_google_docstring = True
napoleon_numpy_docstring = False

suppress_warnings: List[str] = []

html_math_renderer = "mathml"
html_theme = "furo"
html_title = f"captum-leg {release}"
html_static_path = ["_static"]


RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


class _WarningCollector(logging.Handler):
    # Collects Sphinx warnings; any of them fails the build.

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.fatal: List[str] = []
        self.suppressed: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        from sphinx.util.logging import get_node_location, is_suppressed_warning

        if is_suppressed_warning(
            getattr(record, "type", None), getattr(record, "subtype", None), self.suppressed
        ):
            return

        location: Any = getattr(record, "location", None)
        if location is not None and not isinstance(location, (str, tuple)):
            location = get_node_location(location)
        where = ":".join(str(p) for p in location if p) if isinstance(location, tuple) else location
        # Sphinx may hand the same record over twice (buffered warnings are replayed).
        text = f"{where or '<no location>'}: {record.getMessage()}"
        if text not in self.fatal:
            self.fatal.append(text)


def _check_warnings(app: Any, exception: Any, collector: _WarningCollector) -> None:
    logging.getLogger("sphinx").removeHandler(collector)
    if exception is None and collector.fatal:
        sys.stderr.write(
            f"\ncaptum-leg docs: {len(collector.fatal)} warning(s) fail the build:\n  "
            + "\n  ".join(collector.fatal) + "\n"
        )
        app.statuscode = 1


def _results_entry() -> str:
    # The evaluation's entry page, if docs/results/ has one yet.
    for name in ("index", "README"):
        for suffix in (".md", ".rst", ".ipynb"):
            if os.path.exists(os.path.join(RESULTS_DIR, name + suffix)):
                return f"results/{name}"
    return ""


def _link_results(app: Any, docname: str, source: List[str]) -> None:
    # docs/results/ is written by the evaluation scripts: the index links its entry page
    # when there is one (a dangling toctree entry would be a fatal warning). Its other
    # pages (tables the scripts wrote) are reached by links from that page: orphans.
    entry = _results_entry()
    if docname.startswith("results/") and docname != entry:
        source[0] = "---\norphan: true\n---\n" + source[0]
        return
    if docname != "index":
        return
    start = source[0].find("<!-- results -->")
    end = source[0].find("<!-- /results -->")
    if start < 0 or end < start:
        return
    if entry:
        source[0] = source[0].replace("results/README", entry)
    else:
        source[0] = source[0][:start] + source[0][end:]


def setup(app: Any) -> None:
    app.connect("source-read", _link_results)
    collector = _WarningCollector()
    collector.suppressed = list(suppress_warnings)
    logging.getLogger("sphinx").addHandler(collector)
    app.connect("build-finished", lambda a, e: _check_warnings(a, e, collector))
