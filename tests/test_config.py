"""params.yaml is validated at load, and errors name the key at fault."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline import config

ROOT = Path(__file__).resolve().parents[1]


def repo_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_repository_params_are_valid():
    cfg = config.load(ROOT / "params.yaml")
    assert cfg.backbone.arch == "resnet50"
    assert cfg.data.split.as_dict() == pytest.approx({"train": 0.7, "val": 0.15, "test": 0.15})


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
    ],
)
def test_bad_value_names_the_key(section, key, value, expected):
    raw = repo_params()
    raw[section][key] = value
    with pytest.raises(config.ConfigError) as err:
        config.parse(raw)
    assert expected in str(err.value)


def test_split_fractions_must_sum_to_one():
    raw = repo_params()
    raw["data"]["split"] = {"train": 0.8, "val": 0.15, "test": 0.15}
    with pytest.raises(config.ConfigError, match=r"data\.split: .*sum to 1.*1\.1"):
        config.parse(raw)


def test_unknown_top_level_section():
    raw = repo_params() | {"heads": {}}
    with pytest.raises(config.ConfigError, match="heads: unknown key"):
        config.parse(raw)


def test_unreadable_and_invalid_yaml(tmp_path):
    with pytest.raises(config.ConfigError, match="cannot read"):
        config.load(tmp_path / "missing.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("head: [unclosed\n")
    with pytest.raises(config.ConfigError, match="not valid YAML"):
        config.load(bad)


def test_every_error_is_reported_at_once():
    raw = repo_params()
    raw["head"]["dropout"] = 1.5
    raw["backbone"]["batch_size"] = 0
    with pytest.raises(config.ConfigError) as err:
        config.parse(raw)
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
    with pytest.raises(config.ConfigError) as err:
        config.parse(raw)
    assert expected in str(err.value)


def test_image_defaults_are_the_image_checks_defaults():
    """params.yaml, config.py and pipeline/images.py agree on what the decoder reads."""
    from pipeline.images import ImagePolicy, policy_for

    cfg = config.load(ROOT / "params.yaml")
    assert cfg.data.images.near_threshold == 3 and cfg.data.sha256 is None
    policy = policy_for(cfg)
    assert policy == ImagePolicy(min_side=cfg.validate_.min_side, max_side=cfg.validate_.max_side)
    assert set(config.TF_FORMATS) == ImagePolicy().allowed_formats
    assert set(config.TF_MODES) == ImagePolicy().modes_convert
    raw = repo_params()
    raw["data"]["images"]["near_threshold"] = None
    assert config.parse(raw).data.images.near_threshold is None
