"""params.yaml survives `dvc exp run -S`: DVC rewrites the whole file through ruamel.yaml
(dvc.utils.hydra.apply_overrides, what `-S` calls), and the file is written in the form
that round trip keeps, so a `-S key=value` changes that key's line and nothing else: no
flow list turned into a block, no `null` emptied, no comment lost. And the quoting the
docs give for a value with spaces, commas or accents reaches params.yaml as written."""

from __future__ import annotations

import difflib
import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml
from helpers import ROOT


def _set(folder: Path, *overrides: str) -> tuple[list[str], list[str]]:
    """params.yaml's lines before and after DVC's own `-S` on a copy in ``folder``."""
    from dvc.utils.hydra import apply_overrides

    path = folder / "params.yaml"
    shutil.copy(ROOT / "params.yaml", path)
    before = path.read_text(encoding="utf-8").splitlines()
    apply_overrides(path, list(overrides))
    return before, path.read_text(encoding="utf-8").splitlines()


def _leaves(node: yaml.Node, prefix: str = "") -> dict[str, tuple[int, yaml.Node]]:
    """Every key of a composed mapping, dotted, with the line (0-based) of its key."""
    out: dict[str, tuple[int, yaml.Node]] = {}
    for key, value in node.value:
        dotted = f"{prefix}{key.value}"
        if isinstance(value, yaml.MappingNode):
            out |= _leaves(value, dotted + ".")
        else:
            out[dotted] = (key.start_mark.line, value)
    return out


def _changed_lines(before: list[str], after: list[str]) -> list[int]:
    """The lines of ``before`` that differ in ``after`` (the same number of lines)."""
    assert len(before) == len(after), "\n".join(difflib.unified_diff(before, after, lineterm=""))
    return [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]


def _other(value: yaml.ScalarNode) -> str:
    """A `-S` value of the same kind as ``value`` that differs from it."""
    loaded = yaml.safe_load(value.value) if value.style is None else value.value
    if value.value == "" or loaded is None:
        return "changed"  # null gets a value
    if isinstance(loaded, bool):
        return str(not loaded).lower()
    if isinstance(loaded, int):
        return str(loaded + 1)
    if isinstance(loaded, float):
        return repr(loaded + 1.5)
    return "changed"


def _comment(line: str) -> str:
    return line.partition("#")[2]


def test_a_set_param_that_changes_nothing_rewrites_nothing(tmp_path):
    before, after = _set(tmp_path, "seed=" + str(yaml.safe_load((ROOT / "params.yaml")
                                                                .read_text())["seed"]))
    assert after == before, "\n".join(difflib.unified_diff(before, after, lineterm=""))


def test_set_param_changes_exactly_each_keys_own_line(tmp_path):
    """Every scalar key at once (a null one among them), then every list: each `-S`
    rewrites the lines of that key and keeps its comment, and no other line moves."""
    leaves = _leaves(yaml.compose((ROOT / "params.yaml").read_text(encoding="utf-8")))
    scalars = {k: v for k, v in leaves.items() if isinstance(v[1], yaml.ScalarNode)}
    assert any(node.value == "" for _, node in scalars.values()), "no null key left to check"
    assert {"data.root", "finetune.resnet50.image_size", "head.dropout"} <= set(scalars)
    before, after = _set(tmp_path, *(f"{k}={_other(node)}" for k, (_, node) in scalars.items()))
    changed = _changed_lines(before, after)
    assert changed == sorted(line for line, _ in scalars.values())
    for i in changed:
        assert _comment(after[i]) == _comment(before[i]), (before[i], after[i])

    # A list, reversed: its item lines change, its key's comment and the rest stay.
    lists = {k: v for k, v in leaves.items()
             if isinstance(v[1], yaml.SequenceNode) and len(v[1].value) > 1}
    assert {"data.images.formats", "export.formats"} <= set(lists)
    overrides = []
    items = []
    for key, (_, node) in lists.items():
        values = [item.value for item in node.value]
        overrides.append(f"{key}=[{','.join(repr(v) for v in reversed(values))}]")
        items += [item.start_mark.line for item in node.value if values[0] != values[-1]]
    before, after = _set(tmp_path, *overrides)
    changed = _changed_lines(before, after)
    assert set(changed) <= set(items), [before[i] for i in set(changed) - set(items)]
    loaded = yaml.safe_load("\n".join(after))
    assert loaded["export"]["formats"] == yaml.safe_load(
        "\n".join(before))["export"]["formats"][::-1]


def test_the_loader_reads_the_file_as_written(tmp_path):
    """Empty values are null to pipeline/core/params.py, as to DVC."""
    from pipeline.core.params import load

    params = load(ROOT / "params.yaml")
    assert params.data.root is None and params.data.sha256 is None
    assert params.finetune["resnet50"].image_size is None


QUOTED = re.compile(r"""dvc exp run .*?-S "data\.source='[^"]*'".*""")


@pytest.mark.parametrize("page", ["docs/your-data.md", "README.md"])
def test_the_documented_quoting_keeps_spaces_commas_and_accents(tmp_path, page):
    """The quoting the docs give (Hydra's quotes inside the shell's): the path reaches
    params.yaml whole. Without the inner quotes DVC reads a comma as a sweep and stops
    on an accent (LexerNoViableAltException)."""
    commands = QUOTED.findall((ROOT / page).read_text(encoding="utf-8"))
    assert commands, f"{page}: no quoted `-S \"data.source='...'\"` example"
    for command in commands:
        args = shlex.split(command.partition("#")[0])
        value = args[args.index("-S") + 1]
        path = value.partition("=")[2][1:-1].replace("\\'", "'")
        _, after = _set(tmp_path, value)
        assert yaml.safe_load("\n".join(after))["data"]["source"] == path, command
