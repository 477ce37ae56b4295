"""The GDB Remote Serial Protocol's framing: packets, checksums, escapes, and a byte-stream
decoder that never raises on what a client sends.

A packet is `$DATA#CC`: CC is the sum of DATA's bytes modulo 256 in two hex digits. In DATA,
`#`, `$`, `}` and `*` are escaped as `}` followed by the byte XOR 0x20. Outside packets, `+`
and `-` acknowledge, and the byte 0x03 is an interrupt request. Nothing here knows about the
machine: console/control/gdbstub.py gives the packets their meaning.
"""

from __future__ import annotations

from dataclasses import dataclass

# The largest packet DATA we accept and advertise (qSupported PacketSize, in hex there).
MAX_PACKET = 0x4000
INTERRUPT = 0x03
_ESCAPE = 0x7D  # '}'
_SPECIAL = frozenset(b"#$}*")


def checksum(data: bytes) -> int:
    """The modulo-256 sum of the bytes, as a packet's two hex digits carry it."""
    return sum(data) & 0xFF


def escape(data: bytes) -> bytes:
    """DATA with the bytes that frame packets escaped (binary replies, X packets)."""
    out = bytearray()
    for byte in data:
        if byte in _SPECIAL:
            out += bytes((_ESCAPE, byte ^ 0x20))
        else:
            out.append(byte)
    return bytes(out)


def unescape(data: bytes) -> bytes:
    """The inverse of `escape`; a trailing lone `}` is dropped (it escapes nothing)."""
    out = bytearray()
    pending = False
    for byte in data:
        if pending:
            out.append(byte ^ 0x20)
            pending = False
        elif byte == _ESCAPE:
            pending = True
        else:
            out.append(byte)
    return bytes(out)


def frame(data: bytes) -> bytes:
    """A complete packet for DATA, which the caller has escaped where it may hold binary."""
    return b"$" + data + b"#" + f"{checksum(data):02x}".encode()


@dataclass(frozen=True)
class Item:
    """One thing the decoder found in the stream.

    kind: `packet` (data holds the payload, escapes still in: binary packets unescape their
    own part), `bad` (a packet with a wrong checksum or an oversized one: the stub answers
    `-`), `interrupt` (0x03), `ack` or `nak`.
    """

    kind: str
    data: bytes = b""


class Decoder:
    """Turns received bytes into Items, across any split of the stream into chunks."""

    def __init__(self, limit: int = MAX_PACKET) -> None:
        self.limit = limit
        self._body: bytearray | None = None  # inside a packet: its data so far
        self._sum: bytearray | None = None   # after '#': the checksum digits so far
        self._overflow = False

    @property
    def mid_packet(self) -> bool:
        """True while a packet has started and not ended (a disconnect now cuts it)."""
        return self._body is not None

    def feed(self, chunk: bytes) -> list[Item]:
        items: list[Item] = []
        index = 0
        while index < len(chunk):
            if self._body is not None and self._sum is None:
                index = self._take_body(chunk, index)
                if index >= len(chunk):
                    break
            item = self._byte(chunk[index])
            index += 1
            if item is not None:
                items.append(item)
        return items

    def _take_body(self, chunk: bytes, index: int) -> int:
        """Copy a packet's data up to the next '#' or '$' at once (a byte at a time would
        cost more than the machine's work for an 8 KiB memory reply); the index of that
        framing byte, or the end of the chunk."""
        assert self._body is not None
        stops = [position for position in (chunk.find(b"#", index), chunk.find(b"$", index))
                 if position >= 0]
        end = min(stops) if stops else len(chunk)
        room = self.limit - len(self._body)
        if end - index > room:
            self._overflow = True
        self._body += chunk[index:index + max(0, min(room, end - index))]
        return end

    def _byte(self, byte: int) -> Item | None:
        if self._body is None:
            return self._outside(byte)
        if self._sum is not None:
            return self._checksum_digit(byte)
        if byte == ord("#"):
            self._sum = bytearray()
        elif byte == ord("$"):  # a new packet start inside a packet: the old one is lost
            self._start()
            return Item("bad", b"packet restarted")
        elif len(self._body) >= self.limit:
            self._overflow = True  # keep reading to the '#', then refuse it whole
        else:
            self._body.append(byte)
        return None

    def _outside(self, byte: int) -> Item | None:
        if byte == ord("$"):
            self._start()
            return None
        if byte == INTERRUPT:
            return Item("interrupt")
        if byte == ord("+"):
            return Item("ack")
        if byte == ord("-"):
            return Item("nak")
        return None  # noise between packets is ignored, as gdbserver does

    def _start(self) -> None:
        self._body, self._sum, self._overflow = bytearray(), None, False

    def _checksum_digit(self, byte: int) -> Item | None:
        assert self._sum is not None and self._body is not None
        self._sum.append(byte)
        if len(self._sum) < 2:
            return None
        body, digits, overflow = bytes(self._body), bytes(self._sum), self._overflow
        self._body, self._sum, self._overflow = None, None, False
        if overflow:
            return Item("bad", b"oversized packet")
        try:
            expected = int(digits, 16)
        except ValueError:
            return Item("bad", b"bad checksum digits")
        if expected != checksum(body):
            return Item("bad", b"checksum mismatch")
        return Item("packet", body)
