"""The guest C library (assets/src/common) run in unicorn, checked against host references.

The functions are called by symbol in assets/bin/libtest.elf through tests/guest_harness.py.
"""

from __future__ import annotations

import hashlib
import random

import capstone
import pytest
from guest_harness import ASSETS_BIN, Guest, GuestFault

ULONG_MAX = (1 << 64) - 1
LIBTEST = ASSETS_BIN / "libtest.elf"


@pytest.fixture(scope="module")
def guest_module() -> Guest:
    assert LIBTEST.exists(), f"{LIBTEST} missing: run make -C assets libtest"
    return Guest(LIBTEST)


@pytest.fixture
def guest(guest_module: Guest) -> Guest:
    guest_module.reset_heap()
    return guest_module


def cksm_ref(data: bytes, initial: int = 0) -> int:
    """The CKSM rule of S390_FACTS §2.3: big-endian words, tail left-justified, carries folded."""
    total = initial
    for i in range(0, len(data), 4):
        total += int.from_bytes(data[i : i + 4].ljust(4, b"\0"), "big")
    while total > 0xFFFFFFFF:
        total = (total & 0xFFFFFFFF) + (total >> 32)
    return total


def os_info_bytes(crashkernel: int = 0) -> bytes:
    info = bytearray(4096)
    info[0:8] = b"OSINFOSZ"
    info[0x0C:0x10] = bytes.fromhex("00010001")  # version 1.1
    info[0x10:0x18] = crashkernel.to_bytes(8, "big")
    info[0x18:0x20] = crashkernel.to_bytes(8, "big")
    return bytes(info)


# ---- CKSM -------------------------------------------------------------------------------


def test_cksm_function_uses_the_cksm_instruction(guest: Guest) -> None:
    arch = getattr(capstone, "CS_ARCH_SYSTEMZ", None) or capstone.CS_ARCH_SYSZ
    md = capstone.Cs(arch, capstone.CS_MODE_BIG_ENDIAN)
    start = guest.symbols["cksm"]
    code = bytes(guest.read(start, 64))
    mnemonics = []
    for insn in md.disasm(code, start):
        mnemonics.append(insn.mnemonic)
        if insn.mnemonic == "br":
            break
    assert "cksm" in mnemonics
    assert mnemonics[mnemonics.index("cksm") + 1] == "jo"  # loop on cc 3


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (os_info_bytes()[0x0C:], 0x00010001),
        (os_info_bytes(0x10000000)[0x0C:], 0x20010001),
        (bytes.fromhex("ffffffff00000002"), 0x00000002),
        (bytes.fromhex("010203"), 0x01020300),
        (b"", 0),
    ],
    ids=["os_info-empty", "os_info-crashkernel", "end-around-carry", "tail-padding", "empty"],
)
def test_cksm_facts_vectors(guest: Guest, data: bytes, expected: int) -> None:
    assert cksm_ref(data) == expected
    assert guest.call("cksm", guest.put(data), len(data), 0) == expected


def test_cksm_random_lengths_and_alignments(guest: Guest) -> None:
    rng = random.Random(1)
    base = guest.alloc(256, align=8)
    for length in range(71):
        for misalign in range(4):
            data = rng.randbytes(length)
            initial = rng.choice([0, 1, 0xFFFFFFFF, rng.getrandbits(32)])
            guest.write(base + misalign, data)
            got = guest.call("cksm", base + misalign, length, initial)
            assert got == cksm_ref(data, initial), (length, misalign, initial)


@pytest.mark.parametrize("length", [4084, 8191, 8192, 8193, 8195, 16387, 100_001, 1 << 20])
def test_cksm_long_buffers(guest: Guest, length: int) -> None:
    # unicorn (QEMU) stops CKSM every 8 KiB with cc 3: longer buffers need the loop
    data = random.Random(length).randbytes(length)
    initial = 0x89ABCDEF
    assert guest.call("cksm", guest.put(data), length, initial) == cksm_ref(data, initial)


def test_cksm_all_ones_folds_carries(guest: Guest) -> None:
    data = b"\xff" * 4096
    assert cksm_ref(data, 0xFFFFFFFF) == 0xFFFFFFFF
    assert guest.call("cksm", guest.put(data), len(data), 0xFFFFFFFF) == 0xFFFFFFFF


def test_cksm_chained_as_csum_partial_callers_do(guest: Guest) -> None:
    data = random.Random(7).randbytes(5003)
    addr = guest.put(data)
    for split in (0, 4, 100, 4084, 5000):
        assert guest.call("t_cksm_split", addr, len(data), split) == cksm_ref(data)


# ---- SHA-256 ----------------------------------------------------------------------------


def guest_sha256(guest: Guest, data: bytes, misalign: int = 0) -> bytes:
    addr = guest.alloc(len(data) + misalign) + misalign
    guest.write(addr, data)
    out = guest.alloc(32)
    guest.call("sha256", addr, len(data), out)
    return guest.read(out, 32)


def test_sha256_fips_examples(guest: Guest) -> None:
    # FIPS 180-4 example digests, independent of hashlib
    assert guest_sha256(guest, b"abc").hex() == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    assert guest_sha256(guest, b"").hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    two_blocks = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
    assert guest_sha256(guest, two_blocks).hex() == (
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
    )


@pytest.mark.parametrize("length", [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000])
def test_sha256_padding_boundaries(guest: Guest, length: int) -> None:
    data = random.Random(length).randbytes(length)
    assert guest_sha256(guest, data) == hashlib.sha256(data).digest()
    assert guest_sha256(guest, data, misalign=3) == hashlib.sha256(data).digest()


def test_sha256_one_mebibyte(guest: Guest) -> None:
    data = random.Random(2024).randbytes(1 << 20)
    assert guest_sha256(guest, data) == hashlib.sha256(data).digest()


@pytest.mark.parametrize("chunk", [1, 3, 55, 63, 64, 65, 127, 1000])
def test_sha256_incremental_update(guest: Guest, chunk: int) -> None:
    data = random.Random(chunk).randbytes(3001)
    out = guest.alloc(32)
    guest.call("t_sha256_chunked", guest.put(data), len(data), chunk, out)
    assert guest.read(out, 32) == hashlib.sha256(data).digest()


# ---- snprintf ---------------------------------------------------------------------------

NULL = 0
SNPRINTF_TABLE: list[tuple[str, list[int | str], str]] = [
    ("plain text", [], "plain text"),
    ("%s", ["world"], "world"),
    ("[%-8s]", ["ab"], "[ab      ]"),
    ("[%8s]", ["ab"], "[      ab]"),
    ("[%-8s]", ["longer than 8"], "[longer than 8]"),
    ("[%.3s]", ["abcdef"], "[abc]"),
    ("[%s]", [NULL], "[(null)]"),
    ("%c%c%c", [ord("o"), ord("k"), ord("!")], "ok!"),
    ("[%3c]", [ord("x")], "[  x]"),
    ("%d", [0], "0"),
    ("%d", [-1], "-1"),
    ("%i", [42], "42"),
    ("%d %d", [2147483647, -2147483648], "2147483647 -2147483648"),
    ("[%5d|%-5d|%05d]", [42, 42, -42], "[   42|42   |-0042]"),
    ("[%.5d]", [-42], "[-00042]"),
    ("%u", [4294967295], "4294967295"),
    ("%u", [-1], "4294967295"),
    ("%x", [0xDEADBEEF], "deadbeef"),
    ("%X", [0xDEADBEEF], "DEADBEEF"),
    ("%x", [0], "0"),
    ("%08x", [0xABC], "00000abc"),
    ("[%-08x]", [0xABC], "[abc     ]"),
    ("%o", [8], "10"),
    ("%lx", [ULONG_MAX], "ffffffffffffffff"),
    ("%016lx", [0x1234], "0000000000001234"),
    ("%016lx", [0x0123456789ABCDEF], "0123456789abcdef"),
    ("%08lu", [123], "00000123"),
    ("%lu", [ULONG_MAX], "18446744073709551615"),
    ("%ld", [-(1 << 63)], "-9223372036854775808"),
    ("%ld", [(1 << 63) - 1], "9223372036854775807"),
    ("%llx", [0xFEDCBA9876543210], "fedcba9876543210"),
    ("%zu", [12345], "12345"),
    ("%hx %hhx", [0x12345678, 0x12345678], "5678 78"),
    ("%hd", [0xFFFF], "-1"),
    ("%p", [0x10000], "0x10000"),
    ("%p", [0], "0x0"),
    ("[%*d]", [6, 7], "[     7]"),
    ("[%-*d]", [4, 7], "[7   ]"),
    ("[%.*s]", [2, "xyz"], "[xy]"),
    ("%%", [], "%"),
    ("100%% %s", ["done"], "100% done"),
    ("%q", [], "%q"),
    ("ends with %", [], "ends with %"),
]


def call_snprintf(guest: Guest, size: int, fmt: str, args: list[int | str]) -> tuple[int, int]:
    """snprintf(buf, size, fmt, args...) in the guest; returns (result, buf address)."""
    buf = guest.alloc(max(size, 1) + 16)
    values = [guest.put(a.encode() + b"\0") if isinstance(a, str) else a for a in args]
    result = guest.call_signed("snprintf", buf, size, guest.put(fmt.encode() + b"\0"), *values)
    return result, buf


@pytest.mark.parametrize(("fmt", "args", "expected"), SNPRINTF_TABLE)
def test_snprintf_table(guest: Guest, fmt: str, args: list[int | str], expected: str) -> None:
    result, buf = call_snprintf(guest, 256, fmt, args)
    assert guest.read_cstr(buf).decode() == expected
    assert result == len(expected)


def test_snprintf_many_arguments_on_the_stack(guest: Guest) -> None:
    # buf, size, fmt and two values in r2..r6; the other six in the caller's parameter area
    fmt = "%d %s %lx %c %u %d %016lx %s"
    args: list[int | str] = [-5, "two", 0xABC, ord("Z"), 77, 123456, 0xFEED, "last"]
    result, buf = call_snprintf(guest, 128, fmt, args)
    expected = "-5 two abc Z 77 123456 000000000000feed last"
    assert guest.read_cstr(buf).decode() == expected
    assert result == len(expected)


def test_vsnprintf_through_va_list(guest: Guest) -> None:
    values = [1, 2, 3, 4, 5, 6, 7, 0xDEADBEEFCAFE]
    args = guest.put(b"".join(v.to_bytes(8, "big") for v in values))
    buf = guest.alloc(128)
    fmt = guest.put(b"%d,%d,%d,%d,%d,%d,%d,%lx\0")
    assert guest.call_signed("t_vsnprintf8", buf, 128, fmt, args) == 26
    assert guest.read_cstr(buf) == b"1,2,3,4,5,6,7,deadbeefcafe"


@pytest.mark.parametrize(
    ("size", "stored"), [(5, b"abcd"), (1, b""), (9, b"abcdefgh"), (100, b"abcdefgh")]
)
def test_snprintf_truncation(guest: Guest, size: int, stored: bytes) -> None:
    result, buf = call_snprintf(guest, size, "%s", ["abcdefgh"])
    assert result == 8  # the length the whole output would have had
    assert guest.read_cstr(buf) == stored


def test_snprintf_truncates_inside_a_number(guest: Guest) -> None:
    result, buf = call_snprintf(guest, 6, "x=%08lx", [0x1234])
    assert result == 10
    assert guest.read_cstr(buf) == b"x=000"


def test_snprintf_size_zero_writes_nothing(guest: Guest) -> None:
    buf = guest.put(b"\xaa" * 16)
    fmt = guest.put(b"hello %d\0")
    assert guest.call_signed("snprintf", buf, 0, fmt, 42) == 8
    assert guest.read(buf, 16) == b"\xaa" * 16


# ---- memory functions -------------------------------------------------------------------

LENGTHS = [0, 1, 2, 3, 7, 8, 255, 256, 257, 511, 512, 513, 1000, 4103]


@pytest.mark.parametrize("length", LENGTHS)
def test_memcpy(guest: Guest, length: int) -> None:
    rng = random.Random(length)
    src_data = rng.randbytes(length)
    src = guest.put(src_data)
    area = guest.put(b"\x5a" * (length + 32))
    dst = area + 16 + rng.randrange(8)
    assert guest.call("memcpy", dst, src, length) == dst
    assert guest.read(dst, length) == src_data
    assert guest.read(area, dst - area) == b"\x5a" * (dst - area)  # nothing before
    assert guest.read(dst + length, 8) == b"\x5a" * 8  # nothing after


def test_compiler_emitted_memcpy_reaches_the_library(guest: Guest) -> None:
    size = 100_000  # struct big in libtest.c
    data = random.Random(5).randbytes(size)
    src, dst = guest.put(data), guest.alloc(size)
    guest.call("t_copy_big", dst, src)
    assert guest.read(dst, size) == data


@pytest.mark.parametrize("distance", [-300, -256, -17, -1, 1, 2, 15, 16, 17, 255, 256, 257, 300])
@pytest.mark.parametrize("length", [0, 1, 17, 256, 300, 1000])
def test_memmove_overlapping(guest: Guest, distance: int, length: int) -> None:
    region = bytearray(random.Random(distance * 7919 + length).randbytes(length + 700))
    base = guest.put(bytes(region))
    src_off = 350
    dst_off = src_off + distance
    expected = bytearray(region)
    expected[dst_off : dst_off + length] = region[src_off : src_off + length]  # memmove semantics
    assert guest.call("memmove", base + dst_off, base + src_off, length) == base + dst_off
    assert guest.read(base, len(region)) == bytes(expected)


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("value", [0, 0xA5, 0x1FF])
def test_memset(guest: Guest, length: int, value: int) -> None:
    area = guest.put(b"\x33" * (length + 32))
    dst = area + 16 + length % 5
    assert guest.call("memset", dst, value, length) == dst
    assert guest.read(dst, length) == bytes([value & 0xFF]) * length
    assert guest.read(area, dst - area) == b"\x33" * (dst - area)
    assert guest.read(dst + length, 8) == b"\x33" * 8


@pytest.mark.parametrize(
    ("a", "b", "n", "sign"),
    [
        (b"abc", b"abc", 3, 0),
        (b"abc", b"abd", 3, -1),
        (b"abd", b"abc", 3, 1),
        (b"abc", b"abd", 2, 0),
        (b"\x80", b"\x7f", 1, 1),  # compared as unsigned char
        (b"x", b"y", 0, 0),
    ],
)
def test_memcmp(guest: Guest, a: bytes, b: bytes, n: int, sign: int) -> None:
    result = guest.call_signed("memcmp", guest.put(a), guest.put(b), n)
    assert (result > 0) - (result < 0) == sign


# ---- strings ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", [b"", b"a", b"hello, world", b"x" * 300])
def test_strlen(guest: Guest, text: bytes) -> None:
    assert guest.call("strlen", guest.put(text + b"\0")) == len(text)


@pytest.mark.parametrize(
    ("a", "b", "sign"),
    [
        (b"", b"", 0),
        (b"abc", b"abc", 0),
        (b"abc", b"abd", -1),
        (b"abc", b"ab", 1),
        (b"ab", b"abc", -1),
        (b"\xff", b"a", 1),
    ],
)
def test_strcmp(guest: Guest, a: bytes, b: bytes, sign: int) -> None:
    result = guest.call_signed("strcmp", guest.put(a + b"\0"), guest.put(b + b"\0"))
    assert (result > 0) - (result < 0) == sign


@pytest.mark.parametrize(
    ("a", "b", "n", "sign"),
    [
        (b"abcdef", b"abcxyz", 3, 0),
        (b"abcdef", b"abcxyz", 4, -1),
        (b"ab", b"ab", 10, 0),
        (b"ab", b"abc", 10, -1),
        (b"key=1", b"key=2", 4, 0),
        (b"x", b"y", 0, 0),
    ],
)
def test_strncmp(guest: Guest, a: bytes, b: bytes, n: int, sign: int) -> None:
    result = guest.call_signed("strncmp", guest.put(a + b"\0"), guest.put(b + b"\0"), n)
    assert (result > 0) - (result < 0) == sign


def test_strchr(guest: Guest) -> None:
    s = guest.put(b"crashkernel=64M\0")
    assert guest.call("strchr", s, ord("=")) == s + 11
    assert guest.call("strchr", s, ord("c")) == s  # first occurrence
    assert guest.call("strchr", s, 0) == s + 15  # the terminator itself
    assert guest.call("strchr", s, ord("z")) == 0


# strtoul: (text, base, value, characters consumed)
STRTOUL_TABLE = [
    ("0", 0, 0, 1),
    ("123", 10, 123, 3),
    ("123", 0, 123, 3),
    ("0x1F", 0, 31, 4),
    ("0X1f", 16, 31, 4),
    ("1f", 16, 31, 2),
    ("0x0200", 0, 0x200, 6),
    ("0200", 0, 0o200, 4),  # base 0: a leading 0 means octal, as in C and Linux
    ("0200", 10, 200, 4),
    ("0x", 0, 0, 1),  # "0" parsed, the x is not part of the number
    ("0xg", 16, 0, 1),
    ("0x1F", 10, 0, 1),
    ("  42abc", 10, 42, 4),
    ("\t\n7", 0, 7, 3),
    ("64M", 0, 64, 2),
    ("", 10, 0, 0),
    ("abc", 10, 0, 0),
    ("   ", 10, 0, 0),
    ("+7", 10, 7, 2),
    ("-1", 10, ULONG_MAX, 2),
    ("18446744073709551615", 10, ULONG_MAX, 20),
    ("18446744073709551616", 10, ULONG_MAX, 20),  # overflow saturates, all digits consumed
    ("0xffffffffffffffff", 0, ULONG_MAX, 18),
    ("0x10000000000000000", 0, ULONG_MAX, 19),
    ("z", 36, 35, 1),
    ("101", 2, 5, 3),
    ("12", 1, 0, 0),  # invalid base
]


@pytest.mark.parametrize(("text", "base", "value", "consumed"), STRTOUL_TABLE)
def test_strtoul(guest: Guest, text: str, base: int, value: int, consumed: int) -> None:
    s = guest.put(text.encode() + b"\0")
    end = guest.put(b"\xee" * 8)
    assert guest.call("strtoul", s, end, base) == value
    assert guest.read_u64(end) - s == consumed
    assert guest.call("strtoul", s, 0, base) == value  # end may be NULL


# ---- the harness itself -----------------------------------------------------------------


def test_harness_reports_a_program_check(guest: Guest) -> None:
    with pytest.raises(GuestFault, match="interruption 3"):
        guest.call(0)  # address 0 holds zeros: an invalid instruction (program check)


def test_harness_instruction_budget(guest: Guest) -> None:
    data = guest.alloc(1 << 16)
    with pytest.raises(GuestFault, match="no return within 1000 instructions"):
        guest.call("sha256", data, 1 << 16, guest.alloc(32), max_insns=1000)
