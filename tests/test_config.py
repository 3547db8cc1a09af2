"""params.yaml is validated at load, and errors name the key at fault."""

from __future__ import annotations

import pytest
from helpers import ROOT, repo_params

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


def test_an_entry_may_be_left_out():
    """Entries are the models to train: removing one is a choice, not a missing key."""
    raw = repo_params()
    del raw["scratch"]["wrn"]
    loaded = params.parse(raw)
    assert "wrn" not in loaded.scratch and loaded.models() == ["head", "resnet50", "resnet9"]
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
