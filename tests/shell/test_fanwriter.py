"""The parallel fan-out writer: every socket gets its bytes once, results in order, both threads used."""

from __future__ import annotations

import os
import socket
import threading

from gateway_trio.fanwriter import PARALLEL_MIN, FanWriter


class _Sock:
    """A transport over one end of a socketpair, recording which thread wrote."""

    def __init__(self, fail: bool = False) -> None:
        self.a, self.b = socket.socketpair()
        self.a.setblocking(False)
        self.fail = fail
        self.thread: int | None = None

    def try_write(self, data: bytes) -> int:
        self.thread = threading.get_ident()
        if self.fail:
            raise BrokenPipeError("peer gone")
        try:
            return os.write(self.a.fileno(), data)
        except BlockingIOError:
            return 0

    def close(self) -> None:
        self.a.close()
        self.b.close()


def test_a_large_batch_is_written_by_two_threads_in_order() -> None:
    socks = [_Sock(fail=i == 7) for i in range(PARALLEL_MIN * 2 + 1)]
    writer = FanWriter()
    try:
        items = [(s, b"frame-%d" % i) for i, s in enumerate(socks)]
        sent = writer.write_all(items)
        assert len(sent) == len(items)
        for i, (s, data) in enumerate(items):
            if i == 7:
                assert sent[i] == 0  # a failed write is reported as nothing taken
                continue
            assert sent[i] == len(data)
            assert s.b.recv(100) == data
        threads = {s.thread for s in socks}
        assert len(threads) == 2 and threading.get_ident() in threads
        again = writer.write_all(items[:3])  # a small batch stays on the caller's thread
        assert again == [len(d) for _, d in items[:3]] and {s.thread for s in socks[:3]} == {threading.get_ident()}
    finally:
        writer.close()
        for s in socks:
            s.close()


def test_a_full_socket_takes_part_or_nothing_and_a_closed_writer_writes_alone() -> None:
    socks = [_Sock() for _ in range(PARALLEL_MIN)]
    writer = FanWriter()
    try:
        big = b"x" * (8 << 20)  # more than a socketpair buffer holds
        sent = writer.write_all([(s, big) for s in socks])
        assert all(0 < n < len(big) for n in sent)
        writer.close()
        for s in socks:
            s.thread = None
        sent = writer.write_all([(s, b"y") for s in socks])
        assert {s.thread for s in socks} == {threading.get_ident()}
        assert sent == [0] * len(socks)  # still full: nothing taken
    finally:
        for s in socks:
            s.close()
