"""Loaded by every Python process the tests start (tests/netguard is on PYTHONPATH):
no network beyond loopback, and each refused attempt logged to $NETGUARD_LOG so the
test that started the process sees it even when the process swallowed the error; and,
when a test asks ($PROCLOG), when the process started and ended."""

import netguard
import proclog

netguard.install()
proclog.install()
