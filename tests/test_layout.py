"""Small rooms: no function in ``captum_leg`` longer than about a screen of code, and the
package reads its defaults from ``captum_leg.settings``, not from their old aliases.

``python tests/test_layout.py`` prints the layout: every module's lines and the longest
function of each package, in code lines (no docstring, comment or blank line)."""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

PACKAGE = Path(__file__).resolve().parents[1] / "captum_leg"
#: Code lines a function may have (the signature and the decorators count).
MAX_FUNCTION_LINES = 80
_SKIPPED_TOKENS = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                   tokenize.ENDMARKER}


def _docstring_lines(tree: ast.AST) -> Set[int]:
    lines: Set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                lines.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return lines


def function_lengths(path: Path) -> Iterator[Tuple[str, int]]:
    """``(qualified name, code lines)`` of every function and method of a module."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    skip = _docstring_lines(tree)
    code: Set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in _SKIPPED_TOKENS:
            code.update(n for n in range(tok.start[0], tok.end[0] + 1) if n not in skip)

    def visit(node: ast.AST, prefix: str) -> Iterator[Tuple[str, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([child.lineno] + [d.lineno for d in child.decorator_list])
                span = range(start, (child.end_lineno or child.lineno) + 1)
                yield prefix + child.name, sum(1 for n in span if n in code)
                yield from visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                yield from visit(child, f"{prefix}{child.name}.")

    yield from visit(tree, "")


def _modules() -> List[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_function_is_longer_than_a_screen() -> None:
    long = [
        f"{path.relative_to(PACKAGE.parent)}: {name} has {n} code lines"
        for path in _modules() for name, n in function_lengths(path) if n > MAX_FUNCTION_LINES
    ]
    assert not long, "split these into named steps:\n" + "\n".join(long)


def test_counting_skips_docstrings_comments_and_blank_lines(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text('def f(x):\n    """Doc\n\n    string."""\n    # a comment\n\n    y = (x +\n         1)\n    return y\n')
    assert dict(function_lengths(module)) == {"f": 4}


def test_the_package_imports_defaults_from_settings() -> None:
    # attribution.py keeps DEFAULT_* for backward compatibility only
    offenders = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "captum_leg.attribution":
                offenders += [f"{path.name}: {a.name}" for a in node.names if a.name.startswith("DEFAULT_")]
    assert not offenders


def layout() -> str:
    """The modules with their lines, and each package's longest function."""
    rows: List[str] = []
    longest: Dict[str, Tuple[int, str]] = {}
    for path in _modules():
        rel = path.relative_to(PACKAGE.parent)
        package = str(rel.parent)
        lines = len(path.read_text(encoding="utf-8").splitlines())
        rows.append(f"| {rel} | {lines} |")
        for name, n in function_lengths(path):
            if n > longest.get(package, (0, ""))[0]:
                longest[package] = (n, f"{path.name}: {name}")
    table = ["| module | lines |", "|---|---|", *rows, "", "| package | longest function | code lines |", "|---|---|---|"]
    table += [f"| {p} | {name} | {n} |" for p, (n, name) in sorted(longest.items())]
    return "\n".join(table)


if __name__ == "__main__":
    print(layout())
