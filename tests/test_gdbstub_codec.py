"""The GDB remote protocol without a machine: framing (console/control/gdbcodec.py) and the
stub's packet meanings (console/control/gdbstub.Stub) against a fake target."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET

import pytest

from console.control.gdbcodec import MAX_PACKET, Decoder, checksum, escape, frame, unescape
from console.control.gdbstub import REGISTERS, SIGINT, SIGTRAP, Stop, Stub, TargetError, target_xml


def test_checksum_is_the_byte_sum_modulo_256() -> None:
    assert checksum(b"") == 0
    assert checksum(b"OK") == 0x9A
    assert checksum(b"\xff\x02") == 0x01
    assert frame(b"OK") == b"$OK#9a"
    assert frame(b"qSupported") == b"$qSupported#37"


def test_escape_covers_the_framing_bytes_and_round_trips() -> None:
    assert escape(b"a#b$c}d*e") == b"a}\x03b}\x04c}]d}\x0ae"
    every_byte = bytes(range(256))
    assert unescape(escape(every_byte)) == every_byte
    assert unescape(b"ab}") == b"ab"  # a lone escape at the end escapes nothing


def test_decoder_reassembles_packets_split_anywhere() -> None:
    stream = b"+" + frame(b"m10400,20") + b"\x03" + frame(b"X10,2:" + escape(b"#$")) + b"-"
    for cut in range(1, len(stream)):
        decoder = Decoder()
        items = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
        assert [(i.kind, i.data) for i in items] == [
            ("ack", b""), ("packet", b"m10400,20"), ("interrupt", b""),
            ("packet", b"X10,2:}\x03}\x04"), ("nak", b"")]


def test_decoder_refuses_bad_checksums_oversized_and_restarted_packets() -> None:
    decoder = Decoder(limit=8)
    items = decoder.feed(b"$OK#00$OK#zz$" + b"x" * 20 + b"#00" + b"$ab$OK#9a")
    assert [(i.kind, i.data) for i in items] == [
        ("bad", b"checksum mismatch"), ("bad", b"bad checksum digits"),
        ("bad", b"oversized packet"), ("bad", b"packet restarted"), ("packet", b"OK")]
    assert not decoder.mid_packet
    decoder.feed(b"$m0,")
    assert decoder.mid_packet  # a disconnect now cuts the packet: the server just closes


class FakeTarget:
    """Two CPUs with numbered registers and 64 KiB of storage."""

    def __init__(self) -> None:
        self.regs = {cpu: [cpu * 1000 + n for n in range(len(REGISTERS))] for cpu in (0, 1)}
        self.memory = bytearray(range(256)) * 256
        self.breakpoints: set[int] = set()
        self.log: list[str] = []
        self.stopped: Stop | None = None

    def cpus(self) -> list[int]:
        return [0, 1]

    def read_registers(self, cpu: int) -> list[int]:
        return list(self.regs[cpu])

    def write_register(self, cpu: int, number: int, value: int) -> None:
        self.regs[cpu][number] = value

    def read_memory(self, cpu: int, address: int, length: int) -> bytes:
        if address + length > len(self.memory):
            raise TargetError("beyond storage")
        return bytes(self.memory[address:address + length])

    def write_memory(self, cpu: int, address: int, data: bytes) -> None:
        if address + len(data) > len(self.memory):
            raise TargetError("beyond storage")
        self.memory[address:address + len(data)] = data

    def insert_breakpoint(self, address: int) -> None:
        self.breakpoints.add(address)

    def remove_breakpoint(self, address: int) -> None:
        self.breakpoints.discard(address)

    def step(self, cpu: int) -> Stop:
        self.log.append(f"step {cpu}")
        return Stop(cpu)

    def resume(self, cpus: list[int] | None) -> None:
        self.log.append(f"resume {cpus}")

    def poll_stop(self) -> Stop | None:
        return self.stopped

    def stop_all(self, signal: int) -> Stop:
        self.log.append("stop all")
        return Stop(1, signal)

    def reverse_step(self, cpu: int) -> Stop:
        self.log.append(f"reverse step {cpu}")
        return Stop(cpu, history_begins=cpu == 0)

    def reverse_continue(self, cpu: int) -> Stop:
        self.log.append(f"reverse continue {cpu}")
        return Stop(1)

    def attach(self) -> None:
        self.log.append("attach")

    def detach(self) -> None:
        self.log.append("detach")

    def program_file(self) -> str | None:
        return "/x/kernel.elf"


@pytest.fixture
def stub() -> Stub:
    return Stub(FakeTarget())


def ask(stub: Stub, text: str | bytes) -> bytes | None:
    return stub.handle(text.encode("latin-1") if isinstance(text, str) else text)


def test_qsupported_threads_and_unknown_packets(stub: Stub) -> None:
    features = ask(stub, "qSupported:multiprocess+;xmlRegisters=i386")
    assert features is not None
    assert b"PacketSize=4000" in features and b"qXfer:features:read+" in features
    assert b"ReverseStep+" in features and b"ReverseContinue+" in features
    assert ask(stub, "qfThreadInfo") == b"m1,2"
    assert ask(stub, "qsThreadInfo") == b"l"
    assert ask(stub, "qC") == b"QC1"
    assert bytes.fromhex(ask(stub, "qThreadExtraInfo,2").decode()) == b"CPU 1"
    assert ask(stub, "T2") == b"OK" and ask(stub, "T9") == b"E01"
    for unknown in ("vMustReplyEmpty", "Z1,10,2", "qTStatus", "!"):
        assert ask(stub, unknown) == b"", unknown
    assert ask(stub, "QStartNoAckMode") == b"OK" and stub.no_ack


def test_reverse_packets_go_to_the_thread_hc_names(stub: Stub) -> None:
    target = stub.target
    assert ask(stub, "Hg2") == b"OK"
    assert ask(stub, "bs") == b"T05thread:2;"  # no Hc yet: the selected thread
    assert ask(stub, "Hc1") == b"OK" and ask(stub, "bs") == b"T05thread:1;replaylog:begin;"
    assert ask(stub, "Hc-1") == b"OK" and ask(stub, "bc") == b"T05thread:2;"
    assert ask(stub, "Hc9") == b"E01"
    assert target.log == ["reverse step 1", "reverse step 0", "reverse continue 0"]
    assert stub.thread == 1  # the stop reply selected the thread that stopped


def test_registers_per_thread(stub: Stub) -> None:
    assert ask(stub, "Hg2") == b"OK"
    everything = ask(stub, "g")
    sizes = [reg.bits // 8 for reg in REGISTERS]
    assert everything is not None and len(everything) == 2 * sum(sizes)
    # pswm of CPU 1 first, 8 bytes big-endian; r15 is register 17
    assert everything[:16] == f"{1000:016x}".encode()
    assert ask(stub, "p11") == f"{1017:016x}".encode()
    assert ask(stub, "P11=00000000000000ff") == b"OK"
    assert stub.target.regs[1][17] == 0xFF
    acr0 = REGISTERS.index(next(r for r in REGISTERS if r.name == "acr0"))
    assert ask(stub, f"p{acr0:x}") == f"{1000 + acr0:08x}".encode()  # 32 bits
    assert ask(stub, "P11=00ff") == b"E01"  # wrong size
    assert ask(stub, "p999") == b"E01"
    assert ask(stub, "Hg7") == b"E01"


def test_memory_reads_writes_and_errors(stub: Stub) -> None:
    assert ask(stub, "m10,4") == b"10111213"
    assert ask(stub, "M10,2:abcd") == b"OK"
    assert ask(stub, "m10,2") == b"abcd"
    assert ask(stub, b"X20,3:}\x03}\x04z") == b"OK"
    assert stub.target.memory[0x20:0x23] == b"#$z"
    assert ask(stub, "mffff0,20") == b"E01"  # beyond storage
    assert ask(stub, "mzz,4") == b"E01"
    assert ask(stub, "M10,3:abcd") == b"E01"


def test_breakpoints_and_run_control(stub: Stub) -> None:
    target = stub.target
    assert ask(stub, "Z0,11428,2") == b"OK" and 0x11428 in target.breakpoints
    assert ask(stub, "z0,11428,2") == b"OK" and not target.breakpoints
    assert ask(stub, "vCont?") == b"vCont;c;C;s;S"
    assert ask(stub, "vCont;s:2;c") == b"T05thread:2;"
    assert ask(stub, "c") is None and stub.running  # the stop reply comes later
    assert stub.poll() is None
    target.stopped = Stop(1, SIGTRAP)
    assert stub.poll() == b"T05thread:2;" and not stub.running
    target.stopped = None
    assert ask(stub, "vCont;c:1") is None
    assert stub.interrupt() == f"T{SIGINT:02x}thread:2;".encode()
    assert target.log == ["step 1", "resume None", "resume [0]", "stop all"]
    assert ask(stub, "?") == b"T02thread:2;"
    assert ask(stub, "D") == b"OK" and stub.detached and target.log[-1] == "detach"


def test_target_description_names_gdbs_s390_features() -> None:
    root = ET.fromstring(target_xml())
    assert root.findtext("architecture") == "s390:64-bit"
    features = {f.get("name"): [r.get("name") for r in f] for f in root.findall("feature")}
    assert features["org.gnu.gdb.s390.core"] == ["pswm", "pswa"] + [f"r{i}" for i in range(16)]
    assert features["org.gnu.gdb.s390.acr"] == [f"acr{i}" for i in range(16)]
    assert features["org.gnu.gdb.s390.fpr"] == ["fpc"] + [f"f{i}" for i in range(16)]
    assert features["org.dumplab.s390.system"] == (
        [f"cr{i}" for i in range(16)] + ["prefix", "cputm", "ckc"])
    regnums = [int(r.get("regnum")) for f in root.findall("feature") for r in f]
    assert regnums == list(range(len(REGISTERS)))


def test_target_description_is_read_in_pieces(stub: Stub) -> None:
    document, offset = b"", 0
    while True:
        reply = ask(stub, f"qXfer:features:read:target.xml:{offset:x},40")
        assert reply is not None and reply[:1] in (b"m", b"l")
        document += unescape(reply[1:])
        offset += 0x40
        if reply[:1] == b"l":
            break
    assert document == target_xml().encode()
    assert ask(stub, "qXfer:features:read:other.xml:0,40") == b"E00"
    assert ask(stub, "qXfer:exec-file:read::0,1000") == b"l/x/kernel.elf"


def test_fuzzed_streams_never_raise() -> None:
    """Random bytes and mutated valid packets through the decoder and the stub: error
    replies or nothing, never an exception (fixed seed, bounded)."""
    rng = random.Random(14)
    valid = [b"g", b"m10,8", b"M0,1:ff", b"X0,1:a", b"p1", b"P1=00", b"Z0,10,2", b"vCont;s:1",
             b"qXfer:features:read:target.xml:0,10", b"Hg1", b"qThreadExtraInfo,1", b"T1"]
    for _ in range(3000):
        stub, decoder = Stub(FakeTarget()), Decoder()
        if rng.random() < 0.5:
            payload = bytearray(rng.choice(valid))
            for _ in range(rng.randint(1, 4)):
                payload[rng.randrange(len(payload))] = rng.randrange(256)
            chunk = frame(escape(bytes(payload)))
        else:
            chunk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
        for item in decoder.feed(chunk):
            if item.kind == "packet":
                reply = stub.handle(item.data)
                assert reply is None or len(reply) <= 2 * MAX_PACKET
