"""The network as the pipeline uses it: rarely, with a short timeout, never silently, never
showing a password."""

from __future__ import annotations

import contextlib
import socket
import urllib.parse
from collections.abc import Iterator

HIDDEN = "***"  # in place of a URL's password, or of a user name alone (maybe a token)

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


def split_userinfo(url: str) -> tuple[urllib.parse.SplitResult, str | None, str | None]:
    """(the URL's parts, its user name, its password), both still percent-encoded; None
    for what it does not have."""
    parts = urllib.parse.urlsplit(url)
    userinfo, at, _ = parts.netloc.rpartition("@")
    if not at:
        return parts, None, None
    user, colon, password = userinfo.partition(":")
    return parts, user, password if colon else None


def with_userinfo(parts: urllib.parse.SplitResult, userinfo: str | None) -> str:
    """The URL of ``parts`` with ``userinfo`` (``user:password``) before its host, or none."""
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{userinfo}@{host}" if userinfo is not None else host
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def redacted(spec: str) -> str:
    """``spec`` as it may be printed and stored: a URL's password replaced by ``***``
    (``https://user:***@host/d.tgz``), a user name alone too (it may be a token:
    ``https://***@host``); anything else as it is."""
    if "://" not in spec:
        return spec
    parts, user, password = split_userinfo(spec)
    if user is None:
        return spec
    return with_userinfo(parts, f"{user}:{HIDDEN}" if password is not None else HIDDEN)
