"""Shared fixtures: no network, quiet TensorFlow, the repository root."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest
from helpers import ROOT

NETGUARD = Path(__file__).resolve().parent / "netguard"
sys.path.insert(0, str(NETGUARD))
import netguard  # noqa: E402  (lives in tests/netguard, beside sitecustomize.py)

from pipeline.core import logs  # noqa: E402
from pipeline.core.process_setup import VERBOSE_ENV  # noqa: E402

_OFFSET = pytest.StashKey[int]()

# Subprocesses (stage scripts, dvc) load tests/netguard/sitecustomize.py.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(NETGUARD), str(ROOT), os.environ.get("PYTHONPATH", "")) if p
)
os.environ["DVC_NO_ANALYTICS"] = "1"


def pytest_configure(config: pytest.Config) -> None:
    """One guard for the whole session, before any fixture of any scope, and one log of
    refused attempts per test process (each xdist worker is one), which subprocesses
    inherit through the environment."""
    handle, log = tempfile.mkstemp(prefix="netguard-", suffix=".log")
    os.close(handle)
    os.environ[netguard.LOG_ENV] = log
    netguard.install()


def pytest_unconfigure(config: pytest.Config) -> None:
    Path(os.environ.get(netguard.LOG_ENV, "")).unlink(missing_ok=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The end-to-end modules first: pytest-xdist (--dist loadfile --no-loadscope-reorder)
    then starts each on a worker of its own at once, and the unit tests fill in after."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is None)  # stable


class Attempts:
    """The refused network attempts of the running test so far (its own process and
    every subprocess it started), read afresh from the log on each use."""

    def __init__(self, offset: int):
        self.offset = offset

    def lines(self) -> list[str]:
        return netguard.attempts_since(self.offset)[0]

    def __iter__(self):
        return iter(self.lines())

    def __len__(self) -> int:
        return len(self.lines())

    def __eq__(self, other) -> bool:
        return self.lines() == list(other)

    def __repr__(self) -> str:
        return repr(self.lines())


_log_offset = 0  # the end of the log that tests have already claimed
_stray: list[str] = []  # attempts made outside any test and its teardown (at collection)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Mark where this test's attempts start, before any fixture (of any scope) runs."""
    global _log_offset
    stray, _log_offset = netguard.attempts_since(_log_offset)
    _stray.extend(stray)
    item.stash[_OFFSET] = _log_offset


@pytest.fixture(autouse=True)
def no_network(request) -> Attempts:
    """Fail any test that tried to reach beyond loopback, even if the error was caught
    and swallowed (here or in a subprocess), unless the test is marked ``offline_attempt``
    (it checks the offline behaviour itself). The guard itself is installed once per
    process (pytest_configure, tests/netguard/sitecustomize.py), so monkeypatch.undo()
    cannot remove it."""
    global _log_offset
    attempts = Attempts(request.node.stash.get(_OFFSET, _log_offset))
    yield attempts
    seen, _log_offset = netguard.attempts_since(attempts.offset)
    if not request.node.get_closest_marker("offline_attempt"):
        assert not seen, f"test touched the network: {seen}"


@pytest.fixture(autouse=True)
def logging_as_the_entry_points() -> None:
    """Route the pipeline's loggers as every entry point does (pipeline.core.logs), so a
    test calling library code in-process sees on stdout and stderr what a user would.
    An entry point run with -v earlier in this worker left -v in the environment (for its
    children): each test starts without it."""
    os.environ.pop(VERBOSE_ENV, None)
    logs.configure(logs.NORMAL)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    """Fail the teardown of the test after which a fixture of a wider scope (a module's,
    a session's) tried to reach the network while it was torn down: an error reported
    like any other, so pytest-xdist's workers pass it on and the run fails."""
    global _log_offset
    result = yield  # a teardown that raised is reported already; its attempts stay logged
    stray, _log_offset = netguard.attempts_since(_log_offset)
    if stray:
        pytest.fail(f"network touched while tearing down fixtures after {item.nodeid}: "
                    f"{stray}", pytrace=False)
    return result


_STRAY_KEY = "netguard_stray"
_stray_on_workers: list[str] = []  # the controller's: what each xdist worker sent back


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Attempts outside any test (at collection, say) fail the session; an xdist worker
    hands its own to the controller, whose exit status is the run's."""
    stray, _ = netguard.attempts_since(_log_offset)
    stray = _stray + stray
    if hasattr(session.config, "workeroutput"):  # an xdist worker
        session.config.workeroutput[_STRAY_KEY] = stray
    stray = stray + _stray_on_workers
    if stray:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print(f"\nnetwork touched outside any test: {stray}", file=sys.stderr)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """pytest-xdist, on the controller: a worker finished; keep the attempts it saw
    outside any test."""
    _stray_on_workers.extend(getattr(node, "workeroutput", {}).get(_STRAY_KEY, []))


@pytest.fixture
def keras_home(tmp_path, monkeypatch) -> Path:
    """An empty Keras cache, so no test sees (or fills) the user's ~/.keras."""
    home = tmp_path / "keras_home"
    home.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> None:
    """xdist sends each report to the controller as UTF-8: a failure or a capture that
    holds a name which is not UTF-8 (a surrogate escape) would crash the whole session
    (INTERNALERROR) instead of failing one test, so such text is sent escaped."""
    report = (yield).get_result()

    def utf8(text: str) -> str:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")

    if report.longrepr is not None:
        text = str(report.longrepr)
        if utf8(text) != text:
            report.longrepr = utf8(text)
    report.sections = [(title, utf8(body)) for title, body in report.sections]
