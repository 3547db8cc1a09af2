"""``pipeline/``'s module names say which module they are: none is used twice.

Two ``report.py`` in one package make every traceback, ``grep`` and editor tab ambiguous,
and a reader guesses which one an import means; a module named like a subpackage
(``gating/runs.py`` beside ``runs/``) reads as that package.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from helpers import ROOT

PACKAGE = ROOT / "pipeline"


def shared_names(package: Path) -> dict[str, list[str]]:
    """Each module file name (``__init__.py`` aside) or subpackage name used more than
    once under ``package``, with where (relative to its parent)."""
    where: dict[str, list[str]] = defaultdict(list)
    for path in sorted(package.rglob("*.py")):
        if path.name != "__init__.py":
            where[path.stem].append(path.relative_to(package.parent).as_posix())
    for init in sorted(package.rglob("*/__init__.py")):
        where[init.parent.name].append(init.parent.relative_to(package.parent).as_posix() + "/")
    return {name: places for name, places in where.items() if len(places) > 1}


def test_no_two_modules_share_a_name():
    assert len(list(PACKAGE.rglob("*.py"))) > 100  # the walk found the package
    shared = shared_names(PACKAGE)
    assert shared == {}, "rename one of each (git mv): " + "; ".join(
        f"{name}: {', '.join(places)}" for name, places in sorted(shared.items()))


def test_a_shared_name_is_named(tmp_path):
    """The check itself: two ``report.py`` and a module named like a subpackage are each
    reported with their places; ``__init__.py`` files and distinct names are not."""
    for name in ("core/__init__.py", "core/report.py", "evaluation/__init__.py",
                 "evaluation/report.py", "runs/__init__.py", "gating/__init__.py",
                 "gating/runs.py", "gating/lock.py", "__init__.py"):
        path = tmp_path / "pipeline" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    assert shared_names(tmp_path / "pipeline") == {
        "report": ["pipeline/core/report.py", "pipeline/evaluation/report.py"],
        "runs": ["pipeline/gating/runs.py", "pipeline/runs/"],
    }


def unlisted(init: Path) -> list[str]:
    """The modules and subpackages of ``init``'s package its docstring does not name, as
    ``name`` or :mod:`.name`."""
    doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
    package = init.parent
    names = sorted([p.stem for p in package.glob("*.py") if p.name != "__init__.py"]
                   + [p.parent.name for p in package.glob("*/__init__.py")])
    return [name for name in names if f"``{name}``" not in doc and f":mod:`.{name}`" not in doc]


def test_every_package_docstring_names_its_modules():
    """A reader opening a package's ``__init__.py`` learns every module in it, so a module
    added, moved or renamed is said there too."""
    found = {init.parent.relative_to(ROOT).as_posix(): unlisted(init)
             for init in sorted(PACKAGE.rglob("*/__init__.py"))}
    assert len(found) > 10
    missing = {package: names for package, names in found.items() if names}
    assert missing == {}, "name these in their package's docstring: " + "; ".join(
        f"{package}: {', '.join(names)}" for package, names in missing.items())
