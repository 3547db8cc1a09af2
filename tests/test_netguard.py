"""The tests' network guard: every way out is refused and recorded, in this process and
in subprocesses, and nothing a test does to monkeypatch can lift it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

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


# A suite of its own, run with this project's conftest and guard: a module fixture whose
# teardown tries to connect and swallows the refusal, or a module that tries on import.
_SUITE = {
    "test_teardown.py": '''
import os, socket, pytest

@pytest.fixture(scope="module")
def service():
    yield "up"
    if "teardown" in os.environ.get("ATTEMPT", ""):
        try:
            socket.create_connection(("192.0.2.1", 80), timeout=1)
        except OSError:
            pass

def test_one(service):
    assert service == "up"

def test_two(service):
    assert service == "up"
''',
    "test_import.py": '''
import os, socket

if "import" in os.environ.get("ATTEMPT", ""):
    try:
        socket.create_connection(("192.0.2.1", 80), timeout=1)
    except OSError:
        pass

def test_three():
    assert True
''',
}


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    """The suite beside copies of tests/conftest.py, helpers.py and netguard/."""
    here = Path(__file__).resolve().parent
    folder = tmp_path_factory.mktemp("suite")
    for name in ("conftest.py", "helpers.py"):
        shutil.copy(here / name, folder / name)
    shutil.copytree(here / "netguard", folder / "netguard",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name, text in _SUITE.items():
        (folder / name).write_text(text)
    return folder


def _run(folder, workers: str, attempt: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ATTEMPT": attempt}
    return subprocess.run([sys.executable, "-m", "pytest", "-n", workers, "--dist", "loadfile",
                           "-p", "no:cacheprovider", "-q", "-o", "addopts=", str(folder)],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("workers, attempt", [("2", "teardown"), ("0", "teardown"),
                                              ("2", "import")])
def test_an_attempt_a_fixture_teardown_or_an_import_swallows_fails_the_run(suite, workers,
                                                                            attempt):
    """Under pytest-xdist (the default options) too: the tests themselves pass, and the
    run fails naming the attempt and where it was made."""
    done = _run(suite, workers, attempt)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "connect to ('192.0.2.1', 80)" in out
    if attempt == "teardown":
        assert "3 passed, 1 error" in out, out
        assert ("network touched while tearing down fixtures after test_teardown.py::test_two: "
                "[\"pid ") in out, out
    else:
        assert "3 passed in" in out, out
        assert "network touched outside any test: [\"pid " in out, out
