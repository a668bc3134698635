"""Render maths to MathML while the site is built: the pages need no script and no
network (Sphinx's default, MathJax, is loaded from a CDN when a page is viewed).

Browsers render MathML natively (MathML Core); the conversion is latex2mathml's, a
pure-Python package listed in the ``docs`` extra. A command latex2mathml does not know
would be shown as raw TeX, so it is reported as a warning, which fails the build.
"""

from __future__ import annotations

import os
import re
from typing import Any, Dict

from docutils import nodes
from latex2mathml.converter import convert
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.math import get_node_equation_number

logger = logging.getLogger(__name__)

# TeX that latex2mathml leaves as text: norm and absolute-value bars after \big, \Big,
# ..., and the operator name \arg
_SPELLINGS = [
    (re.compile(r"\\(?:lVert|rVert|Vert)(?![A-Za-z])|\\\|"), "\u2016"),
    (re.compile(r"\\(?:lvert|rvert|vert)(?![A-Za-z])"), "|"),
    (re.compile(r"\\arg(?![A-Za-z])"), r"\\operatorname{arg}"),
]
_RAW_COMMAND = re.compile(r">(\\[A-Za-z]+|\\.)<")


def _mathml(latex: str, display: str, node: nodes.Node) -> str:
    for pattern, text in _SPELLINGS:
        latex = pattern.sub(text, latex)
    mathml = convert(latex.strip(), display=display)
    raw = _RAW_COMMAND.findall(mathml)
    if raw:
        logger.warning("maths left unrendered (%s) in: %s", ", ".join(sorted(set(raw))), latex.strip(), location=node)
    return mathml


def visit_math(self: Any, node: nodes.math) -> None:
    self.body.append(self.starttag(node, "span", "", CLASS="math notranslate"))
    self.body.append(_mathml(node.astext(), "inline", node) + "</span>")
    raise nodes.SkipNode


def visit_displaymath(self: Any, node: nodes.math_block) -> None:
    self.body.append(self.starttag(node, "div", CLASS="math notranslate"))
    if node.get("number"):
        number = get_node_equation_number(self, node)
        self.body.append(f'<span class="eqno">({number})')
        self.add_permalink_ref(node, "Link to this equation")
        self.body.append("</span>")
    # blank lines separate equations, as with MathJax's renderer
    for part in node.astext().split("\n\n"):
        if part.strip():
            self.body.append(_mathml(part, "block", node))
    self.body.append("</div>\n")
    raise nodes.SkipNode


def _add_static(app: Sphinx) -> None:
    app.config.html_static_path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), "static"))
    app.add_css_file("mathml.css")


def setup(app: Sphinx) -> Dict[str, Any]:
    app.add_html_math_renderer("mathml", (visit_math, None), (visit_displaymath, None))
    app.connect("builder-inited", _add_static)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
