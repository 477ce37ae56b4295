"""Where the shipped assets (guest programs, profiles, scenarios) live."""

from __future__ import annotations

from pathlib import Path


def assets_dir() -> Path:
    """The assets/ tree: beside the packages in a checkout or an editable install, or installed
    as package data under machine/_assets in a wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "assets", here / "_assets"):
        if (candidate / "bin").is_dir():
            return candidate
    raise FileNotFoundError(f"DumpLab assets not found next to {here}")


def program_path(name: str) -> Path:
    """The built guest program NAME (assets/bin/NAME.elf)."""
    return assets_dir() / "bin" / f"{name}.elf"
