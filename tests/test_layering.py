"""The machine package stands alone: it imports neither Textual nor the console package."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

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
