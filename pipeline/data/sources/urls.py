"""An http(s) ``data.source``: how it is keyed and authenticated, never showing its secret.

A URL may carry credentials (``https://user:password@host/d.tgz``). The password is
sent to the server and nowhere else: every message, log line, record
(``data/source.json``, ``data/source_fingerprint.json``, ``download.json``, the model
card) and file name uses :func:`pipeline.core.net.redacted`
(``https://user:***@host/d.tgz``). A user name alone may be a token
(``https://<token>@host``), so it is hidden too (``***@``).

The download cache is keyed by the URL without its password (:func:`cache_key`): a
changed password reuses the download, two users of one URL each have their own.
Without credentials in the URL, ``~/.netrc`` (or ``$NETRC``) is read for the host, as
curl, wget and pip do: the way to keep a password out of params.yaml, which git and
dvc.lock record.
"""

from __future__ import annotations

import netrc
import os
import urllib.parse
import urllib.request

from pipeline.core.net import redacted, split_userinfo, with_userinfo
from pipeline.data.source_errors import SourceError

SCHEMES = ("http", "https")


def is_url(spec: str) -> bool:
    """Whether ``data.source`` is an http(s) URL."""
    return urllib.parse.urlsplit(spec).scheme.lower() in SCHEMES


def check_scheme(spec: str) -> None:
    """SourceError for a URL of a scheme the pipeline cannot download."""
    if "://" in spec and not is_url(spec):
        raise SourceError(f"data.source: {redacted(spec)!r}: only http(s) URLs are supported")


def has_credentials(spec: str) -> bool:
    """Whether ``data.source`` is a URL carrying a password or a user name (maybe a token)."""
    return "://" in spec and split_userinfo(spec)[1] is not None


def cache_key(url: str) -> str:
    """The URL that names its download in the cache: without the password."""
    parts, user, password = split_userinfo(url)
    return url if password is None else with_userinfo(parts, user)


def bare(url: str) -> str:
    """The URL without credentials: what is requested (they go in a header)."""
    parts, user, _ = split_userinfo(url)
    return url if user is None else with_userinfo(parts, None)


def opener(url: str) -> urllib.request.OpenerDirector:
    """An opener sending ``url``'s credentials (from the URL, else ``~/.netrc``) by HTTP
    Basic authentication to its own host only: a redirect to another host gets none."""
    parts, user, password = split_userinfo(url)
    if user is not None:
        login = (urllib.parse.unquote(user), urllib.parse.unquote(password or ""))
    else:
        login = _netrc_login(parts.hostname, url)
    if login is None:
        return urllib.request.build_opener()
    origin = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/"
    passwords = urllib.request.HTTPPasswordMgrWithPriorAuth()
    passwords.add_password(None, origin, *login, is_authenticated=True)  # sent up front
    return urllib.request.build_opener(urllib.request.HTTPBasicAuthHandler(passwords))


def _netrc_login(host: str | None, url: str) -> tuple[str, str] | None:
    path = os.environ.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    if not os.path.isfile(path):
        return None
    try:  # the default file is refused if others may read it, or own it
        entry = netrc.netrc(os.environ.get("NETRC") or None).authenticators(host)
    except netrc.NetrcParseError as err:  # its message may quote a password: not shown
        why = ("others may read it: chmod 600" if "too permissive" in err.msg
               else "another user owns it: chown it" if "does not match" in err.msg
               else f"line {err.lineno} cannot be parsed")
    except UnicodeDecodeError:  # read as UTF-8, then in the locale's encoding: neither
        why = "it is not UTF-8 text"
    except OSError as err:
        why = err.strerror
    else:
        return (entry[0], entry[2] or "") if entry else None
    raise SourceError(f"data.source: {redacted(url)}: cannot use the credentials in {path} "
                      f"({why})")
