"""Full dumps for tests: the stand-alone dumper leaves its dump on the dump device, and these
helpers copy it off as `dumplab zgetdump` does (no re-IPL needed: tests that check the
operator's re-IPL and OS-console zgetdump are in tests/test_dumptools.py)."""

from __future__ import annotations

from dataclasses import dataclass

from conftest import MS

from machine.dumptools import zgetdump_image
from machine.lpar import Lpar


@dataclass(frozen=True)
class FullDump:
    """Where a full dump was copied to (the fields of a dump_written event tests read)."""

    path: str
    format: str = "s390"


def full_dump_done(event) -> bool:
    return event.kind == "stage" and event.stage == "full-dump" and event.status in ("done", "failed")


def copy_full_dump(lpar: Lpar, name: str = "full.s390", devno: int = 0x200) -> FullDump:
    """The dump on the device, copied into the work directory's dumps/NAME."""
    out = lpar.workdir / "dumps" / name
    out.parent.mkdir(exist_ok=True)
    zgetdump_image(lpar.devices[devno].path, out, "s390")
    return FullDump(str(out))


def wait_for_full_dump(lpar: Lpar, timeout_ms: int = 3000, name: str = "full.s390") -> FullDump:
    """Run until the dumper has written its full dump to the device, and copy it off."""
    done = lpar.run_until(full_dump_done, timeout_ms * MS)
    assert done is not None and done.status == "done", done
    return copy_full_dump(lpar, name)
