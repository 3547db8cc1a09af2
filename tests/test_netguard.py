"""The tests' network guard: every way out is refused and recorded, in this process and
in subprocesses, and nothing a test does to monkeypatch can lift it."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

# Documentation address (TEST-NET-1, RFC 5737): never routed, so a hole in the guard
# shows as an attempt, not as a real connection.
OUTSIDE = ("192.0.2.1", 80)


@pytest.mark.offline_attempt
@pytest.mark.parametrize("attempt", [
    lambda: socket.getaddrinfo("example.org", 80),
    lambda: socket.gethostbyname("example.org"),
    lambda: socket.gethostbyname_ex("example.org"),
    lambda: socket.create_connection(OUTSIDE, timeout=1),
    lambda: socket.socket().connect(OUTSIDE),
    lambda: socket.socket().connect_ex(OUTSIDE),
    lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", OUTSIDE),
    lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", 0, OUTSIDE),
], ids=["getaddrinfo", "gethostbyname", "gethostbyname_ex", "create_connection",
        "connect", "connect_ex", "sendto", "sendto_flags"])
def test_every_way_out_is_refused_and_recorded(attempt, no_network):
    with pytest.raises(OSError, match="network disabled in tests"):
        attempt()
    assert len(no_network) == 1


@pytest.mark.offline_attempt
def test_monkeypatch_undo_leaves_the_guard_in_place(monkeypatch, no_network):
    monkeypatch.setattr(socket, "getaddrinfo", socket.getaddrinfo)
    monkeypatch.undo()
    with pytest.raises(OSError):
        socket.create_connection(OUTSIDE, timeout=1)
    assert len(no_network) == 1


@pytest.mark.offline_attempt
def test_an_attempt_a_subprocess_swallows_reaches_the_test(no_network):
    swallow = ("import socket\ntry:\n    socket.create_connection(('192.0.2.1', 80), 1)\n"
               "except OSError:\n    pass\n")
    subprocess.run([sys.executable, "-c", swallow], check=True, timeout=60)
    assert [line.split(": ", 1)[1] for line in no_network] == [
        "connect to ('192.0.2.1', 80)"]


def test_loopback_stays_open(no_network):
    server = socket.create_server(("127.0.0.1", 0))
    with server, socket.create_connection(server.getsockname(), timeout=5):
        pass
    assert socket.getaddrinfo("localhost", 80)
    assert no_network == []
