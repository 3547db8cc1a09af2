"""Shared fixtures: no network, quiet TensorFlow, the repository root."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from helpers import ROOT

NETGUARD = Path(__file__).resolve().parent / "netguard"

# Subprocesses (stage scripts, dvc) load tests/netguard/sitecustomize.py.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(NETGUARD), str(ROOT), os.environ.get("PYTHONPATH", "")) if p
)
os.environ["DVC_NO_ANALYTICS"] = "1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The end-to-end modules first: pytest-xdist (--dist loadfile --no-loadscope-reorder)
    then starts each on a worker of its own at once, and the unit tests fill in after."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is None)  # stable


@pytest.fixture(autouse=True)
def no_network(monkeypatch, request):
    """Fail any test that tries to reach beyond loopback.

    Attempts are recorded as well as refused, so code that catches the error
    and falls back still fails the test, unless the test is marked
    ``offline_attempt`` (it checks the offline behaviour itself).
    """
    attempts: list[str] = []
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect

    def local(host) -> bool:
        return str(host) in ("localhost", "::1", "None", "") or str(host).startswith("127.")

    def getaddrinfo(host, *args, **kwargs):
        if not local(host):
            attempts.append(f"resolve {host}")
            raise OSError(f"network disabled in tests: tried to resolve {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self, address):
        if isinstance(address, tuple) and not local(address[0]):
            attempts.append(f"connect {address}")
            raise OSError(f"network disabled in tests: tried to connect to {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    yield attempts
    if not request.node.get_closest_marker("offline_attempt"):
        assert not attempts, f"test touched the network: {attempts}"


@pytest.fixture
def keras_home(tmp_path, monkeypatch) -> Path:
    """An empty Keras cache, so no test sees (or fills) the user's ~/.keras."""
    home = tmp_path / "keras_home"
    home.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home
