"""Test-split scores, per-class figures, the confusion-plot data and per-image predictions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.evaluation import predictions
from pipeline.evaluation.confusion import write_confusion
from pipeline.evaluation.scores import per_class, score

CLASSES = ["cat", "dog", "fox"]


def test_scores_of_a_known_prediction():
    y = np.array([0, 0, 1, 1, 2, 2])
    proba = np.array([
        [0.8, 0.1, 0.1], [0.2, 0.7, 0.1],  # cat right, cat -> dog
        [0.1, 0.8, 0.1], [0.1, 0.6, 0.3],  # dog right twice
        [0.1, 0.2, 0.7], [0.5, 0.1, 0.4],  # fox right, fox -> cat (fox 2nd)
    ])
    out = score(y, proba, CLASSES, top_k=2)
    assert out["accuracy"] == pytest.approx(4 / 6, abs=1e-4)
    assert out["top_2_accuracy"] == pytest.approx(6 / 6, abs=1e-4)
    assert set(out) == {"accuracy", "top_2_accuracy", "macro_f1"}  # nothing per class
    dog = per_class(y, proba.argmax(1), CLASSES).set_index("class").loc["dog"]
    assert dog.to_dict() == {"precision": pytest.approx(2 / 3, abs=1e-4), "recall": 1.0,
                             "f1": pytest.approx(0.8, abs=1e-4), "support": 2}
    assert out["macro_f1"] == pytest.approx(np.mean([0.5, 0.8, 2 / 3]), abs=1e-4)


def test_top_k_is_left_out_when_k_covers_every_class():
    proba = np.eye(3)
    assert "top_3_accuracy" not in score(np.arange(3), proba, CLASSES, top_k=3)


def test_class_absent_from_predictions_scores_zero_not_nan():
    out = per_class(np.array([0, 1]), np.array([0, 0]), CLASSES).set_index("class")
    assert out.loc["fox"].to_dict() == {"precision": 0.0, "recall": 0.0, "f1": 0.0,
                                        "support": 0}


@pytest.mark.parametrize("seed", range(4))
def test_scores_are_scikit_learns(seed):
    """The NumPy scores (no scikit-learn import in evaluate_head) equal scikit-learn's, with a
    class never predicted, one never true, and ties in the top k."""
    from sklearn.metrics import (
        accuracy_score,
        f1_score,
        precision_recall_fscore_support,
        top_k_accuracy_score,
    )

    rng = np.random.default_rng(seed)
    k = 6
    y = rng.integers(0, k - 1, 300)  # class 5 never true
    proba = rng.dirichlet(np.ones(k), 300)
    proba[:, 4] = 0  # class 4 never predicted
    proba[::7, 1] = proba[::7, 2] = proba[::7].max(axis=1)  # ties for the top ranks
    proba = np.round(proba, 2)  # and ties further down
    names = [f"c{i}" for i in range(k)]
    out = score(y, proba, names, top_k=3)
    pred = proba.argmax(1)
    assert out["accuracy"] == round(accuracy_score(y, pred), 4)
    assert out["macro_f1"] == round(f1_score(y, pred, labels=np.arange(k), average="macro",
                                             zero_division=0), 4)
    assert out["top_3_accuracy"] == round(top_k_accuracy_score(y, proba, k=3,
                                                               labels=np.arange(k)), 4)
    table = per_class(y, pred, names)
    theirs = precision_recall_fscore_support(y, pred, labels=np.arange(k), zero_division=0)
    for column, expected in zip(("precision", "recall", "f1", "support"), theirs,
                                strict=True):
        np.testing.assert_array_equal(table[column], np.round(expected, 4))


def test_confusion_rows_name_the_classes(tmp_path):
    write_confusion(tmp_path / "c.csv", np.array([0, 2]), np.array([1, 2]), CLASSES)
    frame = pd.read_csv(tmp_path / "c.csv")
    assert frame.to_dict("records") == [{"actual": "cat", "predicted": "dog"},
                                        {"actual": "fox", "predicted": "fox"}]


def test_predictions_line_up_with_the_test_images_and_read_back(tmp_path):
    proba = np.array([[0.7, 0.2, 0.1], [0.3, 0.6, 0.1], [0.5, 0.1, 0.4]])
    table = predictions.frame(np.array(["c/1.jpg", "d/2.jpg", "f/3.jpg"]), np.array([0, 1, 2]),
                              proba, CLASSES)
    predictions.write(table, tmp_path / "p.csv")
    back = predictions.read(tmp_path / "p.csv")
    assert back.to_dict("records") == [
        {"path": "c/1.jpg", "label": "cat", "predicted": "cat", "confidence": 0.7,
         "correct": True},
        {"path": "d/2.jpg", "label": "dog", "predicted": "dog", "confidence": 0.6,
         "correct": True},
        {"path": "f/3.jpg", "label": "fox", "predicted": "cat", "confidence": 0.5,
         "correct": False},
    ]


def test_confused_pairs_are_counted_and_drawn_most_frequent_first(tmp_path):
    from PIL import Image

    from pipeline.evaluation.confused import confused_pairs, draw_confused_pairs

    # cat -> dog three times, fox -> cat twice, dog -> fox once, two right.
    truth = ["cat"] * 3 + ["fox"] * 2 + ["dog", "cat", "dog"]
    said = ["dog"] * 3 + ["cat"] * 2 + ["fox", "cat", "dog"]
    table = pd.DataFrame({"path": [f"{i}.png" for i in range(8)], "label": truth,
                          "predicted": said, "confidence": np.linspace(0.9, 0.5, 8),
                          "correct": [t == s for t, s in zip(truth, said, strict=True)]})
    pairs = confused_pairs(table)
    assert pairs.values.tolist() == [["cat", "dog", 3], ["fox", "cat", 2], ["dog", "fox", 1]]
    for i in range(8):
        Image.new("RGB", (20, 20), (i * 30, 0, 0)).save(tmp_path / f"{i}.png")
    drawn = draw_confused_pairs(table, tmp_path, "m", tmp_path / "pairs.png", top=2)
    assert len(drawn) == 2
    with Image.open(tmp_path / "pairs.png") as sheet:
        assert sheet.height > 100  # a title and two rows of thumbnails


def test_the_report_has_calibration_and_confused_pairs(tmp_path):
    from pipeline.evaluation.report import ModelResult, compare, markdown, to_html

    table = pd.DataFrame({"path": ["a", "b", "c", "d"], "label": ["cat", "dog", "cat", "fox"],
                          "predicted": ["dog", "dog", "dog", "fox"],
                          "confidence": [0.9, 0.8, 0.7, 0.6],
                          "correct": [False, True, False, True]})
    calibrated = {"accuracy": 0.5, "macro_f1": 0.4, "temperature": 2.5, "ece": 0.31,
                  "ece_calibrated": 0.05, "nll": 1.9, "nll_calibrated": 1.1}
    models = [ModelResult("new", "wrn", calibrated, {"train_seconds": 1.0}, table),
              ModelResult("old", "wrn", {"accuracy": 0.5, "macro_f1": 0.4},
                          {"train_seconds": 2.0}, table)]
    report = compare(models, "train_seconds", 0.05)
    text = markdown(report, {}, {})
    assert "| new | 2.500 | 0.310 | 0.050 | 1.900 | 1.100 |" in text
    assert "| old | – | – | – | – | – |" in text  # evaluated before calibration existed
    assert "cat → dog: 2" in text
    assert "<h2>Calibration</h2>" in to_html(report, {}, {})


def test_the_report_says_when_the_temperature_did_not_help_beside_the_figures():
    from pipeline.evaluation.report import ModelResult, compare, markdown, to_html

    table = pd.DataFrame({"path": ["a", "b"], "label": ["ants", "bees"],
                          "predicted": ["ants", "bees"], "confidence": 0.9,
                          "correct": [True, True]})
    # The ants/bees resnet50: temperature scaling raised its test ECE 0.089 -> 0.106.
    hurt = {"temperature": 1.31, "ece": 0.089, "ece_calibrated": 0.106, "nll": 0.30,
            "nll_calibrated": 0.28}
    helped = {"temperature": 2.5, "ece": 0.31, "ece_calibrated": 0.05, "nll": 1.9,
              "nll_calibrated": 1.1}
    off = {"ece": 0.2, "nll": 1.0}
    models = [ModelResult(name, name, metrics, {"train_seconds": 1.0}, table)
              for name, metrics in (("resnet50", hurt), ("head", helped), ("wrn", off))]
    report = compare(models, "train_seconds", 0.05)
    data = {"splits": {"train": 245, "val": 40, "test": 153}}
    text = markdown(report, data, {})
    calibration = text.split("## Calibration")[1].split("## Most-confused")[0]
    assert "| resnet50 | 1.310 | 0.089 | 0.106 | 0.300 | 0.280 | NO: ECE not lower |" in \
        calibration
    assert "| head | 2.500 | 0.310 | 0.050 | 1.900 | 1.100 | yes |" in calibration
    assert "| wrn | – | 0.200 | – | 1.000 | – | off (evaluate.calibration: none) |" in \
        calibration
    assert ("> **⚠ resnet50: temperature scaling (T = 1.31) did not improve the test ECE (ECE "
            "0.089 → 0.106): likely the 40 validation images it was fitted on are too few to "
            "estimate it") in calibration
    assert "head: temperature" not in calibration
    page = to_html(report, data, {})
    assert "<p class='warn'>⚠ resnet50: temperature scaling (T = 1.31) did not improve" in page


def test_the_shipped_size_counts_every_weight_the_export_ships(tmp_path, monkeypatch):
    import keras

    from pipeline.core.errors import PipelineError
    from pipeline.evaluation.evaluate import shipped_size
    from pipeline.models.classifier import backbone_with_head
    from pipeline.models.head import build_head
    from pipeline.models.size import of_file, of_network
    from pipeline.models.temperature import with_temperature

    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3), name="image")
    x = keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3)(inputs))
    backbone = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x), name="backbone")
    features = np.random.default_rng(0).normal(size=(20, 4)).astype("float32")
    head = build_head(features, 3, 0.2, 1e-4)
    head.compile("adam", "sparse_categorical_crossentropy")
    head.fit(features, np.arange(20) % 3, epochs=1, verbose=0)  # optimizer state, saved too
    head.save(tmp_path / "head.keras")
    full = backbone_with_head(backbone, head)  # a fine-tune: the compiled head nested in it
    full.save(tmp_path / "full.keras")
    # Read from the files without TensorFlow: what Keras counts, optimizer state left out.
    assert of_file(tmp_path / "head.keras") == of_network(head)
    assert of_file(tmp_path / "full.keras") == of_network(full)
    trainable = sum(int(np.prod(w.shape)) for w in backbone.trainable_weights)
    assert of_network(backbone)[0] == trainable + 8  # BatchNorm's moving mean and variance
    assert of_network(backbone)[1] == 4 * of_network(backbone)[0]  # float32

    # A head ships behind its backbone (the export's chain, temperature included): the
    # evaluate stage adds the backbone the features stage recorded.
    monkeypatch.chdir(tmp_path)
    Path("data/features").mkdir(parents=True)
    info = Path("data/features/info.json")
    info.write_text(json.dumps({"arch": "x"}))
    with pytest.raises(PipelineError, match="run `dvc repro features`"):
        shipped_size({"input": "features"}, of_file(tmp_path / "head.keras"))
    size = of_network(backbone)
    info.write_text(json.dumps({"params": size[0], "weight_bytes": size[1]}))
    exported = with_temperature(backbone_with_head(backbone, head), 1.5)
    assert shipped_size({"input": "features"}, of_file(tmp_path / "head.keras")) == \
        of_network(exported)
    assert shipped_size({"input": "image"}, of_network(full)) == of_network(exported)
