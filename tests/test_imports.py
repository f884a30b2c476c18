"""Data flows one way: no upward import and no cycle between modprobe's parts.

The layers, lowest first (docs/architecture.md): a part may import the parts of its own
layer and of the layers below, never one above. Every import counts, also those inside
functions; imports under ``if TYPE_CHECKING:`` (never run) do not. Script entry points
(``__main__.py`` files, ``if __name__ == "__main__":`` blocks and the ``python -m
modprobe.X`` shims) belong to the command-line layer on top.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "modprobe"

#: Lowest first. Parts in one layer may import each other (without cycles).
LAYERS: list[tuple[str, ...]] = [
    ("errors", "io", "spans", "answers", "checks", "determinism", "fingerprint"),
    ("stats",),                                      # intervals, fits, resampling
    ("adapters",),                                   # model inputs (Prompt) per family
    ("data",),                                       # datasets and task folders
    ("perturb",),                                    # perturbations of task items
    ("loading", "tl", "testing"),                    # models: load, tiny test models
    ("capture",),                                    # logit lens and attention mass
    ("analysis",),                                   # tidy tables -> statistics, plots
    ("study", "finetune", "organism"),               # runners, training
    ("run",),                                        # load_run: any finished run back
    ("bench", "figures"),                            # benchmarks, documentation figures
    ("cli", "commands", "__main__"),                 # the command line, never imported
]
CLI = "commands"
#: ``python -m modprobe.X`` shims of the command line.
SHIMS = {"layers", "following", "interference", "sabotage", "mma"}
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_guard(node: ast.If, name: str) -> bool:
    test = node.test
    if name == "TYPE_CHECKING":
        return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name)
            and test.left.id == "__name__" and len(test.comparators) == 1
            and isinstance(test.comparators[0], ast.Constant)
            and test.comparators[0].value == "__main__")


def _imports(tree: ast.AST, package: str, modules: set[str]):
    """(imported module, line, under a __main__ guard) for every run-time import."""
    found = []

    def visit(node: ast.AST, in_main: bool) -> None:
        if isinstance(node, ast.If) and _is_guard(node, "TYPE_CHECKING"):
            for child in node.orelse:
                visit(child, in_main)
            return
        if isinstance(node, ast.If) and _is_guard(node, "__main__"):
            in_main = True
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                       for a in node.names]
        for target in targets:
            while target and target not in modules and "." in target:
                target = target.rsplit(".", 1)[0]  # modprobe.x.Name -> modprobe.x
            if target in modules:
                found.append((target, getattr(node, "lineno", 0), in_main))
        for child in ast.iter_child_nodes(node):
            visit(child, in_main)

    visit(tree, False)
    return found


def _part(module: str) -> str:
    parts = module.split(".")
    if parts[-1] == "__main__":
        return "__main__"
    if len(parts) == 2 and parts[1] in SHIMS:
        return CLI
    return parts[1] if len(parts) > 1 else "modprobe"


def import_graph(root: Path = ROOT):
    """Module edges ``{module: {imported: line}}`` and part edges with their sources."""
    files = {_module_name(p, root): p for p in root.rglob("*.py")}
    modules = set(files)
    module_edges: dict[str, dict[str, int]] = defaultdict(dict)
    part_edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for module, path in files.items():
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        for target, line, in_main in _imports(ast.parse(path.read_text()), package, modules):
            if target == module or target == root.name:
                continue
            if not in_main:
                module_edges[module].setdefault(target, line)
            source_part = "__main__" if in_main else _part(module)
            if _part(target) != source_part:
                where = f"{path.relative_to(root.parent)}:{line}"
                part_edges[(source_part, _part(target))].append(where)
    return module_edges, part_edges


def cycles(edges: dict[str, dict[str, int]] | dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in list(edges):
        if node not in index:
            connect(node)
    return found


def upward(part_edges: dict[tuple[str, str], list[str]]) -> list[str]:
    """Imports of a part in a higher layer (or of a part no layer lists)."""
    bad = []
    for (source, target), where in sorted(part_edges.items()):
        if source not in RANK or target not in RANK:
            bad.append(f"{source} -> {target}: not in LAYERS ({where[0]})")
        elif RANK[target] > RANK[source]:
            bad.append(f"{source} -> {target} (upward): {', '.join(where)}")
    return bad


def test_every_part_of_modprobe_has_a_layer() -> None:
    parts = {_part(_module_name(p, ROOT)) for p in ROOT.rglob("*.py")} - {"modprobe"}
    assert sorted(parts - set(RANK)) == []


def test_no_upward_import_between_parts() -> None:
    _, part_edges = import_graph()
    assert upward(part_edges) == []


def test_library_never_imports_the_command_line() -> None:
    _, part_edges = import_graph()
    cli_layer = set(LAYERS[-1])
    assert [f"{s} -> {t}: {w}" for (s, t), w in part_edges.items()
            if t in cli_layer and s not in cli_layer] == []


def test_no_cycle_between_parts_or_modules() -> None:
    module_edges, part_edges = import_graph()
    parts: dict[str, set[str]] = defaultdict(set)
    for source, target in part_edges:
        parts[source].add(target)
    assert cycles(parts) == []
    assert cycles(module_edges) == []


def test_the_checker_finds_planted_violations(tmp_path: Path) -> None:
    """An upward import inside a function, a cycle of two modules and a type-only import."""
    root = tmp_path / "modprobe"
    for folder in ("data", "analysis", "analysis/following"):
        (root / folder).mkdir(parents=True)
        (root / folder / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / "data" / "tasks.py").write_text(
        "def f():\n    from modprobe.analysis import following\n")
    (root / "analysis" / "following" / "report.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from modprobe.cli import x\n"
        "def g():\n    from . import law\n")
    (root / "analysis" / "following" / "law.py").write_text(
        "from modprobe.analysis.following.report import g\n")
    module_edges, part_edges = import_graph(root)
    assert upward(part_edges) == ["data -> analysis (upward): modprobe/data/tasks.py:2"]
    assert cycles(module_edges) == [["modprobe.analysis.following.law",
                                     "modprobe.analysis.following.report"]]
    assert ("analysis", "cli") not in part_edges  # TYPE_CHECKING imports never run


@pytest.mark.parametrize("module", ["modprobe.analysis", "modprobe.data", "modprobe.stats"])
def test_torch_free_parts_do_not_load_torch(module: str) -> None:
    """The analyses and datasets import without torch (the reason flow runs one way)."""
    import subprocess
    import sys

    code = f"import sys, {module}; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                          cwd=ROOT.parent, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
