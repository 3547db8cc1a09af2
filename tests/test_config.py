"""params.yaml is validated at load, and errors name the key at fault."""

from __future__ import annotations

import copy
import re
import typing

import pytest
import yaml
from helpers import ROOT, c_locale, repo_params, run_stage, write_params

from pipeline.core import params
from pipeline.core.params import ParamsError


def test_repository_params_are_valid():
    loaded = params.load(ROOT / "params.yaml")
    assert loaded.backbone.arch == "resnet50"
    assert loaded.data.split.as_dict() == pytest.approx({"train": 0.7, "val": 0.15, "test": 0.15})


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("head", "lerning_rate", 0.1, "head.lerning_rate: unknown key"),
        ("head", "learning_rate", -0.1, "head.learning_rate: Input should be greater than 0"),
        ("head", "epochs", "ten", "head.epochs"),
        ("head", "optimizer", "adamax", "head.optimizer"),
        ("backbone", "arch", "resnet18", "backbone.arch"),
        ("validate", "min_side", 0, "validate.min_side"),
        ("data", "presplit", "always", "data.presplit: Input should be 'auto', 'use' or 'ignore'"),
        ("data", "sha256", "abc", "data.sha256: String should match pattern"),
        ("data", "max_files", 0, "data.max_files"),
        ("inference", "runtime", "onnx", "inference.runtime: Input should be 'auto', "
                                         "'tensorflow' or 'openvino'"),
        ("inference", "precision", "float16", "inference.precision"),
    ],
)
def test_bad_value_names_the_key(section, key, value, expected):
    raw = repo_params()
    raw[section][key] = value
    with pytest.raises(ParamsError) as err:
        params.parse(raw)
    assert expected in str(err.value)


def test_split_fractions_must_sum_to_one():
    raw = repo_params()
    raw["data"]["split"] = {"train": 0.8, "val": 0.15, "test": 0.15}
    with pytest.raises(ParamsError, match=r"data\.split: .*sum to 1.*1\.1"):
        params.parse(raw)


def test_unknown_top_level_section():
    raw = repo_params() | {"heads": {}}
    with pytest.raises(ParamsError, match="heads: unknown key"):
        params.parse(raw)


def test_unreadable_and_invalid_yaml(tmp_path):
    with pytest.raises(ParamsError, match="cannot read"):
        params.load(tmp_path / "missing.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("head: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        params.load(bad)


def test_every_error_is_reported_at_once():
    raw = repo_params()
    raw["head"]["dropout"] = 1.5
    raw["backbone"]["batch_size"] = 0
    with pytest.raises(ParamsError) as err:
        params.parse(raw)
    assert "head.dropout" in str(err.value) and "backbone.batch_size" in str(err.value)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("formats", ["JPEG", "TIFF"], "data.images.formats: Value error, ['TIFF']: the pipeline's "
                                      "decoder reads ['JPEG', 'PNG', 'GIF', 'BMP']"),
        ("modes", [], "data.images.modes: Value error, an empty list"),
        ("bad", "skip", "data.images.bad: Input should be 'fail' or 'quarantine'"),
        ("duplicates", "keep", "data.images.duplicates: Input should be 'fail' or 'drop'"),
        ("near_threshold", 65, "data.images.near_threshold"),
        ("max_aspect", 0.5, "data.images.max_aspect"),
        ("colour", "yes", "data.images.colour: unknown key"),
    ],
)
def test_bad_image_policy_names_the_key(key, value, expected):
    raw = repo_params()
    raw["data"]["images"][key] = value
    with pytest.raises(ParamsError) as err:
        params.parse(raw)
    assert expected in str(err.value)


# --------------------------------------------------------------------------- no defaults


def _paths(node: dict, prefix: tuple[str, ...] = ()):
    """Every key of a params mapping, sections and the keys inside them, as paths."""
    for key, value in node.items():
        yield (*prefix, key)
        if isinstance(value, dict):
            yield from _paths(value, (*prefix, key))


# The entries of finetune and scratch (finetune.resnet50) are names the user picks, not
# keys; theirs are.
KEYS = [k for k in _paths(repo_params())
        if not (k[0] in ("finetune", "scratch") and len(k) == 2)]


@pytest.mark.parametrize(
    "key",
    KEYS,
    ids=[".".join(k) for k in KEYS],
)
def test_every_key_is_required(key):
    """No key has a default in code: one left out of params.yaml is an error naming it."""
    raw = repo_params()
    node = raw
    for part in key[:-1]:
        node = node[part]
    del node[key[-1]]
    with pytest.raises(ParamsError) as err:
        params.parse(raw)
    message = str(err.value)
    lines = message.splitlines()
    assert any(line.startswith(f"  {'.'.join(key)}: missing (") for line in lines), message
    assert len(message.splitlines()) == 2, message  # that key alone


def test_keys_cover_every_section_and_recipe():
    """The parametrisation above really walks the whole file."""
    names = {".".join(k) for k in KEYS}
    assert {"seed", "data.images.near_threshold", "data.split.test", "validate.classes",
            "finetune", "finetune.resnet50.augment.mixup_alpha", "scratch.wrn.depth",
            "scratch.wrn.family", "evaluate.top_k", "report.cost", "gate.max_drop"} <= names
    assert "finetune.resnet50" not in names  # an entry's name, not a key
    assert len(names) > 90


def test_nullable_keys_take_null():
    raw = repo_params()
    raw["data"]["images"]["near_threshold"] = None
    raw["data"]["sha256"] = None
    raw["finetune"]["resnet50"]["image_size"] = None
    loaded = params.parse(raw)
    assert loaded.data.images.near_threshold is None and loaded.data.sha256 is None
    assert loaded.finetune["resnet50"].image_size is None


@pytest.mark.parametrize(("root", "loaded"), [(".", "."), (" . ", "."), ("a/b/", "a/b"),
                                             (None, None)])
def test_data_root_takes_the_top_level_a_sub_folder_or_null(root, loaded):
    """'.' is what the several-data-sets error tells users to write: it must load."""
    raw = repo_params()
    raw["data"]["root"] = root
    assert params.parse(raw).data.root == loaded


@pytest.mark.parametrize("root", ["", "/abs", "../up", "a/../.."])
def test_data_root_outside_the_source_is_refused(root):
    raw = repo_params()
    raw["data"]["root"] = root
    with pytest.raises(ParamsError, match=r"  data\.root: Value error, .+: a sub-folder of "
                                          r"data\.source \(relative, no '\.\.'\), '\.' or null"):
        params.parse(raw)


def test_the_shipped_resnet9_recipe_pastes_in_as_a_scratch_entry():
    """pipeline/models/resnet9_recipe.yaml is what docs/models.md tells a user to paste
    under `scratch:`: it must validate there, and add a model with its own budget."""
    from pipeline.models.resnet9 import recipe

    raw = repo_params()
    raw["scratch"]["resnet9"] = recipe()
    loaded = params.parse(raw)
    assert loaded.models() == ["head", "resnet50", "wrn", "resnet9"]
    assert loaded.scratch["resnet9"].budget_seconds == 60 and loaded.scratch["resnet9"].flip_tta


def test_an_entry_may_be_left_out():
    """Entries are the models to train: removing one is a choice, not a missing key."""
    raw = repo_params()
    del raw["scratch"]["wrn"]
    loaded = params.parse(raw)
    assert "wrn" not in loaded.scratch and loaded.models() == ["head", "resnet50"]
    raw["scratch"] = {}
    assert params.parse(raw).models() == ["head", "resnet50"]


def test_model_names_are_unique_and_not_reserved():
    raw = repo_params()
    raw["scratch"]["resnet50"] = raw["scratch"]["wrn"]
    with pytest.raises(ParamsError, match="resnet50.*in both finetune and scratch"):
        params.parse(raw)
    raw = repo_params()
    raw["scratch"]["head"] = raw["scratch"].pop("wrn")
    with pytest.raises(ParamsError, match="reserved"):
        params.parse(raw)
    raw = repo_params()
    raw["scratch"]["my model"] = raw["scratch"].pop("wrn")
    with pytest.raises(ParamsError, match="scratch.my model"):
        params.parse(raw)


# --------------------------------------------------------------------------- values, as a class


def _models(model=params.Params, seen=None):
    """Every section and recipe class under Params."""
    import typing

    from pydantic import BaseModel

    seen = set() if seen is None else seen
    if model in seen:
        return seen
    seen.add(model)
    for field in model.model_fields.values():
        todo = [field.annotation]
        while todo:
            node = todo.pop()
            if isinstance(node, type) and issubclass(node, BaseModel):
                _models(node, seen)
            todo.extend(typing.get_args(node))
    return seen


def _bounds(field) -> tuple[bool, bool]:
    """Whether a field's metadata (its Annotated Field) gives a lower and an upper bound."""
    import annotated_types as at

    lower = any(isinstance(m, at.Ge | at.Gt) for m in field.metadata)
    upper = any(isinstance(m, at.Le | at.Lt) for m in field.metadata)
    return lower, upper


def _numbers():
    """(class, field name, FieldInfo) of every int or float a section or recipe holds,
    directly, in a list (step_epochs) or beside null or a word (near_threshold, unfreeze)."""
    import typing

    from pydantic.fields import FieldInfo

    for model in sorted(_models(), key=lambda m: m.__name__):
        for name, field in model.model_fields.items():
            todo = [(field.annotation, field)]
            while todo:
                node, info = todo.pop()
                if typing.get_origin(node) is typing.Annotated:
                    node, *meta = typing.get_args(node)
                    info = FieldInfo.merge_field_infos(FieldInfo.from_annotation(node), *[
                        m for m in meta if isinstance(m, FieldInfo)])
                    info.metadata += [m for m in meta if not isinstance(m, FieldInfo)]
                if node in (int, float):
                    yield model, name, info
                elif typing.get_origin(node) is not None and node is not bool:
                    todo.extend((arg, None if typing.get_origin(node) is list else info)
                                for arg in typing.get_args(node))


def test_every_number_declares_its_range():
    """A new numeric key without both bounds fails here: 1e30 batches, 2**40 seeds and
    negative counts are refused at load, naming the key, not deep in TensorFlow."""
    unbounded = [f"{model.__name__}.{name}" for model, name, info in _numbers()
                 if info is None or _bounds(info) != (True, True)]
    found = {f"{model.__name__}.{name}" for model, name, _ in _numbers()}
    assert {"Params.seed", "HeadParams.batch_size", "HeadParams.learning_rate",
            "WRNRecipe.step_epochs", "ResNetRecipe.unfreeze", "ImagesParams.near_threshold",
            "DownloadParams.timeout"} <= found, sorted(found)
    assert not unbounded, f"numeric keys without a lower and an upper bound: {unbounded}"


def _typed_keys(kind: type) -> list[tuple[str, ...]]:
    """Every key whose value, as loaded, is of ``kind`` (bool is not an int; 3600 given to a
    float key loads as 3600.0)."""
    loaded = params.load(ROOT / "params.yaml")

    def value(key):
        node = loaded
        for part in key:
            node = node[part] if isinstance(node, dict) else getattr(
                node, "validate_" if part == "validate" else part)
        return node

    return [k for k in KEYS if type(value(k)) is kind]


def _refused(key: tuple[str, ...], value) -> str:
    """The one line params.parse gives for ``value`` at ``key``, asserted to name it."""
    raw = copy.deepcopy(SHIPPED_RAW)
    node = raw
    for part in key[:-1]:
        node = node[part]
    node[key[-1]] = value
    with pytest.raises(ParamsError) as err:
        params.parse(raw)
    lines = str(err.value).splitlines()[1:]
    assert len(lines) == 1 and lines[0].startswith(f"  {'.'.join(key)}: "), lines
    return lines[0]


SHIPPED_RAW = repo_params()
FLOATS, INTS, BOOLS = _typed_keys(float), _typed_keys(int), _typed_keys(bool)


@pytest.mark.parametrize("key", FLOATS, ids=[".".join(k) for k in FLOATS])
def test_a_float_key_takes_a_finite_number_in_its_range(key):
    for value in (float("inf"), float("-inf"), float("nan")):
        assert "finite number" in _refused(key, value), value
    for value in (True, "0.5", 1e300, -1e300):
        _refused(key, value)


@pytest.mark.parametrize("key", INTS, ids=[".".join(k) for k in INTS])
def test_an_integer_key_takes_an_integer_in_its_range(key):
    """A bool is no integer, 4.5 and 1e30 (what `-S head.batch_size=1e30` writes) no
    integer, and an integer beyond what TensorFlow and NumPy hold is out of range."""
    for value in (True, 4.5, 1e30, 2**63, -(2**63), "12"):
        _refused(key, value)


@pytest.mark.parametrize("key", BOOLS, ids=[".".join(k) for k in BOOLS])
def test_a_boolean_key_takes_true_or_false(key):
    for value in (1, 0, "yes", None):
        assert "valid boolean" in _refused(key, value), value


def test_the_shipped_value_types_are_all_covered():
    assert len(FLOATS) > 25 and len(INTS) > 30 and len(BOOLS) > 5
    assert ("seed",) in INTS and ("head", "learning_rate") in FLOATS


@pytest.mark.parametrize(("key", "value", "expected"), [
    (("seed",), 4.5, "seed: Input should be a valid integer (got 4.5)"),
    (("seed",), 2**32, "seed: Input should be less than or equal to 4294967295"),
    (("head", "learning_rate"), float("inf"), "head.learning_rate: Input should be a finite "
                                              "number (got inf)"),
    (("head", "learning_rate"), 100.0, "head.learning_rate: Input should be less than or "
                                       "equal to 10"),
    (("head", "batch_size"), 1e30, "head.batch_size: Input should be a valid integer"),
    (("head", "batch_size"), 10**6, "head.batch_size: Input should be less than or equal to "
                                    "65536"),
    (("data", "download", "timeout"), 1e12, "data.download.timeout: Input should be less than "
                                            "or equal to 604800"),
    (("finetune", "resnet50", "unfreeze"), True, "finetune.resnet50.unfreeze: Input should be "
                                                 "'all' or a valid integer (got True)"),
    (("data", "source"), "photos\0/x", "data.source: Value error, a NUL character"),
    (("validate", "classes"), ["cat", "d\0g"], "validate.classes: Value error, a NUL"),
    (("scratch", "wrn", "weights"), "", "scratch.wrn.weights: Value error, '' is not none or a "
                                        ".weights.h5 file"),
    (("scratch", "wrn", "weights"), "bit.npz", "scratch.wrn.weights: Value error, 'bit.npz' "
                                               "is not none or a .weights.h5 file"),
    (("backbone", "weights"), "imagnet", "backbone.weights: Value error, 'imagnet' is not auto, "
                                         "imagenet, none or a .weights.h5 or .h5 file"),
])
def test_a_bad_value_is_one_line_naming_the_key(key, value, expected):
    assert _refused(key, value).startswith(f"  {expected}")


def test_a_bit_entry_takes_an_npz():
    raw = repo_params()
    raw["scratch"]["bit"] = raw["scratch"].pop("wrn") | {"family": "bit", "width": 1,
                                                         "weights": "BiT-M-R50x1.npz"}
    del raw["scratch"]["bit"]["depth"], raw["scratch"]["bit"]["dropout"]
    assert params.parse(raw).scratch["bit"].weights == "BiT-M-R50x1.npz"



def scratch_recipes() -> tuple[type, ...]:
    """The members of the ScratchRecipe union (Annotated[A | B | ..., discriminator])."""
    return typing.get_args(typing.get_args(params.ScratchRecipe)[0])


def test_scratch_families_are_the_union_of_the_scratch_recipes():
    """SCRATCH_FAMILIES (the tags an error key drops, the families a missing `family`
    lists) is a copy of the union's tags: a family added to one only fails here."""
    tags = tuple(typing.get_args(m.model_fields["family"].annotation)[0]
                 for m in scratch_recipes())
    assert tags == params.SCRATCH_FAMILIES, (
        "pipeline/core/params.py: SCRATCH_FAMILIES and the ScratchRecipe union differ; add the "
        "family to both, in the same order (docs/model-families.md)")


def test_the_docs_list_the_scratch_families():
    """docs/model-families.md's table: one row per scratch family, in the union's order,
    naming its params model and a builder function that its module defines."""
    text = (ROOT / "docs" / "model-families.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)` \| `(\w+)` \| `([\w.]+)` \|", text, re.MULTILINE)
    assert [(family, model) for family, model, _ in rows] == [
        (typing.get_args(m.model_fields["family"].annotation)[0], m.__name__)
        for m in scratch_recipes()]
    for _, _, builder in rows:
        module, function = builder.rsplit(".", 1)
        source = ROOT / (module.replace(".", "/") + ".py")
        assert f"\ndef {function}(" in source.read_text(encoding="utf-8"), builder

# --------------------------------------------------------------------------- unknown keys


@pytest.mark.parametrize(("where", "typo", "expected"), [
    (("head",), "dropuot", "head.dropuot: unknown key, did you mean head.dropout?"),
    (("scratch", "wrn"), "depht", "scratch.wrn.depht: unknown key, did you mean "
                                  "scratch.wrn.depth?"),
    (("finetune", "resnet50", "augment"), "flipp", "finetune.resnet50.augment.flipp: unknown "
                                                   "key, did you mean "
                                                   "finetune.resnet50.augment.flip?"),
    ((), "gaet", "gaet: unknown key, did you mean gate?"),
    (("head",), "zzz", "head.zzz: unknown key; head takes solver, dropout, l2, optimizer, "
                       "learning_rate, batch_size, epochs, patience, monitor, "
                       "budget_seconds"),
    ((), "zzz", "zzz: unknown key; the top level takes seed, sample, data, validate, "
                "backbone, head, finetune, scratch, distribute, inference, evaluate, report, "
                "export, gate"),
])
def test_an_unknown_key_suggests_the_closest_known_one(where, typo, expected):
    """What `dvc exp run -S +head.dropuot=0.1` (DVC's way to add a key) leads to."""
    raw = repo_params()
    node = raw
    for part in where:
        node = node[part]
    node[typo] = 0.1
    with pytest.raises(ParamsError) as err:
        params.parse(raw)
    assert str(err.value).splitlines()[1:] == [f"  {expected}"]


def test_a_key_of_another_family_is_refused_with_the_keys_this_family_takes():
    """A WRN-only key (depth, dropout) pasted into a BiT entry: the suggestions come from
    BiT's own keys, the family the entry names, never from WRN's."""
    raw = repo_params()
    raw["scratch"]["bit"] = raw["scratch"].pop("wrn") | {"family": "bit", "width": 1,
                                                         "weights": "BiT-M-R50x1.npz"}
    with pytest.raises(ParamsError) as err:
        params.parse(raw)
    lines = str(err.value).splitlines()[1:]
    assert "  scratch.bit.depth: unknown key, did you mean scratch.bit.width?" in lines
    dropout = next(line for line in lines if line.startswith("  scratch.bit.dropout:"))
    assert dropout.startswith("  scratch.bit.dropout: unknown key; scratch.bit takes ")
    assert "depth" not in dropout and "weights" in dropout


def test_a_format_listed_twice_is_named():
    raw = repo_params()
    raw["export"]["formats"] = ["tflite", "onnx", "tflite", "onnx", "saved_model"]
    with pytest.raises(ParamsError) as err:
        params.parse(raw)
    assert str(err.value).splitlines()[1:] == [
        "  export.formats: Value error, ['onnx', 'tflite'] listed more than once (got "
        "['tflite', 'onnx', 'tflite', 'onnx', 'saved_model'])"]


def test_a_rule_between_sections_is_named_as_the_top_level():
    raw = repo_params()
    raw["finetune"]["wrn"] = raw["finetune"]["resnet50"]
    with pytest.raises(ParamsError) as err:
        params.parse(raw)
    assert str(err.value).splitlines()[1].startswith(
        "  (top level): Value error, model name(s) ['wrn'] in both finetune and scratch")


@pytest.mark.parametrize(("change", "expected"), [
    (lambda raw: raw["scratch"]["wrn"].pop("family"),
     ["params.yaml: invalid params", "  scratch.wrn.family: missing (wrn | bit | resnet9)"]),
    (lambda raw: raw["head"].update(dropout={"a": 1}),  # a mapping is not repeated back
     ["params.yaml: invalid params", "  head.dropout: Input should be a valid number"]),
], ids=["no-family", "a-mapping-for-a-number"])
def test_the_whole_message_for_a_missing_family_or_a_mapping_value(change, expected):
    raw = repo_params()
    change(raw)
    with pytest.raises(ParamsError) as err:
        params.parse(raw)
    assert str(err.value).splitlines() == expected


def test_a_file_that_is_a_list_is_named_as_such():
    with pytest.raises(ParamsError, match=r"^params.yaml: expected a mapping of sections, got "
                                          r"list$"):
        params.parse(["seed", 42])


def test_a_bad_list_entry_is_named_by_its_index_first_to_last():
    raw = repo_params()
    raw["export"]["formats"] = ["foo", "saved_model", "bar"]
    with pytest.raises(ParamsError) as err:
        params.parse(raw)
    keys = [line.split(":")[0].strip() for line in str(err.value).splitlines()[1:]]
    assert keys == ["export.formats.0", "export.formats.2"]


# --------------------------------------------------------------------------- the file itself

SHIPPED = (ROOT / "params.yaml").read_text(encoding="utf-8")


def _load(tmp_path, text: str | bytes):
    path = tmp_path / "params.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return params.load(path)


def test_a_duplicate_key_is_refused_with_both_lines(tmp_path):
    """PyYAML keeps the last of two; DVC's ruamel refuses them: so does the pipeline."""
    at = SHIPPED.index("\n  dropout: 0.2") + 1  # head's, the first
    twice = SHIPPED[:at] + "  dropout: 0.5\n" + SHIPPED[at:]
    line = SHIPPED[:at].count("\n") + 1
    with pytest.raises(ParamsError, match=rf"head\.dropout is given twice \(lines {line} and "
                                          rf"{line + 1}\)"):
        _load(tmp_path, twice)
    with pytest.raises(ParamsError, match=r"params.yaml: seed is given twice"):
        _load(tmp_path, SHIPPED + "seed: 43\n")


def test_a_duplicate_key_deep_in_the_file_or_in_a_list_is_named_by_its_path(tmp_path):
    nested = SHIPPED.replace("    workers: ", "    bad: fail\n    workers: ", 1)
    with pytest.raises(ParamsError, match=r"params.yaml: data\.images\.bad is given twice"):
        _load(tmp_path, nested)
    with pytest.raises(ParamsError, match=r"params.yaml: extra\.x is given twice"):
        _load(tmp_path, SHIPPED + "extra: [{x: 1, x: 2}]\n")


def test_a_file_at_the_node_cap_loads_and_one_over_it_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(params, "MAX_NODES", 1)
    with pytest.raises(ParamsError) as err:
        _load(tmp_path, SHIPPED)
    nodes = int(re.search(r"expand to ([\d,]+) keys", str(err.value))[1].replace(",", ""))
    monkeypatch.setattr(params, "MAX_NODES", nodes)
    assert _load(tmp_path, SHIPPED).seed == repo_params()["seed"]
    monkeypatch.setattr(params, "MAX_NODES", nodes - 1)
    with pytest.raises(ParamsError, match=f"expand to {nodes:,} keys and values, more than "
                                          f"the {nodes - 1:,}"):
        _load(tmp_path, SHIPPED)


def test_aliases_and_merge_keys_within_bounds_load(tmp_path):
    """A shared augment section (an anchor, an alias, a merge key overriding one key)."""
    text = SHIPPED.replace("    augment:              # training batches only",
                           "    augment: &augment     # training batches only", 1)
    start = text.index("    augment:\n      flip: true", text.index("scratch:"))
    end = text.index("      mixup_alpha: 0.0\n", start) + len("      mixup_alpha: 0.0\n")
    text = text[:start] + "    augment:\n      <<: *augment\n      color_jitter: 0.2\n" + text[end:]
    loaded = _load(tmp_path, text)
    assert loaded.scratch["wrn"].augment.color_jitter == 0.2
    assert loaded.scratch["wrn"].augment.crop_min_scale == 0.6


def test_an_alias_bomb_is_refused_before_it_is_expanded(tmp_path):
    """Nine lines of nested aliases expand to over 10**9 values: PyYAML shares them, but
    pydantic (like any walk) would copy each, and run out of memory."""
    lines = ["lol0: &a0 [x, x, x, x, x, x, x, x, x, x]"] + [
        f"lol{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    with pytest.raises(ParamsError, match=r"aliases expand to 1,\d{3},\d{3},\d{3} keys "
                                          r"and values, more than the 10,000"):
        _load(tmp_path, "\n".join(lines) + "\n" + SHIPPED)
    with pytest.raises(ParamsError, match="line 1: a YAML alias that contains itself"):
        _load(tmp_path, "loop: &r [1, *r]\n" + SHIPPED)


def test_deep_nesting_and_bad_bytes_are_one_line(tmp_path):
    with pytest.raises(ParamsError, match="not valid YAML: nested too deeply"):
        _load(tmp_path, "deep: " + "[" * 3000 + "]" * 3000 + "\n" + SHIPPED)
    with pytest.raises(ParamsError, match=r"not UTF-8 text \(invalid start byte at byte 0\)"):
        _load(tmp_path, b"\xff" + SHIPPED.encode())
    with pytest.raises(ParamsError) as err:
        _load(tmp_path, "head: [unclosed\n")
    assert len(str(err.value).splitlines()) == 1


def test_a_control_character_or_a_key_that_is_a_list_is_one_line(tmp_path):
    """PyYAML's reader refuses a control character before any parsing, with no line or
    column of its own; a complex key (`? [a, b]`) is not a name DVC could set."""
    last = SHIPPED.count("\n") + 1
    with pytest.raises(ParamsError, match=r"params.yaml: not valid YAML: unacceptable "
                                          r"character #x0007: special characters are not "
                                          rf"allowed \(line {last}, column 7\)$"):
        _load(tmp_path, SHIPPED + "note: \x07\n")
    # The same at the top of a file that starts with a blank line: lines count from it.
    with pytest.raises(ParamsError, match=r"#x0007: special characters are not allowed "
                                          r"\(line 2, column 7\)$"):
        _load(tmp_path, "\nnote: \x07\n" + SHIPPED)
    with pytest.raises(ParamsError, match=r"params.yaml: not valid YAML: found unhashable key "
                                          r"\(line \d+, column \d+\)$"):
        _load(tmp_path, SHIPPED + "? [a, b]\n: 1\n")


def test_a_yaml_error_without_a_position_is_still_one_line():
    """PyYAML marks every error it raises while loading; one without a mark (a YAMLError
    raised bare) is the text of the error, its lines joined, not a traceback."""
    assert params._one_line(yaml.YAMLError("cannot load\n  this  file"), "") == (
        "cannot load this file")


def test_an_empty_file_is_named_as_empty(tmp_path):
    for text in ("", "# every key commented out\n"):
        with pytest.raises(ParamsError) as err:
            _load(tmp_path, text)
        assert str(err.value) == (f"{tmp_path / 'params.yaml'}: expected a mapping of "
                                  "sections, got nothing (an empty file)")


def test_a_bad_value_names_the_file_it_was_read_from(tmp_path):
    path = tmp_path / "exp" / "my-params.yaml"
    path.parent.mkdir()
    path.write_text(SHIPPED.replace("\nseed: ", "\nseed: -", 1), encoding="utf-8")
    with pytest.raises(ParamsError) as err:
        params.load(path)
    assert str(err.value).startswith(f"{path}: invalid params\n  seed: ")


def test_merge_keys_override_and_duplicates_after_them_are_still_caught(tmp_path):
    """Two `<<:` merges in one mapping are YAML (each adds its keys, the later one wins); a
    key written twice after a merge is still a duplicate."""
    text = SHIPPED.replace("    augment:              # training batches only",
                           "    augment: &augment     # training batches only", 1)
    start = text.index("    augment:\n      flip: true", text.index("scratch:"))
    end = text.index("      mixup_alpha: 0.0\n", start) + len("      mixup_alpha: 0.0\n")
    merges = "    augment:\n      <<: *augment\n      <<: {color_jitter: 0.3}\n"
    loaded = _load(tmp_path, text[:start] + merges + text[end:])
    assert loaded.scratch["wrn"].augment.color_jitter == 0.3
    assert loaded.scratch["wrn"].augment.crop_min_scale == 0.6
    twice = "    augment:\n      <<: *augment\n      flip: true\n      flip: false\n"
    with pytest.raises(ParamsError, match=r"params.yaml: scratch\.wrn\.augment\.flip is "
                                          r"given twice"):
        _load(tmp_path, text[:start] + twice + text[end:])


def test_the_file_is_read_as_utf8_whatever_the_locale(tmp_path, monkeypatch):
    """A comment in another script must not depend on the user's locale (LANG=C)."""
    with c_locale():
        loaded = _load(tmp_path, "# Größe: 64 px → 128 px\n" + SHIPPED)
    assert loaded.seed == repo_params()["seed"]


def test_exponents_are_numbers_as_dvc_reads_them(tmp_path):
    """YAML 1.1 (PyYAML) reads 1e-3 as a string; YAML 1.2 (DVC's ruamel, and what `dvc exp
    run -S head.learning_rate=1e-3` writes) as a number. The pipeline reads what DVC does."""
    text = SHIPPED.replace("  learning_rate: 0.001 ", "  learning_rate: 1e-3  ", 1)
    assert _load(tmp_path, text).head.learning_rate == 0.001
    text = SHIPPED.replace("  learning_rate: 0.001 ", "  learning_rate: 2E+0  ", 1)
    assert _load(tmp_path, text).head.learning_rate == 2.0


# --------------------------------------------------------------------------- the params stage


def _params_stage(folder, changes=None):
    write_params(folder, changes)
    return run_stage(folder, "params")


def test_the_params_stage_refuses_a_bad_value_naming_the_key(tmp_path):
    run = _params_stage(tmp_path, {"seed": 4.5, "head.learning_rate": float("inf")})
    assert run.returncode == 2
    assert run.stderr.splitlines() == [
        "error: params.yaml: invalid params", "  seed: Input should be a valid integer (got 4.5)",
        "  head.learning_rate: Input should be a finite number (got inf)"], run.stderr
    assert not (tmp_path / "data").exists()


def test_the_params_stage_writes_the_same_bytes_whatever_the_params(tmp_path):
    """Stages depend on its output: were it to change with the params, every change would
    re-run every stage. data.source is the sample stage's folder, not made yet: allowed."""
    assert _params_stage(tmp_path).returncode == 0
    first = (tmp_path / "data/params_checked.json").read_bytes()
    assert _params_stage(tmp_path, {"head.dropout": 0.5, "seed": 7}).returncode == 0
    assert (tmp_path / "data/params_checked.json").read_bytes() == first


@pytest.mark.parametrize(("changes", "expected"), [
    ({"data.source": "no such photos"}, "error: data.source: 'no such photos' does not exist"),
    ({"scratch.wrn.weights": "start.weights.h5"}, "error: scratch.wrn.weights: weights file "
                                                  "'start.weights.h5' does not exist"),
    ({"backbone.weights": "bb.weights.h5"}, "error: backbone.weights: 'bb.weights.h5' is not a "
                                            "readable HDF5 weights file"),
], ids=["data.source", "scratch.wrn.weights", "backbone.weights"])
def test_the_params_stage_refuses_a_missing_or_unreadable_file_it_names(tmp_path, changes,
                                                                         expected):
    """Found before any stage runs, so no stage's outputs are removed for it (the source,
    weights and scratch_weights stages check the same files on every run)."""
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "bb.weights.h5").write_bytes(b"random bytes")
    run = _params_stage(tmp_path, changes)
    assert run.returncode == 2 and run.stderr.startswith(expected), run.stderr
    assert len(run.stderr.splitlines()) == 1


def test_a_yaml_slip_is_named_with_its_line_and_column(tmp_path):
    with pytest.raises(ParamsError, match=r"params.yaml: not valid YAML: mapping values are not "
                                          r"allowed here \(line 2, column 6\)$"):
        _load(tmp_path, "seed: 42\n  bad: indent: here\n")
    with pytest.raises(ParamsError, match=r"not valid YAML: expected ',' or '\]', but got "
                                          r"'<stream end>' \(line 3, column 1\)$"):
        _load(tmp_path, "seed: 42\nhead: [unclosed\n")


@pytest.mark.parametrize(("changes", "message"), [
    ({"validate.min_side": 9, "validate.max_side": 8},
     "validate: Value error, min_side (9) exceeds max_side (8)"),
    ({"scratch.wrn.depth": 4}, "scratch.wrn: Value error, depth must be 6N+4 with N >= 1 (10, "
                               "16, 22, 28, 40, ...), got 4"),
    ({"scratch.wrn.depth": 11}, "got 11"),
    ({"finetune.wrn": repo_params()["finetune"]["resnet50"]},
     "Value error, model name(s) ['wrn'] in both finetune and scratch: each model needs its "
     "own name (it names its stages and files)"),
])
def test_each_rule_between_keys_names_the_values_at_fault(changes, message):
    raw = copy.deepcopy(repo_params())
    for key, value in changes.items():
        node = raw
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    with pytest.raises(ParamsError) as err:
        params.parse(raw)
    assert message in str(err.value)


def test_the_edges_of_each_rule_between_keys_are_allowed():
    raw = copy.deepcopy(repo_params())
    raw["validate"]["min_side"] = raw["validate"]["max_side"] = 64
    raw["scratch"]["wrn"]["depth"] = 10
    loaded = params.parse(raw)
    assert (loaded.validate_.min_side, loaded.scratch["wrn"].depth) == (64, 10)
