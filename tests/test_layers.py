"""``pipeline/``'s subpackages are layers, and every import points down.

A subpackage (or a top-level module: the command lines) may import its own modules and
those of the layers below it, never one above it nor a peer of its own layer. Every
import counts: those inside functions (stages and recipes import heavy modules lazily)
and those under ``if TYPE_CHECKING:`` too, since a type-only import still ties the lower
layer to the upper one (a rename above breaks the annotations below) and is the usual
way to hide a cycle. docs/pipeline.md ("Layers") quotes :data:`LAYERS`.
"""

from __future__ import annotations

import ast
from pathlib import Path

from helpers import ROOT

PACKAGE = ROOT / "pipeline"

# Lowest first; the names in one tuple are peers, which do not import each other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("core",),
    ("data", "runtimes"),
    ("models",),
    ("runs",),
    ("training",),
    ("evaluation", "export", "serving"),
    ("gating",),
    ("gate", "predict", "serve"),
)
LAYER_OF = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def part_of(module: str) -> str:
    """The subpackage (or top-level module) ``pipeline.<part>...`` belongs to. The
    package's own ``__init__`` runs before any of its modules: it is core's."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "core"


def module_of(file: Path, root: Path = ROOT) -> str:
    parts = list(file.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(dotted: str, root: Path = ROOT) -> bool:
    base = root.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports(file: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, module) of every first-party import in ``file``, wherever it stands;
    ``from pipeline import gate`` imports the module ``pipeline.gate``."""
    module = module_of(file, root)
    found = []
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"), str(file))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the importing module's package
                package = module.split(".")
                if file.name != "__init__.py":
                    package = package[:-1]
                base = ".".join(package[:len(package) - node.level + 1] + [base] * bool(base))
            found += [(node.lineno, f"{base}.{a.name}" if is_module(f"{base}.{a.name}", root)
                       else base) for a in node.names]
    return [(line, m) for line, m in dict.fromkeys(found)  # once per line and module
            if m == "pipeline" or m.startswith("pipeline.")]


def parts() -> set[str]:
    """What LAYERS must place: every subpackage and top-level module of ``pipeline/``."""
    return ({p.parent.name for p in PACKAGE.glob("*/__init__.py")}
            | {p.stem for p in PACKAGE.glob("*.py") if p.name != "__init__.py"})


def violations(files: list[Path], root: Path = ROOT) -> list[str]:
    """One line per import that points up or sideways: the importing file, its line, the
    imported module and the two layers."""
    found = []
    for file in files:
        here = part_of(module_of(file, root))
        for line, target in imports(file, root):
            there = part_of(target)
            if there == here or LAYER_OF[there] < LAYER_OF[here]:
                continue
            way = "up to" if LAYER_OF[there] > LAYER_OF[here] else "sideways to its peer"
            found.append(f"{file.relative_to(root)}:{line} imports {target}: {here} "
                         f"(layer {LAYER_OF[here]}) {way} {there} (layer {LAYER_OF[there]})")
    return found


def test_every_subpackage_has_a_layer():
    placed = set(LAYER_OF)
    assert parts() - placed == set(), "place these in LAYERS (tests/test_layers.py)"
    assert placed - parts() == set(), "LAYERS names what pipeline/ no longer has"


def test_every_import_points_down():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 100  # the walk found the package
    found = violations(files)
    assert not found, "imports against the layers (LAYERS, lowest first):\n" + "\n".join(found)


def test_the_package_docstring_lists_the_subpackages_in_layer_order():
    """``pipeline/__init__.py`` names each subpackage and command line, lowest first."""
    doc = ast.get_docstring(ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8")))
    assert doc is not None
    missing = [name for layer in LAYERS for name in layer if f"``pipeline.{name}``" not in doc]
    assert missing == []
    order = [name for layer in LAYERS for name in layer]
    at = {name: doc.index(f"``pipeline.{name}``") for name in order}
    for low, high in zip(LAYERS, LAYERS[1:], strict=False):
        assert max(at[n] for n in low) < min(at[n] for n in high), (low, high)


def test_an_import_up_or_sideways_is_named(tmp_path):
    """The check itself, on a package of its own: core importing training (under
    TYPE_CHECKING) and export importing its peer serving (inside a function) are each
    named with the file, the line, the module and both layers; an import down is not."""
    files = {
        "core/probe.py": "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
                         "    from pipeline.training.fit import fit\n",
        "export/probe.py": "from pipeline.core import io\n\n\ndef f():\n"
                           "    from pipeline.serving import app\n",
        "training/fit.py": "", "serving/app.py": "", "core/io.py": "",
    }
    for name, body in {"__init__.py": "", **files}.items():
        path = tmp_path / "pipeline" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / "__init__.py").touch()
        path.write_text(body)
    probes = [tmp_path / "pipeline" / name for name in ("core/probe.py", "export/probe.py")]
    assert violations(probes, root=tmp_path) == [
        f"pipeline/core/probe.py:4 imports pipeline.training.fit: core (layer 0) up to "
        f"training (layer {LAYER_OF['training']})",
        f"pipeline/export/probe.py:5 imports pipeline.serving.app: export (layer "
        f"{LAYER_OF['export']}) sideways to its peer serving (layer {LAYER_OF['serving']})"]


def test_the_docs_give_the_same_order():
    """docs/pipeline.md's "Layers" table has one row per layer, as LAYERS has them."""
    page = (ROOT / "docs" / "pipeline.md").read_text(encoding="utf-8")
    section = page[page.index("\n## Layers\n"):]
    rows = [line.split("|")[1].strip() for line in section.splitlines()
            if line.startswith("| ") and line[2].isdigit()]
    assert rows == [f"{i}. " + ", ".join(f"`{name}`" for name in layer)
                    for i, layer in enumerate(LAYERS)]


def loaders(files: list[Path], root: Path = ROOT) -> set[str]:
    """The files (relative to ``root``) that call a ``load_model`` (Keras' or
    pipeline.models.saving's), however it was imported."""
    found = set()
    for file in files:
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"), str(file))):
            if isinstance(node, ast.Call) and "load_model" in (
                    getattr(node.func, "id", None), getattr(node.func, "attr", None)):
                found.add(file.relative_to(root).as_posix())
    return found


def test_outside_training_one_module_loads_a_trained_model():
    """Evaluation, the export, predict and serve load a model file through
    pipeline.models.trained (its card, temperature, decode and runtime come with it);
    saving wraps Keras' loader, and the fine-tune loads the head it starts from."""
    files = [f for f in PACKAGE.rglob("*.py") if "training" not in f.relative_to(PACKAGE).parts]
    assert loaders(files) == {"pipeline/models/saving.py", "pipeline/models/trained.py"}
    assert loaders(sorted((PACKAGE / "training").rglob("*.py"))) == {
        "pipeline/training/finetune.py"}
