"""Dynamic port allocation: within range, unique, free, round-robin, released on removal."""

from __future__ import annotations

import socket

import pytest

from agent.core.native.ports import PortAllocator, PortsExhausted, is_free


def _free_block(size: int) -> int:
    for low in range(50600, 51000 - size):
        if all(is_free(port) for port in range(low, low + size)):
            return low
    raise AssertionError("no free block of ports")


def test_allocation_skips_held_and_busy_ports_and_goes_round_robin() -> None:
    low = _free_block(4)
    busy = socket.socket()
    busy.bind(("0.0.0.0", low + 1))
    busy.listen()
    try:
        assert not is_free(low + 1)
        ports = PortAllocator((low, low + 3))
        ports.reserve(low + 2)  # an adopted instance keeps its port
        assert ports.allocate() == low
        assert ports.allocate() == low + 3
        with pytest.raises(PortsExhausted, match=f"no free dynamic port in {low}-{low + 3}"):
            ports.allocate()
        ports.release(low)
        assert ports.allocate() == low
        assert ports.held == {low, low + 2, low + 3}
    finally:
        busy.close()


def test_a_released_port_is_not_handed_out_again_at_once() -> None:
    low = _free_block(3)
    ports = PortAllocator((low, low + 2))
    first = ports.allocate()
    ports.release(first)
    assert ports.allocate() == low + 1
    assert ports.allocate() == low + 2
    assert ports.allocate() == first
