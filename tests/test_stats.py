"""Known-value tests for the model-comparison statistics: intervals, paired tests, advice."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.evaluation import stats
from pipeline.evaluation.stats import (
    BootstrapResult,
    McNemarResult,
    compare_to_best,
    format_p_value,
    mcnemar_exact,
    paired_bootstrap,
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
    with pytest.raises(ValueError, match="60.*59"):
        paired_bootstrap(np.ones(60, bool), np.ones(59, bool))


def test_labels_passed_instead_of_correctness_are_refused():
    with pytest.raises(ValueError, match="booleans or 0/1"):
        mcnemar_exact(np.array([0, 1, 2]), np.array([0, 1, 1]))
    assert mcnemar_exact(np.array([1, 0, 1]), np.array([0, 0, 1])).a_only == 1  # 0/1 is fine


# --- bootstrap ------------------------------------------------------------------------------


def test_bootstrap_contains_the_observed_difference_and_is_deterministic():
    a, b = pairs(12, 4, both=30, neither=14)  # 60 images, A - B = 8 / 60
    first = paired_bootstrap(a, b, n_resamples=2000, seed=7)
    assert isinstance(first, BootstrapResult)
    assert first.difference == pytest.approx(8 / 60)
    assert first.low < first.difference < first.high
    assert paired_bootstrap(a, b, n_resamples=2000, seed=7) == first
    assert paired_bootstrap(a, b, n_resamples=2000, seed=8) != first


def test_bootstrap_interval_shrinks_as_the_test_split_grows():
    a, b = pairs(12, 4, both=30, neither=14)
    small = paired_bootstrap(a, b, n_resamples=2000)
    large = paired_bootstrap(np.tile(a, 16), np.tile(b, 16), n_resamples=2000)
    assert large.difference == pytest.approx(small.difference)
    # width scales like 1 / sqrt(n): 16x the images -> about a quarter of the width
    ratio = (large.high - large.low) / (small.high - small.low)
    assert 0.18 < ratio < 0.35


def test_bootstrap_p_value_sign_method():
    clear = paired_bootstrap(*pairs(40, 2, both=150, neither=8), n_resamples=2000)
    assert clear.p_value < 0.01
    tie = paired_bootstrap(*pairs(6, 6, both=40), n_resamples=500)
    assert tie.difference == 0.0 and tie.p_value == 1.0
    worse = paired_bootstrap(*pairs(3, 5, both=40), n_resamples=2000)
    assert worse.difference < 0 and 0.2 < worse.p_value <= 1.0  # 2 of 48 is noise


def test_bootstrap_p_value_matches_the_exact_resampling_distribution():
    # Resampling n images draws K ~ Bin(n, 8/n) discordant ones, of which N_A ~ Bin(K, 3/8)
    # favour A; the sign p-value is 2 * P(N_A >= K - N_A) (observed A - B is negative).
    n, a_only, b_only = 48, 3, 5
    q, r = (a_only + b_only) / n, a_only / (a_only + b_only)
    exact = 2 * sum(
        math.comb(n, k)
        * q**k
        * (1 - q) ** (n - k)
        * sum(math.comb(k, j) * r**j * (1 - r) ** (k - j) for j in range(k + 1) if 2 * j >= k)
        for k in range(n + 1)
    )
    result = paired_bootstrap(*pairs(a_only, b_only, both=40), n_resamples=4000)
    assert result.p_value == pytest.approx(exact, abs=0.04)  # Monte Carlo sd is about 0.015


def test_bootstrap_chunks_large_splits(monkeypatch):
    monkeypatch.setattr(stats, "_CHUNK_ELEMENTS", 1000)  # 10 resamples of 100 per chunk
    a, b = pairs(20, 10, both=60, neither=10)
    result = paired_bootstrap(a, b, n_resamples=95)  # last chunk is partial
    assert result.low < result.difference < result.high


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
