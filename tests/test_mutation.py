"""The mutation-testing driver (.ci/mutation.py) and pyproject's [tool.mutmut] agree."""

from __future__ import annotations

import importlib.util
import tomllib

from helpers import ROOT


def _driver():
    spec = importlib.util.spec_from_file_location("mutation", ROOT / ".ci" / "mutation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pyproject_mutates_exactly_the_modules_the_driver_scores():
    """A bare `mutmut run` covers the same files as the driver: none left out, none extra."""
    driver = _driver()
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(settings["tool"]["mutmut"]["only_mutate"])
    scored = {file for module in driver.MODULES.values() for file in module["files"]}
    assert listed == scored, (f"only in pyproject.toml: {sorted(listed - scored)}; "
                              f"only in .ci/mutation.py: {sorted(scored - listed)}")
    missing = sorted(f for f in scored if not (ROOT / f).is_file())
    assert not missing, f"mutation modules name files that do not exist: {missing}"


def test_every_listed_equivalent_mutant_names_a_scored_module():
    """An equivalent mutant listed in docs/development.md belongs to a scored file, so a
    moved or renamed module cannot leave stale excuses behind."""
    driver = _driver()
    prefixes = tuple(f[:-3].replace("/", ".") + "." for module in driver.MODULES.values()
                     for f in module["files"])
    listed = driver.equivalent()
    assert listed, "docs/development.md lists no equivalent mutant: the section moved?"
    stale = sorted(name for name in listed if not name.startswith(prefixes))
    assert not stale, f"listed as equivalent but in no scored file: {stale}"
