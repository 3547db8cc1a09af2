"""Test-split scores, the confusion-plot data and the comparison table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.evaluation.compare import comparison_table
from pipeline.evaluation.confusion import write_confusion
from pipeline.evaluation.scores import score

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
    assert out["per_class"]["dog"] == {"precision": pytest.approx(2 / 3, abs=1e-4),
                                       "recall": 1.0, "f1": pytest.approx(0.8, abs=1e-4),
                                       "support": 2}
    assert out["macro_f1"] == pytest.approx(np.mean([0.5, 0.8, 2 / 3]), abs=1e-4)


def test_top_k_is_left_out_when_k_covers_every_class():
    proba = np.eye(3)
    assert "top_3_accuracy" not in score(np.arange(3), proba, CLASSES, top_k=3)


def test_class_absent_from_predictions_scores_zero_not_nan():
    out = score(np.array([0, 1]), np.array([[1.0, 0, 0], [1.0, 0, 0]]), CLASSES, top_k=1)
    assert out["per_class"]["fox"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_confusion_rows_name_the_classes(tmp_path):
    write_confusion(tmp_path / "c.csv", np.array([0, 2]), np.array([1, 2]), CLASSES)
    frame = pd.read_csv(tmp_path / "c.csv")
    assert frame.to_dict("records") == [{"actual": "cat", "predicted": "dog"},
                                        {"actual": "fox", "predicted": "fox"}]


def test_table_sorts_by_accuracy_and_marks_missing_figures():
    table = comparison_table({
        "head": {"accuracy": 0.5, "macro_f1": 0.4, "trainable_params": 10245,
                 "train_seconds": 3.2, "inference_images_per_second": 30.0},
        "wrn": {"accuracy": 0.9, "macro_f1": 0.9, "trainable_params": 1000},
    })
    lines = table.splitlines()
    assert lines[2].startswith("| wrn | 0.9000 | 0.9000 | 1,000 | n/a | n/a |")
    assert lines[3] == "| head | 0.5000 | 0.4000 | 10,245 | 3.2 | 30.0 |"
