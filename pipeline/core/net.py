"""The network as the pipeline uses it: rarely, with a short timeout, never silently."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

# Seconds without a byte before a download gives up: an offline machine fails in
# seconds with a message naming the file to place, instead of hanging.
DOWNLOAD_TIMEOUT = 15


@contextlib.contextmanager
def socket_timeout(seconds: float = DOWNLOAD_TIMEOUT) -> Iterator[None]:
    """Give calls without a timeout of their own (``urlretrieve``, so Keras' ``get_file``) one."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)
