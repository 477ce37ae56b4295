"""gdb stub benchmarks: the round trip of one register read (`p`), memory read throughput
(`m` packets of 8 KiB, which is what `x/1024gx` asks for), and reverse execution: the latency
of `reverse-stepi` (`bs`) just after a `stepi` and just after a `continue` to a breakpoint, and
of `reverse-continue` (`bc`) back to the previous breakpoint hit. Prints figures measured in one
run; asserts nothing.

    python bench/bench_gdbstub.py [ROUNDS [SIZE ...]]
        default 500 register reads, 200 memory reads, 7 of each reverse measurement, on LPARs
        of 256M and 1G (2 CPUs): a reverse step restores a checkpoint, which compares storage

A booted 2-CPU LPAR serves `gdbserver wait` in a thread (the machine's thread while gdb is
attached); a raw socket client plays gdb in no-ack mode, as gdb itself runs.
"""

from __future__ import annotations

import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from console.control.gdbcodec import Decoder, frame
from console.control.session import Session


def _reply(sock: socket.socket, decoder: Decoder) -> bytes:
    while True:
        for item in decoder.feed(sock.recv(1 << 16)):
            if item.kind == "packet":
                return item.data


REVERSE_ROUNDS = 7
BREAK_AT = "do_ext_interrupt"  # the timer interruption's handler: every CPU gets there


def _ask(sock: socket.socket, decoder: Decoder, packet: bytes) -> bytes:
    sock.sendall(frame(packet))
    return _reply(sock, decoder)


def _timed(sock: socket.socket, decoder: Decoder, packet: bytes) -> float:
    start = time.perf_counter()
    reply = _ask(sock, decoder, packet)
    assert reply.startswith(b"T05"), reply
    return time.perf_counter() - start


def _report(what: str, times: list[float]) -> None:
    print(f"  {what}: median {statistics.median(times) * 1e3:.1f} ms, max "
          f"{max(times) * 1e3:.1f} ms over {len(times)}")


def _reverse(sock: socket.socket, decoder: Decoder, entry: int) -> None:
    """As gdb does it: Hc names the thread, breakpoints go in before a resume and out at the
    stop, the thread at a breakpoint is stepped off it before a continue."""
    after_stepi, after_continue, back_to_hit = [], [], []
    _ask(sock, decoder, b"Hc1")
    for _ in range(REVERSE_ROUNDS):
        _ask(sock, decoder, b"vCont;s:1")
        after_stepi.append(_timed(sock, decoder, b"bs"))
        _ask(sock, decoder, b"vCont;s:1")
    insert, remove = f"Z0,{entry:x},2".encode(), f"z0,{entry:x},2".encode()
    thread = b"1"
    for _ in range(REVERSE_ROUNDS):
        _ask(sock, decoder, b"vCont;s:" + thread)  # off the breakpoint (or one instruction)
        _ask(sock, decoder, insert)
        stop = _ask(sock, decoder, b"c")
        thread = stop.split(b"thread:")[1].split(b";")[0]
        _ask(sock, decoder, remove)
        _ask(sock, decoder, b"Hc" + thread)
        after_continue.append(_timed(sock, decoder, b"bs"))
        _ask(sock, decoder, b"vCont;s:" + thread)  # forward to the breakpoint again
    for _ in range(REVERSE_ROUNDS):
        _ask(sock, decoder, b"vCont;s:" + thread)
        _ask(sock, decoder, insert)
        stop = _ask(sock, decoder, b"c")
        thread = stop.split(b"thread:")[1].split(b";")[0]
        back_to_hit.append(_timed(sock, decoder, b"bc"))
        _ask(sock, decoder, remove)
    _report("reverse-stepi (bs) after a stepi", after_stepi)
    _report("reverse-stepi (bs) after a continue to a breakpoint", after_continue)
    _report("reverse-continue (bc) to the previous breakpoint hit", back_to_hit)


_UNITS = {"M": 20, "G": 30}


def _size(text: str) -> int:
    return int(text[:-1]) << _UNITS[text[-1].upper()]


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    sizes = sys.argv[2:] or ["256M", "1G"]
    for size in sizes:
        _bench(rounds, size)


def _bench(rounds: int, size: str) -> None:
    with tempfile.TemporaryDirectory() as workdir, \
            Session(Path(workdir), overrides={"cpus": 2, "memory": _size(size)}) as session:
        for line in ("activate", "load 0100", "run 20ms"):
            assert session.execute(line).ok, line
        entry = session.lpar.code_address(BREAK_AT)
        print(f"LPAR: 2 CPUs, {size}, booted, 20 ms of virtual time run")
        with socket.socket() as probe:  # a free port
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        assert session.execute(f"gdbserver 127.0.0.1:{port}").ok
        server = threading.Thread(target=session.execute, args=("gdbserver wait",))
        server.start()
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        decoder = Decoder()
        sock.sendall(frame(b"QStartNoAckMode"))
        _reply(sock, decoder)
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            sock.sendall(frame(b"p11"))
            _reply(sock, decoder)
            times.append(time.perf_counter() - start)
        print(f"  p (one register) round trip: median {statistics.median(times) * 1e6:.0f} us, "
              f"p95 {sorted(times)[int(len(times) * 0.95)] * 1e6:.0f} us over {rounds}")
        reads = max(1, rounds * 2 // 5)
        start = time.perf_counter()
        for index in range(reads):
            sock.sendall(frame(f"m{0x100000 + index * 0x2000:x},2000".encode()))
            assert len(_reply(sock, decoder)) == 0x4000
        seconds = time.perf_counter() - start
        print(f"  x/1024gx (8 KiB m packets): {reads * 8 / 1024 / seconds:.1f} MiB/s, "
              f"{seconds / reads * 1e3:.2f} ms per 8 KiB over {reads}")
        _reverse(sock, decoder, entry)
        sock.sendall(frame(b"D"))
        _reply(sock, decoder)
        sock.close()
        server.join(10)


if __name__ == "__main__":
    main()
