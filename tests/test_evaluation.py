"""Test-split scores, per-class figures, the confusion-plot data and per-image predictions."""

from __future__ import annotations

import json
import shutil
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

    from pipeline.evaluation.confused_pairs import confused_pairs, draw_confused_pairs

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
    from pipeline.evaluation.comparison import ModelResult, compare
    from pipeline.evaluation.report import markdown, to_html

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
    from pipeline.evaluation.comparison import ModelResult, compare
    from pipeline.evaluation.report import markdown, to_html

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


def test_the_report_writes_names_and_reasons_as_text_in_either_format():
    """A class, a model or an export's reason may hold "<", "&", quotes or "|": the HTML
    shows them as text (no markup of theirs reaches the page), and in the Markdown each
    stays inside its table cell."""
    from pipeline.evaluation.comparison import ModelResult, compare
    from pipeline.evaluation.report import markdown, to_html

    odd = "<i>dog</i> & co"
    table = pd.DataFrame({"path": ["a", "b"], "label": [odd, "cat|lynx"],
                          "predicted": [odd, odd], "confidence": 0.9, "correct": [True, False]})
    report = compare([ModelResult("m<1>", "f", {}, {}, table)], "train_seconds", 0.05)
    export = {"model": "m<1>", "temperature": 1.0, "test_images": 2, "formats": {
        "onnx": {"file": "model.onnx", "status": "failed",
                 "reason": "|dp| > 1e-3 for <op> & 'x'"}}}
    text = markdown(report, {}, {}, export=export)
    assert "| cat\\|lynx | 1 | 0.00 |" in text
    assert "| m<1> | 1 | cat\\|lynx → <i>dog</i> & co: 1 |" in text
    assert "| failed: \\|dp\\| > 1e-3 for <op> & 'x' |" in text
    page = to_html(report, {}, {}, export=export)
    assert "<i>" not in page and "<op>" not in page and "m<1>" not in page
    assert "<td>&lt;i&gt;dog&lt;/i&gt; &amp; co</td>" in page
    assert "<td>failed: |dp| &gt; 1e-3 for &lt;op&gt; &amp; &#x27;x&#x27;</td>" in page
    assert "<b>Recommended: m&lt;1&gt;.</b>" in page


def test_the_report_templates_ship_with_the_package():
    """A non-editable install carries the templates the report renders with."""
    from helpers import ROOT, package_data

    templates = (ROOT / "pipeline/evaluation/templates").resolve()
    assert [p.name for p in sorted(templates.iterdir())] == ["report.html.j2", "report.md.j2"]
    assert set(templates.iterdir()) <= package_data()


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


def _head_project(root: Path) -> None:
    """A project the head's evaluate stage runs on, its images recorded under ``images``."""
    from helpers import head_project

    head_project(root, CLASSES, {"val": 12, "test": 15})


def test_evaluate_finds_the_images_where_prepare_recorded_them_resolving_once_if_gone(
        tmp_path, monkeypatch):
    """evaluate reads data/source.json (a dependency of its stage): with its folder there,
    data.source is never resolved again (that would hash an archive or look in the
    download cache); with it gone (a fresh clone: the extraction is not DVC's), it is
    resolved once, offline, as every stage after prepare does."""
    from types import SimpleNamespace

    from pipeline.core.params import load
    from pipeline.data import sources
    from pipeline.evaluation.evaluate import evaluate

    calls = []

    def resolved(data, allow_download=True):
        calls.append(allow_download)
        return SimpleNamespace(root=Path("images").resolve())

    monkeypatch.setattr(sources, "resolve", resolved)
    _head_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    evaluate(load(), "head")
    scores = json.loads(Path("metrics/evaluate/head.json").read_text())
    assert scores["accuracy"] > 0 and Path("plots/head/mistakes.png").stat().st_size > 0
    assert calls == []

    Path("data/source.json").write_text(json.dumps({"source": "data/sample", "root": "gone"}))
    for written in ("metrics", "plots", "reports"):
        shutil.rmtree(written, ignore_errors=True)
    evaluate(load(), "head")
    assert calls == [False]
    assert json.loads(Path("metrics/evaluate/head.json").read_text()) == scores


# --------------------------------------------------------------------------- the comparison


def _scored(name: str, right: list[bool], metrics: dict | None = None, card: dict | None = None,
            paths: list[str] | None = None):
    from pipeline.evaluation.comparison import ModelResult

    paths = paths or [f"test/cat/{i}.jpg" for i in range(len(right))]
    table = pd.DataFrame({"path": paths, "label": "cat",
                          "predicted": ["cat" if r else "dog" for r in right],
                          "confidence": 0.9, "correct": right})
    # The evaluate stage's run facts (reports/runs/evaluate/<name>.json) apart from its
    # results, as load_results reads them.
    given = metrics or {}
    facts = {k: v for k, v in given.items() if k in EVALUATE_FACTS}
    return ModelResult(name, card.get("family", name) if card else name,
                       {k: v for k, v in given.items() if k not in EVALUATE_FACTS},
                       card or {}, table, facts=facts)


EVALUATE_FACTS = ("inference_images_per_second", "runtime", "shipped_params", "shipped_mb")


def test_models_scored_on_other_test_images_are_refused_not_paired():
    """Same number of images, other files (or another order): no pairing, one line saying
    which model to re-evaluate."""
    from pipeline.evaluation.comparison import compare

    right = [True, False, True]
    first = _scored("wrn", right)
    for paths in (["test/cat/0.jpg", "test/cat/1.jpg", "test/cat/9.jpg"],
                  ["test/cat/1.jpg", "test/cat/0.jpg", "test/cat/2.jpg"]):
        with pytest.raises(ValueError, match=r"^resnet was not scored on the same test images "
                                             r"as wrn; re-run its evaluate stage$"):
            compare([first, _scored("resnet", right, paths=paths)], "train_seconds", 0.05)
    assert compare([first, _scored("resnet", right)], "train_seconds", 0.05).test_images == 3


def test_each_cost_is_read_where_the_pipeline_records_it():
    model = _scored("wrn", [True], {"inference_images_per_second": 250.0, "shipped_params": 7,
                                    "shipped_mb": 0.123},
                    {"trainable_params": 5, "train_seconds": 12.5})
    assert model.cost("inference_seconds") == 4.0  # seconds per 1,000 images
    assert model.cost("shipped_params") == 7.0  # the evaluation's count
    assert model.cost("trainable_params") == 5.0 and model.cost("train_seconds") == 12.5
    assert model.shipped == "0.12 MB shipped"
    unknown = _scored("old", [True], {"inference_images_per_second": 0.0}, {"family": "wrn"})
    assert [unknown.cost(k) for k in ("inference_seconds", "shipped_params",
                                      "trainable_params")] == [float("inf")] * 3
    assert _scored("x", [True], {}).cost("inference_seconds") == float("inf")
    assert unknown.shipped == "size unknown"
    assert _scored("big", [True], {"shipped_mb": 94.44}).shipped == "94.4 MB shipped"


def test_the_report_metrics_are_the_chosen_models_four_figures():
    from pipeline.evaluation.comparison import compare

    good = _scored("wrn", [True] * 9 + [False], {"shipped_params": 10})
    bad = _scored("small", [True] + [False] * 9, {"shipped_params": 1})
    report = compare([good, bad], "shipped_params", 0.05)
    assert report.row("small").verdict.startswith("worse than wrn")
    assert report.to_metrics() == {"recommended": "wrn", "accuracy": 0.9,
                                   "accuracy_low": 0.5958, "accuracy_high": 0.9821}
    assert "measured seconds" not in report.choice.reason  # counted, not measured


def test_a_measured_cost_warns_only_when_it_decided_between_tied_models():
    from pipeline.evaluation.comparison import compare

    good = _scored("wrn", [True] * 20, card={"train_seconds": 5.0})
    bad = _scored("small", [False] * 20, card={"train_seconds": 1.0})
    alone = compare([good, bad], "train_seconds", 0.05)
    assert alone.choice.candidates == ("wrn",)
    assert "measured seconds" not in alone.choice.reason
    tied = compare([good, _scored("twin", [True] * 20, card={"train_seconds": 1.0})],
                   "inference_seconds", 0.05)
    assert tied.choice.reason.endswith("The cost is measured seconds: depends on the machine "
                                       "and its load: a re-run can recommend another of the "
                                       "tied models.")


def test_the_choice_reads_every_models_evaluation_and_names_the_stage_of_a_missing_one(
        tmp_path, monkeypatch):
    """What the export and report stages both call: every model of params.yaml, its
    family from its card, and a missing evaluation named with the stage that makes it."""
    from helpers import params

    from pipeline.core.errors import PipelineError
    from pipeline.evaluation.choice import evaluate_stage, load_results, recommendation

    run = params()
    assert [evaluate_stage(run, m) for m in run.models()] == [
        "evaluate_head", *(f"evaluate_finetune@{m}" for m in run.finetune),
        *(f"evaluate_scratch@{m}" for m in run.scratch)]
    monkeypatch.chdir(tmp_path)
    for folder in ("metrics/evaluate", "reports/predictions", "models", "reports/runs/evaluate"):
        Path(folder).mkdir(parents=True)
    for i, name in enumerate(run.models()):
        right = [True] * (10 - i) + [False] * i  # the first model best
        model = _scored(name, right)
        Path(f"metrics/evaluate/{name}.json").write_text(json.dumps(
            {"accuracy": sum(right) / 10}))
        Path(f"reports/runs/evaluate/{name}.json").write_text(json.dumps(
            {"shipped_params": 100 - i}))
        predictions.write(model.predictions, f"reports/predictions/{name}.csv")
        card = {"trainable_params": 1} | ({"family": "resnet"} if i else {})
        Path(f"models/{name}.json").write_text(json.dumps(card))
    results = load_results(run)
    assert [(m.name, m.family) for m in results] == [
        (name, "resnet" if i else name) for i, name in enumerate(run.models())]
    assert results[1].facts["shipped_params"] == 99
    assert results[1].card == {"trainable_params": 1, "family": "resnet"}
    assert results[0].predictions["correct"].tolist() == [True] * 10
    report = recommendation(run)
    assert (report.cost, report.alpha) == (run.report.cost, run.report.alpha)
    assert report.choice.model == run.models()[-1]  # tied with the best, and cheapest
    last = run.models()[-1]
    Path(f"reports/predictions/{last}.csv").unlink()
    Path(f"models/{last}.json").unlink()
    with pytest.raises(PipelineError, match=(
            rf"^model '{last}' has no evaluation \(reports/predictions/{last}.csv, "
            rf"models/{last}.json missing\): run `dvc repro {evaluate_stage(run, last)}`$")):
        load_results(run)


def test_the_report_applies_its_own_alpha_and_names_the_metric():
    """report.alpha decides both the verdicts and the candidates: at 0.5 a model with
    McNemar p = 0.45 is worse, not a cheaper tie."""
    from pipeline.evaluation.comparison import compare

    best = [True] * 54 + [False] * 6
    other = [False] * 5 + [True] * 49 + [True, True] + [False] * 4  # 5 / 2 discordant
    models = [_scored("wrn", best, {"shipped_params": 10}),
              _scored("resnet", other, {"shipped_params": 1})]
    loose = compare(models, "shipped_params", 0.05)
    assert loose.choice.model == "resnet"
    strict = compare(models, "shipped_params", 0.5)
    assert strict.row("resnet").verdict == "worse than wrn (p = 0.45)"
    assert strict.choice.model == "wrn" and strict.choice.candidates == ("wrn",)
    assert strict.choice.reason.startswith("wrn is best on accuracy (0.9) and every other "
                                           "model is significantly worse (McNemar p below "
                                           "alpha = 0.5 for each")
    thirds = compare([_scored("a", [True, True, False]), _scored("b", [True, False, False])],
                     "shipped_params", 0.05)
    assert thirds.to_metrics()["accuracy"] == 0.6667
