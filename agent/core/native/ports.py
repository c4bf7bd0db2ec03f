"""Dynamic ports (`BAETYL_SERVICE_DYNAMIC_PORT`): one per instance, unique, free when handed out.

A port belongs to an instance from its creation to its removal (restarts keep it, so clients and
the function proxy's registry stay valid). Candidates are tried round-robin after the last one
handed out, so a port released by a removed instance is not reused at once while clients may
still hold it.
"""

from __future__ import annotations

import contextlib
import errno
import socket


class PortsExhausted(Exception):
    """Every port of the range is taken (by our instances or by other programs)."""


class PortAllocator:
    """Hands out ports of an inclusive range; knows which ones our instances hold."""

    def __init__(self, port_range: tuple[int, int]) -> None:
        self._low, self._high = port_range
        self._held: set[int] = set()
        self._next = self._low

    @property
    def held(self) -> frozenset[int]:
        """Ports currently held by instances."""
        return frozenset(self._held)

    def reserve(self, port: int) -> None:
        """Mark `port` as held (an adopted instance keeps the port it had)."""
        self._held.add(port)

    def release(self, port: int) -> None:
        """Give `port` back; releasing a port not held is harmless."""
        self._held.discard(port)

    def allocate(self) -> int:
        """A port of the range that no instance holds and nothing listens on (checked by binding).

        Blocking (a bind per candidate): call it from a worker thread.
        """
        size = self._high - self._low + 1
        for step in range(size):
            port = self._low + (self._next - self._low + step) % size
            if port in self._held or not is_free(port):
                continue
            self._held.add(port)
            self._next = self._low + (port - self._low + 1) % size
            return port
        raise PortsExhausted(f"no free dynamic port in {self._low}-{self._high}")


def is_free(port: int) -> bool:
    """True if a TCP listener could bind `port` on every IPv4 and IPv6 address.

    SO_REUSEADDR makes connections lingering in TIME_WAIT not count, as they do not stop a
    server (which sets the option too) from binding; a listening socket still does.
    """
    for family, address in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):  # noqa: S104
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError:  # no IPv6 on this host
            continue
        with contextlib.closing(sock):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind((address, port))
            except OSError as exc:
                if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                    return False
                if family == socket.AF_INET6:
                    continue  # IPv6 present but unusable (EADDRNOTAVAIL): judge by IPv4
                raise
    return True
