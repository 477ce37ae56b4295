"""The project shell: the package list, the wheel's contents, README and CI in step."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from machine.paths import assets_dir

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
# The files a wheel is built from (pyproject.toml's view of the project).
BUILD_INPUTS = ("pyproject.toml", "README.md", "machine", "console", "assets")


def source_packages() -> set[str]:
    """Every directory with an __init__.py under machine/ and console/, as a package name."""
    return {".".join(init.parent.relative_to(ROOT).parts)
            for top in ("machine", "console") for init in (ROOT / top).rglob("__init__.py")}


def test_every_package_is_listed_in_pyproject() -> None:
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    assert listed == source_packages() | {"machine._assets"}


def test_assets_are_found_in_the_checkout() -> None:
    assert assets_dir() == ROOT / "assets"
    assert (assets_dir() / "profiles" / "default.toml").is_file()


def readme_commands() -> list[str]:
    """The shell commands of README.md's first code block."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("```")[1]
    return [line for line in block.splitlines()[1:] if line.strip() and not line.startswith("#")]


def test_readme_starts_with_the_two_set_up_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.index("```") < readme.index("\n## "), "the commands must come first"
    install_and_start, install_and_test = readme_commands()
    assert install_and_start.endswith("&& dumplab")
    assert "pytest" in install_and_test and "'.[test]'" in install_and_test


def test_ci_runs_the_readme_test_command() -> None:
    ci = ROOT / ".ci" / "run"
    assert os.access(ci, os.X_OK)
    script = ci.read_text(encoding="utf-8")
    assert script.startswith("#!/usr/bin/env bash\nset -euo pipefail\n")
    assert readme_commands()[1] in script.splitlines()


def test_the_wheel_carries_packages_and_assets(tmp_path: Path) -> None:
    # Build from a copy so the build's own directories never land in the working tree.
    source = tmp_path / "src"
    source.mkdir()
    for name in BUILD_INPUTS:
        origin = ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "build"))
        else:
            shutil.copy2(origin, source / name)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                           "--wheel-dir", str(tmp_path / "dist"), str(source)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    (wheel,) = (tmp_path / "dist").glob("dumplab-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected_assets = {f"machine/_assets/{path.relative_to(ROOT / 'assets').as_posix()}"
                       for path in (ROOT / "assets").rglob("*")
                       if path.is_file() and "__pycache__" not in path.parts
                       and path.relative_to(ROOT / "assets").parts[0] != "build"}
    assert expected_assets <= names, sorted(expected_assets - names)
    assert not [name for name in names if name.startswith("machine/_assets/build/")]
    assert {"machine/paths.py", "console/cli.py", "console/control/commands.py"} <= names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "dumplab = console.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
