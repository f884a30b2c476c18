"""House rules on size: modules at most 400 lines, functions at most 80.

A module or function that must stay over a limit for a while goes into
`KNOWN_OFFENDERS` with its size today, so it cannot grow while it waits for its split;
an entry whose code is back under the limit can simply be deleted. The list is empty.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "modprobe"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80

#: ``path`` (a module) or ``path::qualified.name`` (a function) -> its size in lines today.
KNOWN_OFFENDERS: dict[str, int] = {}


def _functions(tree: ast.AST, prefix: str = "") -> list[tuple[str, ast.AST]]:
    """Every function in ``tree`` with its qualified name (``Class.method``, ``f.inner``)."""
    found = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = f"{prefix}{node.name}"
            if not isinstance(node, ast.ClassDef):
                found.append((name, node))
            found += _functions(node, f"{name}.")
        else:
            found += _functions(node, prefix)
    return found


def sizes(root: Path) -> dict[str, int]:
    """Lines of every module under ``root`` and of every function in it, keyed as above."""
    measured = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        text = path.read_text()
        measured[rel] = len(text.splitlines())
        for name, node in _functions(ast.parse(text)):
            measured[f"{rel}::{name}"] = node.end_lineno - node.lineno + 1
    return measured


def offenders(root: Path, known: dict[str, int]) -> list[str]:
    """Modules and functions over the limits, except known ones that have not grown."""
    found = []
    for key, lines in sizes(root).items():
        limit = MAX_FUNCTION_LINES if "::" in key else MAX_MODULE_LINES
        if lines > max(limit, known.get(key, 0)):
            grew = f" (known at {known[key]})" if key in known else ""
            found.append(f"{key}: {lines} lines, limit {limit}{grew}")
    return found


def test_modules_and_functions_stay_under_the_size_limits() -> None:
    assert offenders(ROOT, KNOWN_OFFENDERS) == []


def test_the_check_finds_long_modules_and_functions(tmp_path: Path) -> None:
    body = "".join(f"        x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    module = f"class C:\n    def method(self):\n{body}\n\ndef short():\n    return 1\n"
    module += "\n" * (MAX_MODULE_LINES - len(module.splitlines()) + 1)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text(module)
    module_lines, method_lines = MAX_MODULE_LINES + 1, MAX_FUNCTION_LINES + 1
    assert offenders(tmp_path, {}) == [
        f"pkg/m.py: {module_lines} lines, limit {MAX_MODULE_LINES}",
        f"pkg/m.py::C.method: {method_lines} lines, limit {MAX_FUNCTION_LINES}"]
    # A known offender passes at its recorded size and fails once it grows.
    assert offenders(tmp_path, {"pkg/m.py": module_lines,
                                "pkg/m.py::C.method": method_lines}) == []
    assert offenders(tmp_path, {"pkg/m.py": module_lines,
                                "pkg/m.py::C.method": method_lines - 1}) == [
        (f"pkg/m.py::C.method: {method_lines} lines, limit {MAX_FUNCTION_LINES} "
         f"(known at {method_lines - 1})")]
