"""Calibration: ECE and NLL are what they claim, temperature scaling finds and mends
over-confidence, and the Temperature layer never changes a prediction."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from pipeline.evaluation.calibration import (
    apply_temperature,
    ece,
    fit_temperature,
    nll,
    reliability,
    reliability_chart,
    reliability_table,
    summary,
    unhelpful,
)
from pipeline.models.temperature import Temperature, temperature_of, with_temperature

# Two images at 90 % (one right), two at 60 % (both right).
PROBA = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
LABELS = np.array([0, 1, 0, 0])


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def calibrated_sample(n: int, seed: int, classes: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(logits, labels drawn from softmax(logits)): calibrated at T = 1 by construction."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, (n, classes))
    p = softmax(z)
    y = np.array([rng.choice(classes, p=row) for row in p])
    return z, y


def test_ece_and_nll_by_hand():
    # 90 % bin: accuracy 0.5, gap 0.4; 60 % bin: accuracy 1.0, gap 0.4; each half the images.
    assert ece(LABELS, PROBA) == pytest.approx(0.4)
    assert nll(LABELS, PROBA) == pytest.approx(-(math.log(0.9) + math.log(0.1)
                                                 + 2 * math.log(0.6)) / 4)
    bins = reliability(LABELS, PROBA)
    assert bins["count"].tolist() == [2, 2]
    assert bins["accuracy"].tolist() == [1.0, 0.5]
    assert bins["confidence"].tolist() == pytest.approx([0.6, 0.9])


def test_a_perfectly_calibrated_prediction_has_zero_ece():
    proba = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.5, 0.5]])
    assert ece(np.array([0, 1, 0, 1]), proba) == pytest.approx(0.0)


def test_fit_temperature_recovers_a_known_over_confidence():
    z, y = calibrated_sample(4000, 0)
    fitted = fit_temperature(y, softmax(2.5 * z))  # logits scaled by 2.5: T should be 2.5
    assert fitted == pytest.approx(2.5, rel=0.1)
    assert fit_temperature(y, softmax(z)) == pytest.approx(1.0, rel=0.1)


@pytest.mark.parametrize("scale", [0.02, 0.3, 1.0, 2.5, 8.0, 60.0])
def test_nll_and_temperature_are_scikit_learns_and_scipys(scale):
    """NumPy only in evaluate_head: the NLL is log_loss's (clipped in the input's float
    type), and T the minimum scipy's bounded search finds (to its tolerance), also where
    it lies on a bound (T = e^3 for a model 60x too sure)."""
    from scipy.optimize import minimize_scalar
    from sklearn.metrics import log_loss

    z, y = calibrated_sample(800, 3)
    proba = softmax(scale * z)
    proba[0] = np.eye(5)[(y[0] + 1) % 5]  # a sure mistake: the clipping matters
    for p in (proba, proba.astype("float32")):
        assert nll(y, p) == pytest.approx(log_loss(y, p, labels=np.arange(5)), rel=1e-6)
    theirs = minimize_scalar(
        lambda t: log_loss(y, apply_temperature(proba, np.exp(t)), labels=np.arange(5)),
        bounds=(-3, 3), method="bounded", options={"xatol": 1e-7})
    assert fit_temperature(y, proba) == pytest.approx(np.exp(theirs.x), rel=1e-5)


def test_calibrating_an_over_confident_model_lowers_ece_and_nll():
    # A linear softmax model whose weights are blown up 4x: right as often, far too sure.
    rng = np.random.default_rng(1)
    w, b = rng.normal(0, 1, (8, 4)), np.zeros(4)
    inputs = keras.Input((8,))
    model = keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(inputs))
    model.layers[-1].set_weights([4 * w, b])

    def sample(seed: int):
        x = np.random.default_rng(seed).normal(0, 1, (3000, 8)).astype("float32")
        y = np.array([np.random.default_rng(seed + i).choice(4, p=p)
                      for i, p in enumerate(softmax(x @ w))])
        return x, y

    (x_val, y_val), (x_test, y_test) = sample(10), sample(20)
    raw_val, raw_test = model.predict(x_val, verbose=0), model.predict(x_test, verbose=0)
    metrics, calibrated = summary(y_val, raw_val, y_test, raw_test)
    assert metrics["temperature"] == pytest.approx(4.0, rel=0.15)
    assert metrics["ece_calibrated"] < metrics["ece"] / 3
    assert metrics["nll_calibrated"] < metrics["nll"]
    # The model with the layer gives the numpy calibration's probabilities.
    scaled = with_temperature(model, metrics["temperature"])
    assert temperature_of(scaled) == metrics["temperature"] and temperature_of(model) == 1.0
    np.testing.assert_allclose(scaled.predict(x_test, verbose=0), calibrated, atol=1e-5)


@pytest.mark.parametrize("temperature", [0.3, 1.0, 2.0, 10.0])
def test_temperature_keeps_every_prediction(temperature):
    proba = softmax(np.random.default_rng(2).normal(0, 3, (200, 6)))
    out = keras.ops.convert_to_numpy(Temperature(temperature)(proba.astype("float32")))
    np.testing.assert_array_equal(out.argmax(1), proba.argmax(1))
    np.testing.assert_allclose(out.sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(out, apply_temperature(proba, temperature), atol=1e-5)


def test_reliability_table_lines_up_both_calibrations():
    table = reliability_table(LABELS, PROBA, apply_temperature(PROBA, 3.0))
    assert table["confidence"].is_monotonic_increasing
    assert (table["count_before"].sum(), table["count_after"].sum()) == (4, 4)
    assert table.loc[table["count_before"] == 0, "accuracy_before"].isna().all()


def test_a_model_whose_output_is_a_list_of_one_is_calibrated_per_image():
    # The Wide ResNet classifier is built with outputs=[x]: calling it gives a list of one.
    inputs = keras.Input((4,), name="image")
    model = keras.Model(inputs, [keras.layers.Dense(3, activation="softmax")(inputs)])
    x = np.random.default_rng(0).random((5, 4)).astype("float32")
    raw = np.asarray(model.predict(x, verbose=0)).reshape(5, 3)
    calibrated = with_temperature(model, 2.0).predict(x, verbose=0)
    assert calibrated.shape == (5, 3)
    expected = np.exp(np.log(raw) / 2.0)
    np.testing.assert_allclose(calibrated, expected / expected.sum(1, keepdims=True), atol=1e-6)


def test_a_temperature_fitted_on_a_few_unlucky_validation_images_is_flagged():
    # A calibrated model (T = 1 is right); 24 validation images, half of them confident
    # mistakes, make the fit soften it: on 4,000 test images both ECE and NLL get worse.
    z, y = calibrated_sample(6000, 3)
    proba = softmax(z)
    top, right = proba.max(1), proba.argmax(1) == y
    unlucky = np.concatenate([np.flatnonzero(~right & (top > 0.6))[:12],
                              np.flatnonzero(right)[:12]])
    metrics, _ = summary(y[unlucky], proba[unlucky], y[2000:], proba[2000:])
    assert metrics["temperature"] > 1.5
    assert metrics["ece_calibrated"] > metrics["ece"] and metrics["nll_calibrated"] > metrics["nll"]
    said = unhelpful(metrics, 24)
    assert said.startswith(f"temperature scaling (T = {metrics['temperature']:.3g}) did not "
                           f"improve the test ECE or NLL (ECE {metrics['ece']:.3f} → ")
    assert "likely the 24 validation images it was fitted on are too few" in said
    assert "evaluate.calibration: none" in said


@pytest.mark.parametrize(("after", "flagged"), [
    ({"ece_calibrated": 0.05, "nll_calibrated": 0.9}, None),
    ({"ece_calibrated": 0.106, "nll_calibrated": 0.9}, "ECE (ECE 0.089 → 0.106)"),
    ({"ece_calibrated": 0.05, "nll_calibrated": 1.0}, "NLL (NLL 1.000 → 1.000)"),  # a tie
])
def test_only_a_temperature_that_lowered_ece_and_nll_goes_unflagged(after, flagged):
    # The ants/bees resnet50: ECE 0.089 -> 0.106.
    metrics = {"temperature": 1.31, "ece": 0.089, "nll": 1.0} | after
    said = unhelpful(metrics, 40)
    if flagged is None:
        assert said is None
    else:
        assert f"did not improve the test {flagged}" in said
    assert unhelpful({"ece": 0.1, "nll": 1.0}, 40) is None  # none fitted: nothing to flag


def test_calibration_off_ships_the_raw_probabilities(tmp_path):
    z, y = calibrated_sample(300, 4)
    proba = softmax(2.0 * z)
    metrics, served = summary(y[:100], proba[:100], y[100:], proba[100:], fit=False)
    assert set(metrics) == {"ece", "nll"}  # no temperature: nothing to bake into the export
    assert served is proba[100:] or np.array_equal(served, proba[100:])
    table = reliability_table(y[100:], proba[100:], served)
    reliability_chart(table, metrics, "m", tmp_path / "reliability.png")
    assert (tmp_path / "reliability.png").stat().st_size > 0


def test_reliability_table_by_hand_bin_by_bin():
    """The plot's rows: each bin that holds an image before or after, at its centre (the
    x axis and the diagonal), with both calibrations' accuracy, mean confidence and count."""
    # Three images at 0.7 (two right), one at 0.95 (wrong); after: all four at 0.55.
    before = np.array([[0.7, 0.3], [0.7, 0.3], [0.7, 0.3], [0.95, 0.05]])
    after = np.array([[0.55, 0.45]] * 4)
    labels = np.array([0, 0, 1, 1])
    table = reliability_table(labels, before, after, bins=10)
    assert table.columns.tolist() == [
        "bin", "confidence", "perfect", "accuracy_before", "mean_confidence_before",
        "count_before", "accuracy_after", "mean_confidence_after", "count_after"]
    assert table["bin"].tolist() == [5, 6, 9]  # (0.5, 0.6], (0.6, 0.7], (0.9, 1.0]
    assert table["confidence"].tolist() == [0.55, 0.65, 0.95]
    assert table["perfect"].tolist() == [0.55, 0.65, 0.95]
    assert table["count_before"].tolist() == [0, 3, 1]
    assert table["count_after"].tolist() == [4, 0, 0]
    assert table["count_before"].dtype.kind == "i"
    assert table["accuracy_before"].tolist()[1:] == [0.6667, 0.0]  # 4 digits
    assert table["mean_confidence_before"].tolist()[1:] == [0.7, 0.95]
    assert table["accuracy_after"].tolist()[0] == 0.5
    assert table["mean_confidence_after"].tolist()[0] == 0.55
    assert table.index.tolist() == [0, 1, 2]
    # Fifteen bins by default, centres rounded to 4 digits: (k + 0.5) / 15.
    default = reliability_table(labels, before, after)
    assert default["confidence"].tolist() == [0.5667, 0.7, 0.9667]
    assert default["count_before"].tolist() == [0, 3, 1]


def test_the_unhelpful_sentence_names_both_figures_and_where_it_was_fitted():
    metrics = {"temperature": 1.31, "ece": 0.089, "ece_calibrated": 0.106, "nll": 0.30,
               "nll_calibrated": 0.31}
    said = unhelpful(metrics, None)
    assert said == ("temperature scaling (T = 1.31) did not improve the test ECE or NLL "
                    "(ECE 0.089 → 0.106, NLL 0.300 → 0.310): likely the validation split it "
                    "was fitted on is too small to estimate it; the calibrated probabilities "
                    "are no better than the raw ones (a bigger validation split, or "
                    "evaluate.calibration: none)")


def test_temperature_is_applied_in_double_precision_to_a_float32_model_output():
    """Keras gives float32 probabilities; the calibrated ones (and the ECE and NLL on them)
    are computed in float64, as the same numbers in float64 give."""
    proba = softmax(np.random.default_rng(5).normal(0, 3, (50, 5))).astype(np.float32)
    calibrated = apply_temperature(proba, 1.7)
    assert calibrated.dtype == np.float64
    exact = apply_temperature(proba.astype(np.float64), 1.7)
    assert np.abs(calibrated - exact).max() < 1e-15
    assert np.abs(calibrated.sum(axis=1) - 1).max() < 1e-12


def test_reliability_table_rounds_the_means_to_four_digits():
    before = np.array([[0.71234, 0.28766], [0.7, 0.3]])
    table = reliability_table(np.array([0, 1]), before, before, bins=10)
    assert table["mean_confidence_before"].tolist() == [0.7, 0.7123]  # 0.71234
    assert table["accuracy_after"].tolist() == [0.0, 1.0]


def test_summary_reports_each_figure_on_the_test_split_to_four_digits():
    z, y = calibrated_sample(400, 6)
    proba = softmax(1.8 * z)
    val, test = slice(0, 150), slice(150, None)
    metrics, _ = summary(y[val], proba[val], y[test], proba[test])
    t = fit_temperature(y[val], proba[val])
    calibrated = apply_temperature(proba[test], t)
    assert metrics == {
        "temperature": round(t, 4), "ece": round(ece(y[test], proba[test]), 4),
        "ece_calibrated": round(ece(y[test], calibrated), 4),
        "nll": round(nll(y[test], proba[test]), 4),
        "nll_calibrated": round(nll(y[test], calibrated), 4)}
    assert all(v != round(v, 3) for v in metrics.values())  # four digits kept, not three
    raw, _ = summary(y[val], proba[val], y[test], proba[test], fit=False)
    assert raw == {"ece": metrics["ece"], "nll": metrics["nll"]}


def test_every_confidence_has_its_bin_at_the_edges_too():
    """Twenty classes: a near-uniform top probability (0.05) is in the first bin; a float32
    top probability one rounding above 1 is in the last; bins are integers."""
    uniform = np.full((1, 20), 0.05)
    assert reliability(np.array([0]), uniform)["bin"].tolist() == [0]
    over = np.array([[np.float32(1.0000001), 0.0]], dtype=np.float32)
    bins = reliability(np.array([0]), over)
    assert bins["bin"].tolist() == [14] and bins["bin"].dtype.kind == "i"
    # ECE takes the bins it is given: 10 bins put 0.61 and 0.69 together, 15 apart.
    proba = np.array([[0.61, 0.39], [0.69, 0.31]])
    assert ece(np.array([0, 1]), proba, bins=10) == pytest.approx(abs(0.5 - 0.65))
    assert ece(np.array([0, 1]), proba, bins=15) == pytest.approx((0.39 + 0.69) / 2)
    assert ece(np.array([0, 1]), proba) == ece(np.array([0, 1]), proba, bins=15)


def test_nll_on_a_test_split_that_lacks_a_class():
    """Three classes, the test images of two: every probability column still counts."""
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]])
    assert nll(np.array([0, 1]), proba) == pytest.approx(-(math.log(0.7) + math.log(0.6)) / 2)
