"""requirements.lock matches pyproject.toml: every requirement (the dependencies and the
dev extra) is pinned, with hashes, at a version inside its range, and nothing else is
locked as a direct requirement. Refresh the lock with the command in its first lines
(docs/development.md)."""

from __future__ import annotations

import re
import tomllib

from helpers import ROOT
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

LOCK = ROOT / "requirements.lock"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def declared() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = project["dependencies"] + project["optional-dependencies"]["dev"]
    return {canonicalize_name(r.name): r for r in map(Requirement, lines)}


def locked() -> tuple[dict[str, str], set[str], set[str]]:
    """Pins by name, the names with a hash, the names locked because pyproject asks."""
    pins, hashed, direct = {}, set(), set()
    name = None
    for line in LOCK.read_text().splitlines():
        if match := PIN.match(line):
            name = canonicalize_name(match[1])
            pins[name] = match[2].rstrip(" \\")
        elif name and "--hash=sha256:" in line:
            hashed.add(name)
        elif name and "transfer-pipeline (pyproject.toml)" in line:
            direct.add(name)
    return pins, hashed, direct


def test_every_requirement_is_pinned_inside_its_range_with_hashes():
    pins, hashed, _ = locked()
    for name, requirement in declared().items():
        assert name in pins, f"{name} is in pyproject.toml but not in requirements.lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {name}=={pins[name]}, outside pyproject's "
            f"{requirement.specifier}")
    assert set(pins) == hashed, f"pins without a hash: {sorted(set(pins) - hashed)}"


def test_the_lock_holds_no_requirement_pyproject_dropped():
    _, _, direct = locked()
    assert direct == set(declared()), (
        f"refresh requirements.lock: direct requirements differ from pyproject.toml by "
        f"{sorted(direct ^ set(declared()))}")
