"""Render maths to MathML while the site is built: the pages need no script and no
network (Sphinx's default, MathJax, is loaded from a CDN when a page is viewed).

Browsers render MathML natively (MathML Core); the conversion is latex2mathml's, a
pure-Python package listed in the ``docs`` extra.
"""

from __future__ import annotations

from typing import Any, Dict

from docutils import nodes
from latex2mathml.converter import convert
from sphinx.application import Sphinx
from sphinx.util.math import get_node_equation_number


def _mathml(latex: str, display: str) -> str:
    try:
        return convert(latex.strip(), display=display)
    except Exception as err:  # latex2mathml raises its own exception types
        raise ValueError(f"latex2mathml cannot convert {latex!r}: {err}") from err


def visit_math(self: Any, node: nodes.math) -> None:
    self.body.append(self.starttag(node, "span", "", CLASS="math notranslate"))
    self.body.append(_mathml(node.astext(), "inline") + "</span>")
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
            self.body.append(_mathml(part, "block"))
    self.body.append("</div>\n")
    raise nodes.SkipNode


def setup(app: Sphinx) -> Dict[str, Any]:
    app.add_html_math_renderer("mathml", (visit_math, None), (visit_displaymath, None))
    return {"parallel_read_safe": True, "parallel_write_safe": True}
