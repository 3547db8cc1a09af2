"""dvc.yaml's code ``deps`` cover every first-party file each stage runs, by package.

DVC re-runs a stage when one of its ``deps`` changes, and only then: a module that a
stage imports outside its deps would let ``dvc repro`` serve a stale result. A stage
lists its script and the ``pipeline/`` folders it imports from (or a lone module of a
busy package), so a code dep may cover modules the stage does not run; but each listed
folder or file must hold one it does, or the stage re-runs for nothing. This follows
each stage script's imports (every ``import`` statement in a file, including those
inside functions, since the stages import heavy modules lazily) through the
``pipeline`` package, with the ``__init__.py`` of every package on the way, adds the
data files those modules name (a recipe's YAML, the expectation suites), and checks
them against the stage's ``deps``. .dvcignore keeps bytecode out of a folder's hash.
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


def _strings(file: Path) -> set[str]:
    return {node.value for node in ast.walk(ast.parse(file.read_text(encoding="utf-8")))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def data_files(ran: set[Path], root: Path = Path(".")) -> set[Path]:
    """The files of the package that are not Python (a recipe's YAML, the expectation
    suites) that a module in ``ran`` names, by its own name or its folder's
    (``with_name("resnet9_recipe.yaml")``, ``parents[1] / "suites"``), from the same
    package: those modules read them when they run."""
    found = set()
    for data in (root / PACKAGE).rglob("*"):
        if not data.is_file() or data.suffix in (".py", ".pyc") or "__pycache__" in data.parts:
            continue
        package = next(p for p in data.parents if (p / "__init__.py").is_file())
        names = {data.name, data.parent.name} if data.parent != package else {data.name}
        if any(package in (root / m).parents and names & _strings(root / m) for m in ran):
            found.add(data.relative_to(root))
    return found


def problems(root: Path = Path(".")) -> list[str]:
    """One line per stage and file: a module it runs, or a data file it reads, that the
    deps miss; or a code dep (a ``.py`` file, or a folder of them) holding nothing the
    stage runs."""
    lines = []
    for stage in stages(root / "dvc.yaml"):
        ran = imports(stage.script, root)
        for file in sorted(ran):
            if not _covered(file, stage.deps):
                lines.append(f"{stage.name}: runs {file.as_posix()}, which is not in its deps")
        for file in sorted(data_files(ran, root)):
            if not _covered(file, stage.deps):
                lines.append(f"{stage.name}: reads {file.as_posix()}, which is not in its deps")
        for dep in stage.deps:
            path = Path(dep)
            code = path.suffix == ".py" or (
                (root / path).is_dir() and any((root / path).rglob("*.py")))
            if code and not any(file == path or path in file.parents for file in ran):
                lines.append(f"{stage.name}: lists {dep}, which it does not run "
                             "(a change there would re-run it for nothing)")
    return lines


def test_every_stage_depends_on_the_code_it_runs_and_no_more():
    found = problems(ROOT)
    assert not found, "dvc.yaml deps out of date:\n" + "\n".join(found)


def _copy_with(tmp_path: Path, stage: str, drop: str, add: tuple[str, ...] = ()) -> Path:
    """The project's code in ``tmp_path``, with ``stage``'s dep ``drop`` replaced by ``add``
    in dvc.yaml."""
    for name in ("pipeline", "stages"):
        shutil.copytree(ROOT / name, tmp_path / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    pipeline = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))
    body = pipeline["stages"][stage]
    deps = body.get("do", body)["deps"]
    at = deps.index(drop)
    body.get("do", body)["deps"] = deps[:at] + list(add) + deps[at + 1:]
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(pipeline), encoding="utf-8")
    return tmp_path


def test_a_package_missing_from_the_deps_is_named_with_each_module(tmp_path):
    _copy_with(tmp_path, "train_head", "pipeline/training")
    found = problems(tmp_path)
    assert "train_head: runs pipeline/training/fit.py, which is not in its deps" in found
    assert all(line.startswith("train_head: runs pipeline/training/") for line in found), found


def test_a_lone_module_missing_from_the_deps_is_named(tmp_path):
    _copy_with(tmp_path, "features", "pipeline/runs/placement.py")
    assert problems(tmp_path) == [
        "features: runs pipeline/runs/placement.py, which is not in its deps"]


def test_a_package_the_stage_never_runs_is_named(tmp_path):
    _copy_with(tmp_path, "sample", "pipeline/data", ("pipeline/data", "pipeline/evaluation"))
    assert problems(tmp_path) == [
        "sample: lists pipeline/evaluation, which it does not run "
        "(a change there would re-run it for nothing)"]


def test_a_data_file_a_module_reads_must_be_covered(tmp_path):
    """scratch@ builds ResNet-9 from pipeline/models/resnet9_recipe.yaml: listing the
    models it runs one by one, not the folder, leaves the recipe out."""
    modules = sorted(f.as_posix() for f in imports(Path("stages/scratch.py"), ROOT)
                     if f.parent == Path("pipeline/models"))
    assert "pipeline/models/resnet9.py" in modules
    _copy_with(tmp_path, "scratch", "pipeline/models", tuple(modules))
    assert problems(tmp_path) == [
        "scratch: reads pipeline/models/resnet9_recipe.yaml, which is not in its deps"]


def test_the_suites_are_data_of_the_validation_modules():
    ran = imports(Path("stages/validate.py"), ROOT)
    assert data_files(ran, ROOT) == {Path("pipeline/data/suites/manifest.yaml")}
    assert data_files(imports(Path("stages/sample.py"), ROOT), ROOT) == set()


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


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # DVC's own use of pygtrie
def test_bytecode_and_editor_files_leave_a_code_folder_dep_unchanged(tmp_path, monkeypatch):
    """A stage that depends on a folder of modules, with the project's .dvcignore: Python's
    bytecode and an editor's swap and backup files beside the modules re-run nothing, an
    edit of a module does."""
    import py_compile

    from dvc.repo import Repo

    code = tmp_path / "code"
    code.mkdir()
    (code / "a.py").write_text("x = 1\n")
    shutil.copy(ROOT / ".dvcignore", tmp_path / ".dvcignore")
    monkeypatch.chdir(tmp_path)  # DVC takes stage paths from the working directory
    with Repo.init(str(tmp_path), no_scm=True) as repo:
        repo.stage.add(name="s", cmd="true", deps=["code"])
        repo.commit("s", force=True)
        assert repo.status() == {}
        py_compile.compile(str(code / "a.py"))  # __pycache__/a.cpython-3XX.pyc
        (code / "a.pyc").write_bytes(b"")
        for name in (".a.py.swp", "a.py~", ".#a.py", "#a.py#", ".DS_Store"):
            (code / name).write_text("")
        assert list(code.glob("__pycache__/*.pyc")), "no bytecode written"
        assert repo.status() == {}
        (code / "a.py").write_text("x = 2\n")
        assert repo.status() == {"s": [{"changed deps": {"code": "modified"}}]}
