"""dvc.yaml's code ``deps`` are exactly the first-party files each stage runs.

DVC re-runs a stage when one of its ``deps`` changes, and only then: a module that
a stage imports but does not list would let ``dvc repro`` serve a stale result, and
a module listed but not run re-runs the stage for nothing. This follows each stage
script's imports (every ``import`` statement in a file, including those inside
functions, since the stages import heavy modules lazily) through the ``pipeline``
package, with the ``__init__.py`` of every package on the way, and compares them
with the stage's ``deps``.
"""

from __future__ import annotations

import ast
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from helpers import ROOT

PACKAGE = "pipeline"


def _module_file(root: Path, dotted: str) -> Path | None:
    """``pipeline.data.images`` -> pipeline/data/images.py (or the package's __init__.py)."""
    base = root.joinpath(*dotted.split("."))
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _imported(root: Path, file: Path) -> set[str]:
    """First-party module names a file imports, anywhere in it."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"), str(file))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            # `from pipeline.data import images`: images is a module, not a name.
            names.update(f"{node.module}.{a.name}" for a in node.names
                         if _module_file(root, f"{node.module}.{a.name}") is not None)
    return {n for n in names if n == PACKAGE or n.startswith(PACKAGE + ".")}


def imports(script: Path, root: Path = Path(".")) -> set[Path]:
    """Every first-party file ``script`` runs: itself, the modules it imports directly or
    transitively, and the ``__init__.py`` of each package on the way (Python runs them)."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        file = todo.pop()
        if file in seen:
            continue
        seen.add(file)
        for name in _imported(root, root / file if not file.is_absolute() else file):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # pipeline, pipeline.data, pipeline.data.images
                found = _module_file(root, ".".join(parts[:i]))
                if found is not None:
                    todo.append(found.relative_to(root) if found.is_absolute() else found)
    return seen


@dataclass(frozen=True)
class Stage:
    name: str  # as in dvc.yaml (a foreach group by its group name)
    script: Path
    deps: tuple[str, ...]


def stages(dvc_yaml: Path = Path("dvc.yaml")) -> list[Stage]:
    """The stages of dvc.yaml that run a Python script, with their declared deps."""
    out = []
    for name, body in yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["stages"].items():
        body = body.get("do", body)  # foreach: the template
        words = shlex.split(body["cmd"])
        script = next((w for w in words if w.endswith(".py")), None)
        if script is not None:
            out.append(Stage(name, Path(script), tuple(str(d) for d in body.get("deps", []))))
    return out


def _covered(file: Path, deps: tuple[str, ...]) -> bool:
    return any(file == Path(d) or Path(d) in file.parents for d in deps)


def problems(root: Path = Path(".")) -> list[str]:
    """One line per stage and file: an imported module the deps miss, or a code dep (a
    ``.py`` file, or a folder of them) that the stage does not run."""
    lines = []
    for stage in stages(root / "dvc.yaml"):
        ran = imports(stage.script, root)
        for file in sorted(ran):
            if not _covered(file, stage.deps):
                lines.append(f"{stage.name}: runs {file.as_posix()}, which is not in its deps")
        for dep in stage.deps:
            path = Path(dep)
            code = path.suffix == ".py" or (
                (root / path).is_dir() and any((root / path).rglob("*.py")))
            if code and not any(file == path or path in file.parents for file in ran):
                lines.append(f"{stage.name}: lists {dep}, which it does not run "
                             "(a change there would re-run it for nothing)")
    return lines


def test_every_stage_lists_exactly_the_code_it_runs():
    found = problems(ROOT)
    assert not found, "dvc.yaml deps out of date:\n" + "\n".join(found)


def _copy_with(tmp_path: Path, old: str, new: str) -> Path:
    """The project's code in ``tmp_path``, with ``old`` replaced by ``new`` in dvc.yaml."""
    for name in ("pipeline", "stages"):
        shutil.copytree(ROOT / name, tmp_path / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    text = (ROOT / "dvc.yaml").read_text(encoding="utf-8")
    assert old in text
    (tmp_path / "dvc.yaml").write_text(text.replace(old, new, 1), encoding="utf-8")
    return tmp_path


def test_a_missing_dep_line_is_named(tmp_path):
    """Delete one dep line from a copy of the project: the check names stage and file."""
    _copy_with(tmp_path, "      - pipeline/models/head.py\n", "")
    assert problems(tmp_path) == [
        "train_head: runs pipeline/models/head.py, which is not in its deps"]


def test_a_dep_on_code_the_stage_never_runs_is_named(tmp_path):
    line = "      - pipeline/data/sample.py\n"
    _copy_with(tmp_path, line, line + "      - pipeline/evaluation/scores.py\n")
    assert problems(tmp_path) == [
        "sample: lists pipeline/evaluation/scores.py, which it does not run "
        "(a change there would re-run it for nothing)"]


def test_imports_inside_functions_count():
    ran = imports(Path("stages/features.py"), ROOT)
    # stages/features.py imports the backbone inside main(), to start TensorFlow late.
    assert Path("pipeline/models/backbone.py") in ran
    assert Path("pipeline/data/__init__.py") in ran  # a package on the way


def test_core_imports_nothing_else_of_the_package():
    """pipeline.core is the bottom layer: params, paths and io are used everywhere, so an
    import of data, models or training from it would drag them into every stage."""
    upward = {f"{file.relative_to(ROOT).as_posix()} imports {name}"
              for file in sorted((ROOT / "pipeline" / "core").glob("*.py"))
              for name in _imported(ROOT, file)
              if name != PACKAGE and not name.startswith(f"{PACKAGE}.core")}
    assert not upward, upward


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # DVC's own use of pygtrie
def test_every_stage_runs_after_the_params_check():
    """DVC runs a stage's dependencies first and stops at the first failure: with every stage
    downstream of `params`, an invalid params.yaml stops `dvc repro` (of any target) before
    any stage has removed an output. A stage added without that dependency fails here."""
    import networkx as nx
    from dvc.repo import Repo

    with Repo(str(ROOT)) as repo:
        graph = repo.index.graph  # an edge runs from a stage to a stage it depends on
        check = next(s for s in graph.nodes if s.addressing == "params")
        loose = sorted(s.addressing for s in graph.nodes
                       if s is not check and check not in nx.descendants(graph, s))
        assert len(graph.nodes) > 10
        persist = {o.def_path: o.persist for s in graph.nodes for o in s.outs}
    assert not loose, f"stages that can start before the params check: {loose}"
    # The outputs of the check and of the always-changed checks are never removed by DVC
    # before their stage runs: a check that refuses leaves the previous record.
    assert all(persist[p] for p in ("data/params_checked.json", "data/source_fingerprint.json",
                                    "data/weights.json", "data/scratch_weights")), persist
