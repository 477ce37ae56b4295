"""The committed guest ELFs (assets/bin) are exactly what assets/Makefile builds from assets/src.

The build runs in a temporary copy of assets/, so it also proves that the output does not depend
on the directory the build runs in.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ASSETS = Path(__file__).resolve().parent.parent / "assets"
CROSS = os.environ.get("CROSS", "s390x-linux-gnu-")

pytestmark = pytest.mark.skipif(
    shutil.which(f"{CROSS}gcc") is None or shutil.which("make") is None,
    reason=f"needs make and the s390x cross compiler {CROSS}gcc "
    "(apt-get install gcc-s390x-linux-gnu binutils-s390x-linux-gnu)",
)


def programs() -> list[str]:
    """Every program directory under assets/src with sources (common is the library)."""
    return sorted(
        d.name
        for d in (ASSETS / "src").iterdir()
        if d.is_dir() and d.name != "common" and any(d.glob("*.[cS]"))
    )


@pytest.fixture(scope="module")
def build_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of assets/src and the Makefile, in a directory whose path has nothing in common
    with the checkout's (and contains a space)."""
    work = tmp_path_factory.mktemp("rebuild") / "a different build directory"
    work.mkdir()
    shutil.copytree(ASSETS / "src", work / "src")
    shutil.copy2(ASSETS / "Makefile", work / "Makefile")
    return work


def make(work: Path, *targets: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-C", str(work), f"CROSS={CROSS}", *targets],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_libtest_is_a_program() -> None:
    assert "libtest" in programs()


@pytest.mark.parametrize("program", programs())
def test_rebuild_matches_committed_elf(build_copy: Path, program: str) -> None:
    result = make(build_copy, program)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning" not in result.stderr.lower(), result.stderr

    elf = build_copy / "bin" / f"{program}.elf"
    committed = ASSETS / "bin" / elf.name
    assert committed.exists(), f"{elf.name} is built but not committed in assets/bin"
    assert elf.read_bytes() == committed.read_bytes(), (
        f"{elf.name} differs from assets/bin/{elf.name}: run make -C assets and commit"
    )
