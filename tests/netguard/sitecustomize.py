"""Loaded by every Python process the tests start (via PYTHONPATH): no network.

Any attempt to resolve a name or connect outside loopback raises at once, so
a stage that would hang on an offline machine, or leak out of CI, fails here.
"""

import socket

_LOCAL = ("localhost", "127.0.0.1", "::1", None, "")


def _blocked(host):
    return str(host) not in _LOCAL and not str(host).startswith("127.")


_getaddrinfo = socket.getaddrinfo
_connect = socket.socket.connect


def _guarded_getaddrinfo(host, *args, **kwargs):
    if _blocked(host):
        raise OSError(f"network disabled in tests: tried to resolve {host!r}")
    return _getaddrinfo(host, *args, **kwargs)


def _guarded_connect(self, address):
    if isinstance(address, tuple) and _blocked(address[0]):
        raise OSError(f"network disabled in tests: tried to connect to {address!r}")
    return _connect(self, address)


socket.getaddrinfo = _guarded_getaddrinfo
socket.socket.connect = _guarded_connect
