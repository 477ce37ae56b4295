"""The checksums s390 dump structures use, computed on the host."""

from __future__ import annotations

import hashlib


def cksm(data: bytes | memoryview, initial: int = 0) -> int:
    """s390 csum_partial (the CKSM instruction): 32-bit big-endian words added with end-around
    carry; a trailing 1-3 bytes count as a word padded with zeros on the right."""
    view = memoryview(data)
    whole = len(view) - len(view) % 4
    total = initial + sum(int.from_bytes(view[i:i + 4], "big") for i in range(0, whole, 4))
    if whole != len(view):
        total += int.from_bytes(bytes(view[whole:]).ljust(4, b"\0"), "big")
    while total > 0xFFFFFFFF:
        total = (total & 0xFFFFFFFF) + (total >> 32)
    return total


def sha256(data: bytes | memoryview) -> bytes:
    return hashlib.sha256(data).digest()
