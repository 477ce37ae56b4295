"""gdb stub benchmarks: the round trip of one register read (`p`), and memory read throughput
(`m` packets of 8 KiB, which is what `x/1024gx` asks for). Prints figures measured in one run;
asserts nothing.

    python bench/bench_gdbstub.py [ROUNDS]      default 500 register reads, 200 memory reads

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


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    with tempfile.TemporaryDirectory() as workdir, \
            Session(Path(workdir), overrides={"cpus": 2}) as session:
        for line in ("activate", "load 0100", "run 20ms"):
            assert session.execute(line).ok, line
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
        print(f"p (one register) round trip: median {statistics.median(times) * 1e6:.0f} us, "
              f"p95 {sorted(times)[int(len(times) * 0.95)] * 1e6:.0f} us over {rounds}")
        reads = max(1, rounds * 2 // 5)
        start = time.perf_counter()
        for index in range(reads):
            sock.sendall(frame(f"m{0x100000 + index * 0x2000:x},2000".encode()))
            assert len(_reply(sock, decoder)) == 0x4000
        seconds = time.perf_counter() - start
        print(f"x/1024gx (8 KiB m packets): {reads * 8 / 1024 / seconds:.1f} MiB/s, "
              f"{seconds / reads * 1e3:.2f} ms per 8 KiB over {reads}")
        sock.sendall(frame(b"D"))
        _reply(sock, decoder)
        sock.close()
        server.join(10)


if __name__ == "__main__":
    main()
