"""The manifest validation: the suites in pipeline/data/suites/manifest.yaml, the report
built from Great Expectations' results, and the stage that writes it.

Manifests are small DataFrames built here; no image is read. Every failure kind
is checked for its severity and for naming the offending file, since a failure
that does not say which file is at fault sends someone grepping a CSV.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import (
    ROOT,
    hamming,
    images_params,
    package_data,
    params,
    run_stage,
    validate_params,
    write_params,
)
from PIL import Image

from pipeline.core.params import ValidateParams
from pipeline.data.data_docs import make_offline
from pipeline.data.duplicates import mark_copies
from pipeline.data.phash import phash
from pipeline.data.validation.run import validate_manifest
from pipeline.data.validation.suite import (
    SUITE_FILE,
    SuiteError,
    load_suites,
    substitute,
    suite_values,
)
from pipeline.data.validation.tables import REQUIRED_COLUMNS
from pipeline.data.validation.validation_report import Failure, ValidationReport

CLASSES = ["cat", "dog"]
PER_SPLIT = {"train": 6, "val": 5, "test": 5}
CFG = ValidateParams(classes=CLASSES, min_per_class=5, min_side=16, max_side=4096, max_imbalance=3)
IMAGES = images_params()  # params.yaml's data.images: formats, modes, max_aspect


def make_manifest(
    classes: list[str] = CLASSES, per_split: dict[str, int] = PER_SPLIT
) -> pd.DataFrame:
    """A manifest that passes every expectation of CFG."""
    rows = []
    for label in classes:
        for split, n in per_split.items():
            for i in range(n):
                path = f"{label}/{split}_{i:03d}.jpg"
                rows.append(
                    {
                        "path": path,
                        "label": label,
                        "split": split,
                        "width": 64,
                        "height": 48,
                        "channels": 3,
                        "format": "JPEG",
                        "bytes": 2048,
                        "sha256": hashlib.sha256(path.encode()).hexdigest(),
                        "error": "",
                        "decodable": True,
                        "truncated": False,
                        "ext_mismatch": False,
                        "mode": "RGB",
                        "bits": 8,
                        "orientation": 1,
                        "aspect": 1.333,
                        "phash": hashlib.md5(path.encode()).hexdigest()[:16],
                        "issue": "",
                        "action": "ok",
                        "duplicate_of": "",
                        "duplicate_distance": None,
                        "leakage": False,
                    }
                )
    return pd.DataFrame(rows)


def row(df: pd.DataFrame, path: str) -> int:
    return int(df.index[df["path"] == path][0])


def failures(report: ValidationReport, column: str) -> list[Failure]:
    return [f for f in report.failures if f.column == column]


def only_failure(report: ValidationReport, column: str, severity: str = "critical") -> Failure:
    found = failures(report, column)
    assert len(found) == 1, report.format_table()
    assert found[0].severity == severity
    return found[0]


@pytest.fixture(scope="module")
def clean() -> pd.DataFrame:
    return make_manifest()


@pytest.fixture(scope="module")
def clean_report(clean: pd.DataFrame) -> ValidationReport:
    return validate_manifest(clean, CFG, images_params=IMAGES)


# --------------------------------------------------------------------------- passing


def test_clean_manifest_passes(clean_report: ValidationReport) -> None:
    assert clean_report.success, clean_report.format_table()
    assert clean_report.failures == ()
    assert clean_report.evaluated == 32
    assert clean_report.format_table().startswith("validation: 0 critical failure(s), 0 warning")


def test_metrics_are_counts_json_and_deterministic(
    clean: pd.DataFrame, clean_report: ValidationReport
) -> None:
    assert clean_report.to_metrics() == {"success": True, "critical_failures": 0, "warnings": 0}
    metrics = clean_report.to_summary()
    assert metrics == {
        "success": True,
        "images": 32,
        "classes": 2,
        "per_split": {"train": 12, "val": 10, "test": 10},
        "per_class": {"cat": 16, "dog": 16},
        "expectations": {"evaluated": 32, "successful": 32, "failed": 0},
        "critical_failures": 0,
        "warnings": 0,
        "failures": [],
    }
    bad = clean.copy()
    bad.loc[0, "sha256"] = bad.loc[1, "sha256"]
    bad.loc[2, "width"] = 4
    first, second = (validate_manifest(bad, CFG, images_params=IMAGES) for _ in range(2))
    assert json.dumps(first.to_metrics()) == json.dumps(second.to_metrics())
    assert first.to_metrics()["success"] is False
    assert first.to_metrics()["critical_failures"] == 1
    assert first.to_metrics()["warnings"] == 1


# --------------------------------------------------------------------------- row-level failures


@pytest.mark.parametrize("blank", [None, "", "  "])
def test_missing_value_fails_and_names_the_file(clean: pd.DataFrame, blank: str | None) -> None:
    df = clean.copy()
    df.loc[row(df, "dog/val_002.jpg"), "label"] = blank
    report = validate_manifest(df, CFG, images_params=IMAGES)
    assert not report.success
    failure = only_failure(report, "label")
    assert failure.expectation == "expect_column_values_to_not_be_null"
    assert failure.unexpected_count == 1
    assert "dog/val_002.jpg" in report.format_table()


def test_unknown_label_fails(clean: pd.DataFrame) -> None:
    df = clean.copy()
    df.loc[row(df, "cat/train_001.jpg"), "label"] = "cow"
    report = validate_manifest(df, CFG, images_params=IMAGES)
    failure = only_failure(report, "label")
    assert failure.expectation == "expect_column_values_to_be_in_set"
    assert "cat/train_001.jpg (label=cow)" in report.format_table()


def test_bad_split_fails(clean: pd.DataFrame) -> None:
    df = clean.copy()
    df.loc[row(df, "cat/train_001.jpg"), "split"] = "dev"
    report = validate_manifest(df, CFG, images_params=IMAGES)
    assert only_failure(report, "split").expectation == "expect_column_values_to_be_in_set"
    assert "cat/train_001.jpg (split=dev)" in report.format_table()


def test_too_small_image_fails_with_its_size(clean: pd.DataFrame) -> None:
    df = clean.copy()
    df.loc[row(df, "dog/test_004.jpg"), ["width", "height"]] = [8, 12]
    report = validate_manifest(df, CFG, images_params=IMAGES)
    assert only_failure(report, "width").unexpected_count == 1
    assert only_failure(report, "height").unexpected_count == 1
    assert "dog/test_004.jpg 8x12" in report.format_table()


def test_undecodable_image_fails_with_its_error(clean: pd.DataFrame) -> None:
    df = clean.copy()
    i = row(df, "cat/val_000.jpg")
    df.loc[i, ["width", "height", "channels", "format"]] = None
    df.loc[i, "error"] = "cannot identify image file"
    report = validate_manifest(df, CFG, images_params=IMAGES)
    assert not report.success
    assert only_failure(report, "error").unexpected_count == 1
    assert only_failure(report, "width").expectation == "expect_column_values_to_not_be_null"
    assert "cat/val_000.jpg: cannot identify image file" in report.format_table()


def test_duplicate_within_a_split_is_a_warning_only(clean: pd.DataFrame) -> None:
    df = clean.copy()
    df.loc[row(df, "cat/train_002.jpg"), "sha256"] = df.loc[row(df, "cat/train_001.jpg"), "sha256"]
    report = validate_manifest(df, CFG, images_params=IMAGES)
    assert report.success, report.format_table()
    failure = only_failure(report, "sha256", severity="warning")
    assert failure.unexpected_count == 2
    assert failure.offenders[0].startswith("cat/train_001.jpg = cat/train_002.jpg")
    assert report.to_metrics()["warnings"] == 1


def test_duplicate_across_splits_is_leakage(clean: pd.DataFrame) -> None:
    df = clean.copy()
    df.loc[row(df, "dog/test_000.jpg"), "sha256"] = df.loc[row(df, "dog/train_000.jpg"), "sha256"]
    report = validate_manifest(df, CFG, images_params=IMAGES)
    assert not report.success
    only_failure(report, "sha256", severity="warning")
    leak = only_failure(report, "sha256_splits")
    assert leak.offenders[0].startswith("dog/train_000.jpg (train) = dog/test_000.jpg (test)")


def test_duplicate_path_fails(clean: pd.DataFrame) -> None:
    df = pd.concat([clean, clean.iloc[[0]]], ignore_index=True)
    report = validate_manifest(df, CFG, images_params=IMAGES)
    assert "cat/train_000.jpg (listed 2 times)" in only_failure(report, "path").offenders


def test_rejected_image_fails_naming_the_file_and_the_issue(clean: pd.DataFrame) -> None:
    df = clean.copy()
    i = row(df, "cat/test_001.jpg")
    df.loc[i, ["decodable", "truncated", "action"]] = [False, True, "reject"]
    df.loc[i, ["issue", "error"]] = "truncated"
    j = row(df, "dog/val_003.jpg")
    df.loc[j, ["mode", "action", "issue"]] = ["LAB", "reject", "mode LAB not allowed"]
    k = row(df, "dog/train_000.jpg")
    df.loc[k, ["aspect", "action", "issue"]] = [12.5, "reject", "aspect 12.5 > 10"]
    report = validate_manifest(df, CFG, images_params=IMAGES)
    assert not report.success
    table = report.format_table()
    assert "cat/test_001.jpg (decodable=false): truncated" in table
    assert "cat/test_001.jpg (truncated=true): truncated" in table
    assert "dog/val_003.jpg (mode=LAB): mode LAB not allowed" in table
    assert "dog/train_000.jpg (aspect=12.5): aspect 12.5 > 10" in table
    assert only_failure(report, "action").unexpected_count == 3
    assert "aspect ratio (long / short side) at most 10" in table


def test_near_copy_across_splits_is_leakage_and_within_a_split_a_warning(
    clean: pd.DataFrame,
) -> None:
    df = clean.copy()
    df.loc[row(df, "dog/test_002.jpg"), ["duplicate_of", "duplicate_distance", "leakage"]] = [
        "dog/train_001.jpg", 2, True]
    df.loc[row(df, "cat/train_004.jpg"), ["duplicate_of", "duplicate_distance", "sha256"]] = [
        "cat/train_003.jpg", 0, df.loc[row(df, "cat/train_003.jpg"), "sha256"]]
    report = validate_manifest(df, CFG, images_params=IMAGES)
    assert not report.success
    leak = only_failure(report, "leakage")
    assert leak.offenders == (
        "dog/test_002.jpg (test): near copy (distance 2) of dog/train_001.jpg (train)",)
    copies = only_failure(report, "duplicate_of", severity="warning")
    assert copies.unexpected_count == 2
    assert "cat/train_004.jpg (train): exact copy of cat/train_003.jpg (train)" in copies.offenders


def _jpeg(picture: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=quality)
    return out.getvalue()


def test_only_identical_bytes_are_called_an_exact_copy(clean: pd.DataFrame) -> None:
    """One picture saved at two JPEG qualities: other bytes, the same perceptual hash.
    Marked as prepare marks copies, it is a near copy at distance 0, not an exact one;
    the same bytes stored again are the exact copy."""
    blocks = np.random.default_rng(1).integers(0, 256, (2, 2, 3), dtype=np.uint8)
    picture = Image.fromarray(blocks).resize((128, 128), Image.NEAREST)
    files = {"cat/train_003.jpg": _jpeg(picture, 95), "cat/train_004.jpg": _jpeg(picture, 75)}
    files["cat/train_005.jpg"] = files["cat/train_003.jpg"]
    df = clean.copy()
    for path, data in files.items():
        df.loc[row(df, path), ["sha256", "phash", "bytes"]] = [
            hashlib.sha256(data).hexdigest(), phash(Image.open(io.BytesIO(data))), len(data)]
    original, requalified = (df.loc[row(df, p)] for p in ("cat/train_003.jpg", "cat/train_004.jpg"))
    assert original["sha256"] != requalified["sha256"]
    assert hamming(original["phash"], requalified["phash"]) == 0

    marked = mark_copies(df.drop(columns=["duplicate_of", "duplicate_distance", "leakage"]),
                         near_threshold=4)
    report = validate_manifest(marked, CFG, images_params=IMAGES)

    copies = only_failure(report, "duplicate_of", severity="warning")
    assert set(copies.offenders) == {
        "cat/train_004.jpg (train): near copy (distance 0) of cat/train_003.jpg (train)",
        "cat/train_005.jpg (train): exact copy of cat/train_003.jpg (train)",
    }


def test_formats_modes_and_aspect_come_from_params(clean: pd.DataFrame) -> None:
    df = clean.copy()
    df.loc[row(df, "cat/val_000.jpg"), ["format", "ext_mismatch"]] = ["PNG", True]
    df.loc[row(df, "cat/val_001.jpg"), "format"] = "MPO"  # a camera's JPEG
    df.loc[row(df, "dog/val_001.jpg"), "mode"] = "CMYK"
    report = validate_manifest(df, CFG, images_params=IMAGES)
    assert report.success, report.format_table()
    assert only_failure(report, "ext_mismatch", severity="warning").offenders == (
        "cat/val_000.jpg (ext_mismatch=true)",)
    strict = images_params(formats=["JPEG"], modes=["RGB"], max_aspect=1.2)
    report = validate_manifest(df, CFG, images_params=strict)
    assert only_failure(report, "format").offenders == ("cat/val_000.jpg (format=PNG)",)
    assert only_failure(report, "mode").offenders == ("dog/val_001.jpg (mode=CMYK)",)
    assert only_failure(report, "aspect").unexpected_count == len(df)


def test_missing_column_is_named(clean: pd.DataFrame) -> None:
    report = validate_manifest(clean.drop(columns=["bytes"]), CFG, images_params=IMAGES)
    assert not report.success
    table = report.format_table()
    assert "missing column(s): bytes" in table
    # The per-column expectation on the absent column reports GX's error, not a crash.
    assert 'The column "bytes"' in table


def test_offending_files_are_capped(clean: pd.DataFrame) -> None:
    df = clean.copy()
    df.loc[df["label"] == "cat", "channels"] = 5
    report = validate_manifest(df, CFG, images_params=IMAGES)
    assert only_failure(report, "channels").unexpected_count == 16
    table = report.format_table(max_files=3)
    assert table.count("(channels=5)") == 3
    assert "... and 13 more" in table


# --------------------------------------------------------------------------- class counts


def test_class_missing_from_a_split_fails(clean: pd.DataFrame) -> None:
    df = clean[~((clean["label"] == "dog") & (clean["split"] == "val"))]
    report = validate_manifest(df, CFG, images_params=IMAGES)
    assert not report.success
    rules = {f.rule: f.offenders for f in report.failures if f.column == "images"}
    assert rules["every class is present in every split"] == ("dog/val: 0 image(s)",)
    assert "dog/val: 0 image(s)" in report.format_table()


def test_class_below_min_count_fails(clean: pd.DataFrame) -> None:
    df = clean.drop(index=[row(clean, "dog/test_003.jpg"), row(clean, "dog/test_004.jpg")])
    report = validate_manifest(df, CFG, images_params=IMAGES)
    failure = only_failure(report, "images")
    assert failure.rule == "every class has at least 5 images in every split"
    assert failure.offenders == ("dog/test: 3 image(s)",)


def test_class_imbalance_fails(clean: pd.DataFrame) -> None:
    many = make_manifest(["cat"], {"train": 40, "val": 5, "test": 5})
    df = pd.concat([many, clean[clean["label"] == "dog"]], ignore_index=True)
    report = validate_manifest(df, CFG, images_params=IMAGES)
    failure = only_failure(report, "ratio_to_smallest")
    assert failure.rule == "largest class / smallest class <= 3"
    assert failure.offenders == ("cat: 50 images, 3.1x dog (16)",)


def test_found_labels_are_the_classes_when_the_param_is_empty(clean: pd.DataFrame) -> None:
    df = clean.copy()
    df.loc[row(df, "cat/train_001.jpg"), "label"] = "cow"
    report = validate_manifest(df, validate_params(min_per_class=1), images_params=IMAGES)
    # cow is a class now: not an unknown label, but absent from val and test.
    assert failures(report, "label") == []
    assert "cow/val: 0 image(s)" in report.format_table()


# --------------------------------------------------------------------------- the suite YAML


def test_placeholders_keep_their_type_whole_and_format_inside_text() -> None:
    values = {"classes": ["a", "b"], "min_side": 16, "max_imbalance": 2.5}
    tree = {"set": "${classes}", "n": ["${min_side}"], "text": "at least ${min_side}, ${classes}"}
    assert substitute(tree, values) == {"set": ["a", "b"], "n": [16], "text": "at least 16, a, b"}
    assert substitute("ratio <= ${max_imbalance}", values) == "ratio <= 2.5"
    with pytest.raises(SuiteError, match=r"unknown placeholder \$\{max_sides\}"):
        substitute({"k": "${max_sides}"}, values)


def test_suite_yaml_is_driven_by_params() -> None:
    cfg = validate_params(min_side=20, max_side=640, min_per_class=7, max_imbalance=1.5)
    suites = load_suites(suite_values(cfg, ["x", "y"], ["train", "val", "test"], IMAGES))
    assert "${" not in json.dumps(suites)
    by_key = {
        (table, e["type"], e["kwargs"].get("column")): e
        for table, suite in suites.items()
        for e in suite["expectations"]
    }
    label = by_key["images", "expect_column_values_to_be_in_set", "label"]
    assert label["kwargs"]["value_set"] == ["x", "y"]
    width = by_key["images", "expect_column_values_to_be_between", "width"]
    assert (width["kwargs"]["min_value"], width["kwargs"]["max_value"]) == (20, 640)
    assert width["meta"]["rule"] == "width between 20 and 640 px"
    sha = by_key["images", "expect_column_values_to_be_unique", "sha256"]
    assert sha["meta"]["severity"] == sha["severity"] == "warning"
    ratio = by_key["class_totals", "expect_column_values_to_be_between", "ratio_to_smallest"]
    assert ratio["kwargs"]["max_value"] == 1.5
    # data.images drives the format, mode and aspect rules; MPO is a camera's JPEG.
    strict = images_params(formats=["JPEG"], modes=["RGB", "L"], max_aspect=2.0)
    values = suite_values(cfg, ["x"], ["train"], strict)
    assert (values["formats"], values["modes"], values["max_aspect"]) == (
        ["JPEG", "MPO"], ["RGB", "L"], 2.0)
    columns = by_key["images", "expect_table_columns_to_match_set", None]["kwargs"]["column_set"]
    assert tuple(columns) == REQUIRED_COLUMNS
    raw = yaml.safe_load(SUITE_FILE.read_text(encoding="utf-8"))
    for suite in raw["suites"].values():
        for expectation in suite["expectations"]:
            assert expectation["meta"]["severity"] in ("critical", "warning")
            assert expectation["meta"]["rule"]


def test_the_suite_yaml_ships_with_the_package() -> None:
    """A non-editable install carries the YAML this module reads: setuptools' package-data
    globs (relative to each package's folder) match SUITE_FILE."""
    shipped = package_data()
    assert SUITE_FILE.resolve() in shipped, sorted(map(str, shipped))


def _write_suites(tmp_path: Path, edit: dict) -> Path:
    raw = yaml.safe_load(SUITE_FILE.read_text(encoding="utf-8"))
    raw["suites"]["images"]["expectations"].append(edit)
    path = tmp_path / "suites.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_unknown_expectation_type_is_an_error_not_dropped(
    tmp_path: Path, clean: pd.DataFrame
) -> None:
    path = _write_suites(
        tmp_path,
        {
            "type": "expect_column_values_to_be_sensible",
            "kwargs": {"column": "path"},
            "meta": {"severity": "critical", "rule": "a typo"},
        },
    )
    with pytest.raises(SuiteError, match="30 expectations in the YAML but 29 built") as err:
        validate_manifest(clean, CFG, suite_file=path, images_params=IMAGES)
    assert "expect_column_values_to_be_sensible" in str(err.value)


def test_expectation_without_severity_is_an_error(tmp_path: Path) -> None:
    path = _write_suites(
        tmp_path,
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "path"}, "meta": {}},
    )
    with pytest.raises(SuiteError, match="meta.severity must be one of"):
        load_suites(suite_values(CFG, CLASSES, ["train"], IMAGES), path)


# --------------------------------------------------------------------------- the stage


def _params(tmp_path: Path, **validate: object) -> None:
    """The repository's params.yaml in ``tmp_path``, with the validate keys of these tests."""
    changes = {"classes": CLASSES, "min_per_class": 5, **validate}
    write_params(tmp_path, {f"validate.{key}": value for key, value in changes.items()})


def test_stage_fails_on_leakage_and_still_writes_metrics(
    tmp_path: Path, clean: pd.DataFrame
) -> None:
    _params(tmp_path)
    df = clean.copy()
    df.loc[row(df, "cat/val_001.jpg"), "sha256"] = df.loc[row(df, "cat/train_001.jpg"), "sha256"]
    df.loc[row(df, "dog/val_002.jpg"), "ext_mismatch"] = True  # a flag through the CSV
    (tmp_path / "data").mkdir()
    df.to_csv(tmp_path / "data" / "manifest.csv", index=False)

    done = run_stage(tmp_path, "validate", timeout=120)

    assert done.returncode == 1, done.stderr
    assert "validation failed: 1 critical expectation(s)" in done.stderr
    assert "cat/train_001.jpg (train) = cat/val_001.jpg (val)" in done.stdout
    assert "Calculating Metrics" not in done.stderr  # GX's progress bars are off
    metrics = json.loads((tmp_path / "metrics" / "validation.json").read_text(encoding="utf-8"))
    assert metrics["success"] is False
    assert metrics["critical_failures"] == 1
    assert metrics["warnings"] == 2  # the copy, and dog/val_002.jpg's extension
    assert "dog/val_002.jpg (ext_mismatch=true)" in done.stdout
    docs = tmp_path / "reports" / "data_docs"
    assert (docs / "index.html").is_file()
    assert len(list((docs / "validations").rglob("*.html"))) == 3  # one page per table


def test_stage_options_and_success(tmp_path: Path, clean: pd.DataFrame) -> None:
    _params(tmp_path)
    clean.to_csv(tmp_path / "in.csv", index=False)

    done = run_stage(tmp_path, "validate", "--manifest", "in.csv", "--metrics", "out/v.json",
                     "--summary", "out/all.json", "--docs", "d", timeout=120)

    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "d" / "index.html").is_file()
    assert json.loads((tmp_path / "out" / "v.json").read_text(encoding="utf-8"))["success"]
    assert "0 critical failure(s)" in done.stdout
    assert not (tmp_path / "metrics").exists() and not (tmp_path / "reports").exists()


def test_stage_main_takes_params_and_paths(
    tmp_path: Path, clean: pd.DataFrame, monkeypatch: pytest.MonkeyPatch, caplog, capsys
) -> None:
    """The stage's main(params, manifest, metrics, summary, docs), as stage.run calls it."""
    clean.to_csv(tmp_path / "in.csv", index=False)
    monkeypatch.chdir(tmp_path)
    spec = importlib.util.spec_from_file_location("validate_stage", ROOT / "stages/validate.py")
    assert spec and spec.loader
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)  # not as __main__: defines main, runs nothing
    loaded = params({"validate.classes": CLASSES, "validate.min_per_class": 5})

    out = Path("out/v.json"), Path("out/all.json"), Path("d")
    caplog.set_level(logging.INFO)  # the module's logger: not __main__, not set up by stage.run
    assert stage.main(loaded, Path("in.csv"), *out) == 0
    assert (tmp_path / "d" / "index.html").is_file()
    assert json.loads((tmp_path / "out" / "v.json").read_text(encoding="utf-8"))["success"]
    assert "0 critical failure(s)" in caplog.text
    caplog.clear()

    bad = clean.copy()
    bad.loc[row(bad, "cat/test_000.jpg"), "width"] = 4  # too small
    bad.to_csv(tmp_path / "bad.csv", index=False)
    caplog.set_level(logging.WARNING)  # -q: the failed table is still there to read
    capsys.readouterr()
    assert stage.main(loaded, Path("bad.csv"), *out) == 1
    assert "cat/test_000.jpg 4x48" in capsys.readouterr().out
    assert "validation failed" in caplog.text


def test_stage_bad_params_exit_2(tmp_path: Path, clean: pd.DataFrame) -> None:
    _params(tmp_path, min_side=0)
    (tmp_path / "data").mkdir()
    clean.to_csv(tmp_path / "data" / "manifest.csv", index=False)

    done = run_stage(tmp_path, "validate", timeout=120)

    assert done.returncode == 2
    assert "validate.min_side" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "metrics").exists()


def test_stage_unreadable_manifest_exit_2(tmp_path: Path) -> None:
    _params(tmp_path)

    done = run_stage(tmp_path, "validate", "--manifest", "missing.csv", timeout=120)

    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and "missing.csv" in done.stderr
    assert "Traceback" not in done.stderr


# --------------------------------------------------------------------------- Data Docs
# Great Expectations' Data Docs read offline (pipeline/data/data_docs.py): nothing loads
# from the network, the index lists every validation with a visible status, and each
# result says passed or failed.

LOADS_REMOTE = re.compile(r"<(?:link|script|img)\b[^>]*(?:href|src)=\"(?:https?:)?//", re.I)


@pytest.fixture(scope="module")
def docs_site(tmp_path_factory) -> Path:
    """The Data Docs of a manifest with one undecodable image (a critical failure)."""
    df = make_manifest()
    i = row(df, "cat/val_000.jpg")
    df.loc[i, ["width", "height", "channels", "format"]] = None
    df.loc[i, "error"] = "cannot identify image file"
    docs = tmp_path_factory.mktemp("docs") / "data_docs"
    assert not validate_manifest(df, CFG, images_params=IMAGES, docs_dir=docs).success
    return docs


def test_data_docs_no_page_loads_anything_from_the_network(docs_site: Path) -> None:
    pages = list(docs_site.rglob("*.html"))
    assert len(pages) >= 7  # the index, 3 suites, 3 validation results
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert not LOADS_REMOTE.search(text), (page, LOADS_REMOTE.search(text)[0])
        assert "<script" not in text and "fa-check-circle" not in text
        assert text.count(".gx-status {") == 1  # the stylesheet, once


def test_data_docs_index_lists_each_validation_with_status_and_link(docs_site: Path) -> None:
    index = (docs_site / "index.html").read_text(encoding="utf-8")
    rows = re.findall(r"<tr>(.*?)</tr>", index, re.S)
    statuses = {table: ("failed" if "gx-fail" in r else "passed")
                for r in rows for table in ("images", "class_totals", "class_split_counts")
                if f"manifest-{table}" in r}
    assert statuses == {"images": "failed", "class_totals": "passed",
                        "class_split_counts": "passed"}
    links = re.findall(r'<a href="(validations/[^"]+)"', index)
    assert len(links) == 3 and all((docs_site / link).is_file() for link in links), links


def test_data_docs_each_expectation_shows_passed_or_failed(docs_site: Path) -> None:
    (page,) = (docs_site / "validations").rglob("manifest-images.html")
    text = page.read_text(encoding="utf-8")
    assert text.count("&#10008; failed") >= 3  # width, height, ... of the undecodable image
    assert text.count("&#10004; passed") >= 20


def test_data_docs_made_offline_twice_are_unchanged(docs_site: Path) -> None:
    """GX rewrites only the new run's pages: the pages of earlier runs are left as made."""
    before = {p: p.read_bytes() for p in docs_site.rglob("*.html")}
    make_offline(docs_site)
    assert {p: p.read_bytes() for p in docs_site.rglob("*.html")} == before
