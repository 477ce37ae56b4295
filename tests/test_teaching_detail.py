"""Watchable detail inside a stage (issue 13, deliver 2): the purgatory reports its SHA-256
progress per segment from the guest, every 16 KiB, ending at the segment's length, just
before the segment's check with the expected and computed digests."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

from conftest import MS

from machine.events import EventBus, EventLog
from machine.faults import inject
from machine.lpar import Lpar
from machine.profile import Profile

STEP = 16 << 10


def test_the_purgatory_reports_hashing_progress_per_segment(tmp_path: Path) -> None:
    log = EventLog(bus := EventBus())
    lpar = Lpar(Profile(cpus=1, memory=64 << 20, crashkernel=32 << 20, kdump=True), tmp_path, bus)
    lpar.activate()
    lpar.load(0x100)
    assert lpar.run_until(lambda e: e.kind == "kexec", 2000 * MS)
    inject(lpar, ["corrupt", "segment", "initrd"])
    inject(lpar, ["panic", "test crash"])
    assert lpar.run_until(lambda e: e.kind == "purgatory", 500 * MS)
    image = lpar.kdump.image
    kinds = [e for e in log.events if e.kind in ("segment_progress", "check")
             and (e.kind == "segment_progress" or "SHA-256" in e.what)]
    for index, segment in enumerate(image.hashed):
        mine = [e for e in kinds if e.kind == "segment_progress" and e.index == index]
        assert {e.name for e in mine} == {segment.name}
        assert {(e.total, e.address) for e in mine} == {(segment.memsz, segment.mem)}
        # 0 at the start, every 16 KiB, the segment's length at the end
        assert [e.done for e in mine] == [*range(0, segment.memsz, STEP), segment.memsz]
        assert all(a.t <= b.t for a, b in itertools.pairwise(mine))
        after = kinds[kinds.index(mine[-1]) + 1]
        assert after.kind == "check" and after.what == f"segment {index} ({segment.name}) SHA-256"
        now = hashlib.sha256(lpar.storage.read(segment.mem, segment.memsz)).hexdigest()
        assert after.computed == after.guest_computed == now
        assert after.ok == (segment.name != "initrd")  # the corrupted one fails, the others pass
    lpar.close()
