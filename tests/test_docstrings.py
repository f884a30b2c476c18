"""Public functions document their arguments (Google style: ``Args:`` and ``Returns:``).

ruff's pydocstyle rules (pyproject.toml) check the format of docstrings and that every
argument an ``Args:`` section lists exists; they cannot tell that a function with
arguments has no ``Args:`` section at all. This test does, for every module of the
package (nested public helpers included).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "modprobe"
CHECKED = sorted(ROOT.rglob("*.py"))


def undocumented(path: Path) -> list[str]:
    """Public functions of ``path`` with two or more arguments and no ``Args:`` section."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            names = [a.arg for a in (*node.args.args, *node.args.kwonlyargs)
                     if a.arg not in ("self", "cls")]
            if len(names) >= 2 and "Args:" not in (ast.get_docstring(node) or ""):
                found.append(f"{path.name}:{node.lineno} {node.name}")
    return found


def test_public_functions_with_arguments_have_an_args_section() -> None:
    assert [f for path in CHECKED for f in undocumented(path)] == []


def test_the_check_finds_a_function_without_args(tmp_path: Path) -> None:
    path = tmp_path / "modprobe" / "m.py"
    path.parent.mkdir()
    path.write_text('def f(a, b):\n    """Doc."""\n\n\ndef g(a):\n    """Doc."""\n')
    assert [line.split()[-1] for line in undocumented(path)] == ["f"]
