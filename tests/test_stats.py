"""Known-value tests for the model-comparison statistics: intervals, paired tests, advice."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.evaluation import stats
from pipeline.evaluation.stats import (
    McNemarResult,
    compare_to_best,
    format_p_value,
    mcnemar_exact,
    recommend,
    wilson_interval,
)

Z95 = 1.959963984540054


def pairs(a_only: int, b_only: int, both: int = 0, neither: int = 0) -> tuple[np.ndarray, ...]:
    """Correctness vectors with the given counts of each (A, B) outcome."""
    a = [True] * a_only + [False] * b_only + [True] * both + [False] * neither
    b = [False] * a_only + [True] * b_only + [True] * both + [False] * neither
    return np.array(a), np.array(b)


# --- Wilson ---------------------------------------------------------------------------------


def test_wilson_45_of_60_matches_the_roots_of_the_score_quadratic():
    # Wilson bounds are the pi solving (phat - pi)^2 = z^2 pi (1 - pi) / n, i.e.
    # (1 + z^2/n) pi^2 - (2 phat + z^2/n) pi + phat^2 = 0: an independent derivation.
    n, phat = 60, 45 / 60
    qa, qb, qc = 1 + Z95**2 / n, -(2 * phat + Z95**2 / n), phat**2
    root = math.sqrt(qb * qb - 4 * qa * qc)
    expected = ((-qb - root) / (2 * qa), (-qb + root) / (2 * qa))
    assert wilson_interval(45, 60) == pytest.approx(expected, abs=1e-12)
    assert wilson_interval(45, 60) == pytest.approx((0.6277, 0.8422), abs=1e-4)


def test_wilson_published_values_at_the_edges():
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and wilson_interval(10, 10)[1] == 1.0  # exact, no rounding drift


def test_wilson_without_test_images_knows_nothing():
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_wilson_widens_with_confidence_and_rejects_impossible_counts():
    low95, high95 = wilson_interval(45, 60)
    low99, high99 = wilson_interval(45, 60, confidence=0.99)
    assert low99 < low95 and high99 > high95
    with pytest.raises(ValueError, match="correct=61, total=60"):
        wilson_interval(61, 60)
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 2, confidence=1.0)


def test_without_scipy_only_95_percent_is_available(monkeypatch):
    monkeypatch.setattr(stats, "HAVE_SCIPY", False)
    assert wilson_interval(45, 60) == pytest.approx((0.6277, 0.8422), abs=1e-4)
    with pytest.raises(ValueError, match="needs scipy"):
        wilson_interval(45, 60, confidence=0.9)


# --- McNemar --------------------------------------------------------------------------------


def test_mcnemar_b10_c2_against_a_hand_computed_binomial():
    # 2 * P(X <= 2), X ~ Bin(12, 1/2) = 2 * (1 + 12 + 66) / 4096 = 0.03857...
    a, b = pairs(10, 2, both=30, neither=5)
    result = mcnemar_exact(a, b)
    assert result == McNemarResult(a_only=10, b_only=2, p_value=pytest.approx(2 * 79 / 4096))
    assert round(result.p_value, 4) == 0.0386


def test_mcnemar_is_symmetric():
    a, b = pairs(7, 3, both=20, neither=4)
    rng = np.random.default_rng(3)
    order = rng.permutation(len(a))
    ab, ba = mcnemar_exact(a[order], b[order]), mcnemar_exact(b[order], a[order])
    assert (ab.a_only, ab.b_only) == (ba.b_only, ba.a_only) == (7, 3)
    assert ab.p_value == ba.p_value


def test_mcnemar_without_disagreement_or_with_a_balanced_one_is_p_1():
    assert mcnemar_exact(*pairs(0, 0, both=8, neither=2)).p_value == 1.0
    assert mcnemar_exact(*pairs(5, 5)).p_value == 1.0  # 2 * P(X <= 5; 10) > 1, capped


def test_mcnemar_exact_fallback_matches_scipy(monkeypatch):
    a, b = pairs(61, 40, both=500)
    with_scipy = mcnemar_exact(a, b).p_value
    monkeypatch.setattr(stats, "HAVE_SCIPY", False)
    assert mcnemar_exact(a, b).p_value == pytest.approx(with_scipy, rel=1e-9)


def test_length_mismatch_names_both_lengths():
    with pytest.raises(ValueError, match="correct_a has 60 entries but correct_b has 59"):
        mcnemar_exact(np.ones(60, bool), np.ones(59, bool))


def test_labels_passed_instead_of_correctness_are_refused():
    with pytest.raises(ValueError, match="booleans or 0/1"):
        mcnemar_exact(np.array([0, 1, 2]), np.array([0, 1, 1]))
    assert mcnemar_exact(np.array([1, 0, 1]), np.array([0, 0, 1])).a_only == 1  # 0/1 is fine


# --- compare_to_best and recommend --------------------------------------------------------


@pytest.fixture
def models() -> dict[str, np.ndarray]:
    """60 test images: wrn 54 right; resnet differs on 7 (5 / 2); small only 30 right."""
    wrn = np.array([True] * 54 + [False] * 6)
    resnet = wrn.copy()
    resnet[:5] = False  # wrn only
    resnet[54:56] = True  # resnet only -> 51 right, McNemar p = 2 * 29 / 128 = 0.453
    small = wrn.copy()
    small[:24] = False  # wrn only on 24, never the other way -> p = 2 / 2**24
    return {"small": small, "wrn": wrn, "resnet": resnet}


def test_compare_to_best_verdicts(models):
    rows = {row.name: row for row in compare_to_best(models)}
    assert list(rows) == ["small", "wrn", "resnet"]  # dict order is kept
    assert rows["wrn"].verdict == "best" and rows["wrn"].p_value is None
    assert rows["wrn"].accuracy == pytest.approx(0.9)
    assert (rows["wrn"].low, rows["wrn"].high) == wilson_interval(54, 60)
    assert rows["resnet"].p_value == pytest.approx(2 * 29 / 128)
    assert rows["resnet"].verdict == "indistinguishable from wrn on 60 test images (p = 0.45)"
    assert rows["small"].p_value == pytest.approx(2 / 2**24)
    assert rows["small"].verdict == "worse than wrn (p < 0.001)"


def test_compare_to_best_breaks_ties_by_dict_order():
    a, b = pairs(3, 3, both=10)
    rows = compare_to_best({"first": a, "second": b})
    assert [row.verdict for row in rows] == [
        "best",
        "indistinguishable from first on 16 test images (p = 1)",
    ]


def test_compare_to_best_names_models_with_different_lengths():
    with pytest.raises(ValueError, match="a: 3, b: 2"):
        compare_to_best({"a": np.ones(3, bool), "b": np.ones(2, bool)})


def test_p_values_are_worded_with_two_significant_digits():
    assert format_p_value(0.03857) == "p = 0.039"
    assert format_p_value(0.003) == "p = 0.003"
    assert format_p_value(0.41) == "p = 0.41"
    assert format_p_value(0.00099) == "p < 0.001"


def test_recommend_the_cheaper_of_two_indistinguishable_models(models):
    rows = compare_to_best(models)
    rec = recommend(rows, {"wrn": 300.0, "resnet": 45.0, "small": 5.0})
    assert rec.model == "resnet"  # small is cheapest but significantly worse
    assert rec.candidates == ("wrn", "resnet")
    assert "wrn is best on accuracy" in rec.reason
    assert "p = 0.45" in rec.reason and "45 vs 300" in rec.reason


def test_recommend_the_best_when_the_other_is_significantly_worse(models):
    rows = compare_to_best({"wrn": models["wrn"], "small": models["small"]})
    rec = recommend(rows, {"wrn": 300.0, "small": 5.0}, metric_name="test accuracy")
    assert rec.model == "wrn" and rec.candidates == ("wrn",)
    assert rec.reason.startswith("wrn is best on test accuracy (0.9)")
    assert "significantly worse" in rec.reason


def test_recommend_keeps_the_best_when_it_is_also_cheapest(models):
    rec = recommend(compare_to_best(models), {"wrn": 2_500_000, "resnet": 23_500_000})
    assert rec.model == "wrn"
    assert "2,500,000 vs resnet 23,500,000" in rec.reason
    assert "No cost given for" not in rec.reason  # small is not a candidate


def test_recommend_treats_a_missing_cost_as_infinite(models):
    rec = recommend(compare_to_best(models), {"wrn": 300.0})
    assert rec.model == "wrn"
    assert "No cost given for resnet; treated as infinitely expensive." in rec.reason
    rec = recommend(compare_to_best(models), {"resnet": 45.0})
    assert rec.model == "resnet"
    assert "No cost given for wrn" in rec.reason


def test_recommend_names_each_models_note_beside_its_cost(models):
    notes = {"wrn": "2.8 MB shipped", "resnet": "94.4 MB shipped", "small": "0.1 MB shipped"}
    rec = recommend(compare_to_best(models), {"wrn": 700_000, "resnet": 23_600_000}, notes=notes)
    assert rec.model == "wrn"
    assert "cost wrn 700,000 (2.8 MB shipped) vs resnet 23,600,000 (94.4 MB shipped)" in \
        rec.reason
    rec = recommend(compare_to_best(models), {"wrn": 23_600_000, "resnet": 700_000},
                    notes=notes)
    assert "cost 700,000 (94.4 MB shipped) vs 23,600,000 (2.8 MB shipped) for wrn" in rec.reason
    # No cost in the reason (every other model significantly worse): the note still ends it.
    rows = compare_to_best({"wrn": models["wrn"], "small": models["small"]})
    rec = recommend(rows, {"wrn": 1.0, "small": 0.5}, notes=notes)
    assert rec.reason.endswith("whatever the cost. wrn: 2.8 MB shipped.")


# --- edges the rule depends on --------------------------------------------------------------


def test_a_confidence_of_0_or_1_is_refused_everywhere():
    for confidence in (0.0, 1.0):
        with pytest.raises(ValueError, match="confidence must be strictly between 0 and 1"):
            wilson_interval(3, 10, confidence=confidence)


def test_without_scipy_95_percent_is_the_built_in_one_and_nothing_near_it(monkeypatch):
    monkeypatch.setattr(stats, "HAVE_SCIPY", False)
    assert stats._z(0.1 * 9.5) == Z95  # 0.9500000000000001: 95 % as arithmetic gives it
    with pytest.raises(ValueError, match="needs scipy"):
        stats._z(0.95 + 1e-10)


def test_without_scipy_mcnemar_is_exact_for_small_and_huge_test_splits(monkeypatch):
    small, huge = pairs(10, 2, both=30), pairs(700, 600, both=98_700)  # 100k images
    with_scipy = mcnemar_exact(*huge).p_value
    monkeypatch.setattr(stats, "HAVE_SCIPY", False)
    assert mcnemar_exact(*small).p_value == 2 * 79 / 4096  # exact binary fraction
    assert mcnemar_exact(*huge).p_value == pytest.approx(with_scipy, rel=1e-9)


def test_wilson_at_zero_and_one_right_matches_published_values():
    # 0 right is an exact 0 for every split size (the formula alone leaves 1e-17 at 7).
    assert [wilson_interval(0, n)[0] for n in (7, 9, 12, 25)] == [0.0] * 4
    assert wilson_interval(1, 10) == pytest.approx((0.0179, 0.4042), abs=1e-4)


def test_mistakes_in_what_is_compared_are_named():
    with pytest.raises(ValueError, match=r"correct_a must be 1-D \(one entry per test image\), "
                                         r"got shape \(2, 3\)"):
        mcnemar_exact(np.ones((2, 3), bool), np.ones(6, bool))
    with pytest.raises(ValueError, match="^correct_a must hold booleans or 0/1"):
        mcnemar_exact(np.array([2, 1, 0]), np.array([0, 1, 1]))
    with pytest.raises(ValueError, match="^correct_b must hold booleans or 0/1"):
        mcnemar_exact(np.array([0, 1, 1]), np.array([2, 1, 0]))
    with pytest.raises(ValueError, match="; a paired test needs both models scored on the same "
                                         "test images$"):
        mcnemar_exact(np.ones(3, bool), np.ones(2, bool))
    with pytest.raises(ValueError, match=r"^correct\['resnet'\] must hold booleans"):
        compare_to_best({"wrn": np.array([1, 0]), "resnet": np.array([3, 1])})
    with pytest.raises(ValueError, match="^no models to compare$"):
        compare_to_best({})


def test_p_values_at_one_in_a_thousand_keep_their_digits():
    assert format_p_value(0.001) == "p = 0.001"


def test_a_p_value_equal_to_alpha_is_not_significant(models):
    """The verdict and the rule agree at the boundary: p >= alpha is a tie, so a model at
    exactly alpha is "indistinguishable" and a candidate, and the cheaper one is chosen."""
    p = mcnemar_exact(models["wrn"], models["resnet"]).p_value
    rows = compare_to_best({"wrn": models["wrn"], "resnet": models["resnet"]}, alpha=p)
    assert rows[1].verdict.startswith("indistinguishable from wrn")
    rec = recommend(rows, {"wrn": 300.0, "resnet": 45.0}, alpha=p)
    assert rec.model == "resnet" and rec.candidates == ("wrn", "resnet")


def test_no_test_images_give_no_accuracy_and_an_interval_of_everything():
    rows = compare_to_best({"a": np.array([], bool), "b": np.array([], bool)})
    assert [(r.accuracy, r.low, r.high) for r in rows] == [(0.0, 0.0, 1.0)] * 2


# --- the recommendation's rule and its reason ---------------------------------------------


def test_equal_costs_go_to_the_more_accurate_model_whatever_the_names(models):
    rows = compare_to_best({"wrn": models["wrn"], "a_resnet": models["resnet"]})
    rec = recommend(rows, {"wrn": 45.0, "a_resnet": 45.0})
    assert rec.model == "wrn"  # 54 right against 51, though "a_resnet" sorts first


def test_a_single_model_is_recommended_as_the_only_one():
    rec = recommend(compare_to_best({"wrn": np.ones(10, bool)}), {"wrn": 3.0})
    assert rec.reason == "wrn is the only model compared."
    assert (rec.model, rec.candidates) == ("wrn", ("wrn",))


def test_the_reason_names_the_largest_p_of_the_worse_models(models):
    rows = compare_to_best({"wrn": models["wrn"], "resnet": models["resnet"]})
    rec = recommend(rows, {"wrn": 1.0, "resnet": 0.5}, alpha=0.5)  # resnet p = 0.45 < 0.5
    assert "largest p = 0.45), so it is recommended whatever the cost." in rec.reason
    # A model worse on 1,100 images: its p-value underflows to 0, and reads as such.
    rows = compare_to_best(dict(zip(("big", "small"), pairs(1100, 0, both=10), strict=True)))
    assert rows[1].p_value == 0.0
    assert "largest p < 0.001" in recommend(rows, {"big": 2.0, "small": 1.0}).reason


def test_without_any_cost_the_best_is_kept_and_the_reason_says_so(models):
    rec = recommend(compare_to_best(models), {})
    assert rec.model == "wrn"
    assert rec.reason.startswith(
        "wrn is best on accuracy (0.9); no cost is known for it or the models not "
        "significantly worse than it, so the best is kept. No cost given for wrn, resnet; "
        "treated as infinitely expensive.")


def test_the_reason_lists_every_tied_model_with_its_cost_or_unknown(models):
    tied = models["wrn"].copy()
    tied[:1] = False  # wrn only on one image: p = 1
    rows = compare_to_best({**models, "tied": tied})
    rec = recommend(rows, {"wrn": 10.0, "resnet": 45.0})
    assert rec.model == "wrn"
    assert ("cost wrn 10 vs resnet 45 (McNemar p = 0.45), tied unknown (McNemar p = 1)."
            in rec.reason)
    assert rec.reason.startswith("wrn is best on accuracy (0.9) and no cheaper model")
    assert rec.reason.endswith("No cost given for tied; treated as infinitely expensive.")


def test_fractional_costs_read_as_seconds_do(models):
    rec = recommend(compare_to_best(models), {"wrn": 12_345.6, "resnet": 10_000.5})
    assert "cost 10,000 vs 12,346 for wrn" in rec.reason  # thousands, no decimals
    rec = recommend(compare_to_best(models), {"wrn": 3.14159, "resnet": 2.5})
    assert "cost 2.5 vs 3.142 for wrn" in rec.reason  # four digits


def test_the_rule_refuses_rows_without_one_best_and_a_nan_cost(models):
    rows = compare_to_best(models)
    with pytest.raises(ValueError, match=r"^rows need exactly one best model \(p_value None\), "
                                         r"got 0$"):
        recommend([r for r in rows if r.p_value is not None], {})
    with pytest.raises(ValueError, match="^cost of resnet is NaN$"):
        recommend(rows, {"wrn": 1.0, "resnet": float("nan")})
