"""The machine package stands alone: it imports neither Textual nor the console package."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
MACHINE = ROOT / "machine"
FORBIDDEN = ("textual", "console")


def imported_modules(path: Path) -> set[str]:
    """Every absolute module name a Python file imports, anywhere in it."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def is_forbidden(module: str) -> bool:
    return module.split(".")[0] in FORBIDDEN


def test_the_check_sees_forbidden_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import os\ndef f():\n    from console.cli import main\n"
                      "    import textual.app as app\n")
    assert {m for m in imported_modules(sample) if is_forbidden(m)} == {"console.cli",
                                                                       "textual.app"}


def test_machine_sources_do_not_import_textual_or_console() -> None:
    sources = sorted(MACHINE.rglob("*.py"))
    assert sources, "no machine sources found"
    offenders = {str(path.relative_to(ROOT)): sorted(m for m in imported_modules(path)
                                                     if is_forbidden(m))
                 for path in sources}
    assert {path: mods for path, mods in offenders.items() if mods} == {}


# Imports every module of the machine package in a fresh interpreter and reports which of the
# forbidden packages ended up loaded.
_PROBE = """
import importlib, json, pkgutil, sys
import machine
names = [m.name for m in pkgutil.walk_packages(machine.__path__, "machine.")]
for name in names:
    importlib.import_module(name)
print(json.dumps({"modules": names,
                  "loaded": sorted({m.split(".")[0] for m in sys.modules} & {"textual", "console"})}))
"""


def test_importing_the_machine_loads_neither_textual_nor_console() -> None:
    done = subprocess.run([sys.executable, "-c", _PROBE], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert "machine.lpar" in report["modules"]
    assert report["loaded"] == []


# The console's layers and the machine, checked by import-linter with the contracts in
# pyproject.toml (layers, no UI library below the TUI, nothing imports the entry point).
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def run_lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"),
                           "--no-cache"], cwd=root, capture_output=True, text=True,
                          timeout=300, check=False, env={"PYTHONPATH": str(root)})


def test_the_import_contracts_are_kept() -> None:
    done = run_lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "BROKEN" not in done.stdout
    assert done.stdout.count("KEPT") >= 5


def test_an_upward_import_breaks_the_layers_contract(tmp_path: Path) -> None:
    """The contracts can fail: the command layer importing the TUI is reported."""
    import shutil

    for name in ("console", "machine"):
        shutil.copytree(ROOT / name, tmp_path / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.bin", "*.img"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    runner = tmp_path / "console" / "control" / "runner.py"
    runner.write_text(runner.read_text(encoding="utf-8") + "\nimport console.tui.app\n",
                      encoding="utf-8")
    done = run_lint_imports(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Layers: cli > classroom > tui > training > control > machine BROKEN" in done.stdout
    assert "console.control.runner -> console.tui.app" in done.stdout


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = [stack.pop()]
            while group[-1] != module:
                group.append(stack.pop())
            if len(group) > 1:
                cycles.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return cycles


def test_no_import_cycles_at_run_time() -> None:


    graph = grimp.build_graph("console", "machine", exclude_type_checking_imports=True)
    assert "console.control.commands" in graph.modules
    assert import_cycles(graph) == []


def test_the_cycle_finder_sees_a_cycle() -> None:


    graph = grimp.ImportGraph()
    for name in ("a", "a.b", "a.c", "a.d"):
        graph.add_module(name)
    graph.add_import(importer="a.b", imported="a.c")
    graph.add_import(importer="a.c", imported="a.b")
    graph.add_import(importer="a.d", imported="a.b")
    assert import_cycles(graph) == [["a.b", "a.c"]]


def test_the_console_has_no_cycles_even_through_type_annotations() -> None:
    """The console's modules never import each other in a circle, not even for a type (the
    machine still has one such group: lpar and the helpers that annotate `Lpar`)."""
    graph = grimp.build_graph("console", "machine")
    console_cycles = [group for group in import_cycles(graph)
                      if any(module.startswith("console") for module in group)]
    assert console_cycles == []
