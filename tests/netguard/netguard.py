"""No network beyond loopback, in the test process and every Python process it starts.

`install()` patches the socket module once per process: name lookups (getaddrinfo,
gethostbyname, gethostbyname_ex) and connections (socket.connect, connect_ex, sendto,
create_connection) outside loopback raise OSError. Each refused attempt is also appended
as one line to the file named by $NETGUARD_LOG, so an attempt that the code under test
catches and swallows, even in a subprocess, still reaches the test that caused it.
"""

from __future__ import annotations

import os
import socket

LOG_ENV = "NETGUARD_LOG"
_LOCAL_NAMES = {"localhost", "::1", "none", "", "0.0.0.0"}


def is_local(host) -> bool:
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    host = str(host).strip("[]").lower()
    return host in _LOCAL_NAMES or host.startswith("127.") or host.endswith(".localhost")


def _refuse(what: str, target) -> None:
    message = f"network disabled in tests: tried to {what} {target!r}"
    path = os.environ.get(LOG_ENV)
    if path:
        try:  # one short line, appended: safe from several processes at once
            with open(path, "a", encoding="utf-8") as log:
                log.write(f"pid {os.getpid()}: {what} {target!r}\n")
        except OSError:
            pass
    raise OSError(message)


def _check_address(what: str, address) -> None:
    if isinstance(address, tuple) and address and not is_local(address[0]):
        _refuse(what, address)


def install() -> None:
    """Patch the socket module (idempotent: a second call changes nothing)."""
    if getattr(socket, "_netguard_installed", False):
        return
    real_getaddrinfo = socket.getaddrinfo
    real_gethostbyname = socket.gethostbyname
    real_gethostbyname_ex = socket.gethostbyname_ex
    real_create_connection = socket.create_connection
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_sendto = socket.socket.sendto

    def getaddrinfo(host, *args, **kwargs):
        if not is_local(host):
            _refuse("resolve", host)
        return real_getaddrinfo(host, *args, **kwargs)

    def gethostbyname(host):
        if not is_local(host):
            _refuse("resolve", host)
        return real_gethostbyname(host)

    def gethostbyname_ex(host):
        if not is_local(host):
            _refuse("resolve", host)
        return real_gethostbyname_ex(host)

    def create_connection(address, *args, **kwargs):
        _check_address("connect to", address)
        return real_create_connection(address, *args, **kwargs)

    def connect(self, address):
        _check_address("connect to", address)
        return real_connect(self, address)

    def connect_ex(self, address):
        _check_address("connect to", address)
        return real_connect_ex(self, address)

    def sendto(self, data, *args):
        _check_address("send to", args[-1] if args else None)
        return real_sendto(self, data, *args)

    socket.getaddrinfo = getaddrinfo
    socket.gethostbyname = gethostbyname
    socket.gethostbyname_ex = gethostbyname_ex
    socket.create_connection = create_connection
    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.socket.sendto = sendto
    socket._netguard_installed = True


def attempts_since(offset: int) -> tuple[list[str], int]:
    """The attempts logged after byte `offset` of $NETGUARD_LOG, and the new end."""
    path = os.environ.get(LOG_ENV)
    if not path or not os.path.exists(path):
        return [], offset
    with open(path, "rb") as log:
        log.seek(offset)
        data = log.read()
    return data.decode("utf-8", errors="replace").splitlines(), offset + len(data)
