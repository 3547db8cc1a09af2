"""Is one model really better than another on the test split, or is the gap noise?

Test splits here are small (tens to a few thousand images), so a 2-point accuracy gap can be
chance. These helpers put an interval on each accuracy, test paired differences on the *same*
test images (which is far more sensitive than comparing two intervals), and turn the result
into a recommendation: the cheapest model that is not significantly worse than the best.

Pure numpy (scipy optional but preferred), deterministic, no import from ``pipeline``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

try:
    from scipy.stats import binom as _binom
    from scipy.stats import norm as _norm

    HAVE_SCIPY = True
except ImportError:  # pragma: no cover - exercised by monkeypatching HAVE_SCIPY in the tests
    HAVE_SCIPY = False

_Z_95 = 1.959963984540054  # norm.ppf(0.975), the only z available without scipy


@dataclass(frozen=True)
class McNemarResult:
    """Discordant pairs of a paired test; only these carry information about A vs B."""

    a_only: int  # images A got right and B got wrong
    b_only: int  # images B got right and A got wrong
    p_value: float


@dataclass(frozen=True)
class Comparison:
    """One model against the best: its accuracy, Wilson interval and McNemar p-value."""

    name: str
    accuracy: float
    low: float
    high: float
    p_value: float | None  # None for the best model itself
    verdict: str


@dataclass(frozen=True)
class Recommendation:
    """The model to use, why, and which models were statistically tied with the best."""

    model: str
    reason: str
    candidates: tuple[str, ...]


def _z(confidence: float) -> float:
    """Two-sided normal quantile; without scipy only 95 % is known, so refuse anything else."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")
    if HAVE_SCIPY:
        return float(_norm.ppf(1.0 - (1.0 - confidence) / 2.0))
    if math.isclose(confidence, 0.95, rel_tol=0.0, abs_tol=1e-12):
        return _Z_95
    raise ValueError(f"confidence {confidence} needs scipy; only 0.95 is built in")


def _binom_cdf_half(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2); exact integer sum when scipy is missing."""
    if HAVE_SCIPY:
        return float(_binom.cdf(k, n, 0.5))
    term, total = 1, 1
    for i in range(1, k + 1):
        term = term * (n - i + 1) // i
        total += term
    return total / 2**n  # int / int is correctly rounded even for huge ints


def _as_correctness(values: np.ndarray, name: str) -> np.ndarray:
    """1-D boolean vector; rejects labels or scores passed by mistake instead of casting them."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one entry per test image), got shape {arr.shape}")
    if arr.dtype != np.bool_:
        if arr.size and not np.isin(arr, (0, 1)).all():
            raise ValueError(f"{name} must hold booleans or 0/1, not labels or scores")
        arr = arr.astype(bool)
    return arr


def _paired(correct_a: np.ndarray, correct_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both vectors as booleans, checked to cover the same number of test images."""
    a = _as_correctness(correct_a, "correct_a")
    b = _as_correctness(correct_b, "correct_b")
    if len(a) != len(b):
        raise ValueError(
            f"correct_a has {len(a)} entries but correct_b has {len(b)}; "
            "a paired test needs both models scored on the same test images"
        )
    return a, b


def format_p_value(p: float) -> str:
    """``p = 0.041`` (2 significant digits) or ``p < 0.001``; more digits are false precision."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


def wilson_interval(correct: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for an accuracy; unlike the normal one it stays in [0, 1] at 0 or n.

    ``total == 0`` returns (0.0, 1.0): with no test images nothing is known.
    """
    correct, total = int(correct), int(total)
    if total < 0 or not 0 <= correct <= total:
        raise ValueError(f"need 0 <= correct <= total, got correct={correct}, total={total}")
    z = _z(confidence)
    if total == 0:
        return 0.0, 1.0
    p = correct / total
    z2n = z * z / total
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z / (1.0 + z2n) * math.sqrt(p * (1.0 - p) / total + z2n / (4.0 * total))
    low = 0.0 if correct == 0 else max(0.0, centre - half)
    high = 1.0 if correct == total else min(1.0, centre + half)
    return low, high


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> McNemarResult:
    """Exact McNemar test: are A and B wrong on different images more often than chance allows?

    Only discordant images count; under H0 each is equally likely to favour A or B, so the
    two-sided p-value is min(1, 2 * BinomCDF(min(b, c); b + c, 1/2)), and 1.0 with no discordance.
    """
    a, b = _paired(correct_a, correct_b)
    a_only = int(np.count_nonzero(a & ~b))
    b_only = int(np.count_nonzero(~a & b))
    n = a_only + b_only
    p = 1.0 if n == 0 else min(1.0, 2.0 * _binom_cdf_half(min(a_only, b_only), n))
    return McNemarResult(a_only=a_only, b_only=b_only, p_value=p)


def compare_to_best(correct: dict[str, np.ndarray], alpha: float = 0.05) -> list[Comparison]:
    """Each model against the most accurate one (first in dict order on ties), by exact McNemar.

    Returns one row per model in dict order; the best has ``p_value`` None and verdict "best".
    A lower-accuracy model with p < alpha is "worse than <best>"; otherwise "indistinguishable".
    """
    if not correct:
        raise ValueError("no models to compare")
    vectors = {name: _as_correctness(vec, f"correct[{name!r}]") for name, vec in correct.items()}
    lengths = {name: len(vec) for name, vec in vectors.items()}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{name}: {length}" for name, length in lengths.items())
        raise ValueError(f"models were scored on different numbers of test images ({listed})")
    total = next(iter(lengths.values()))
    hits = {name: int(np.count_nonzero(vec)) for name, vec in vectors.items()}
    best = max(hits, key=hits.__getitem__)  # max keeps the first of equal counts

    rows = []
    for name, vec in vectors.items():
        low, high = wilson_interval(hits[name], total)
        accuracy = hits[name] / total if total else 0.0
        if name == best:
            p_value, verdict = None, "best"
        else:
            p_value = mcnemar_exact(vectors[best], vec).p_value
            if p_value < alpha:
                verdict = f"worse than {best} ({format_p_value(p_value)})"
            else:
                verdict = (
                    f"indistinguishable from {best} on {total} test images "
                    f"({format_p_value(p_value)})"
                )
        rows.append(Comparison(name, accuracy, low, high, p_value, verdict))
    return rows


def _format_cost(cost: float) -> str:
    """Readable cost: thousands separators for big integers (parameters), 4 digits otherwise."""
    if math.isinf(cost):
        return "unknown"
    if cost.is_integer():
        return f"{int(cost):,}"
    return f"{cost:,.0f}" if abs(cost) >= 1e4 else f"{cost:.4g}"


def recommend(
    rows: list[Comparison],
    costs: dict[str, float],
    metric_name: str = "accuracy",
    alpha: float = 0.05,
    notes: dict[str, str] | None = None,
) -> Recommendation:
    """Cheapest model not significantly worse than the best (p >= alpha), so cost decides ties.

    ``rows`` come from :func:`compare_to_best`. Models missing from ``costs`` count as infinitely
    expensive; equal costs go to the more accurate model, then to the first name in sorted
    order, so the choice never depends on the order the models were listed in. ``notes``
    (say, each model's shipped size) follow each cost the reason names, and the chosen
    model's ends the reason when no cost was named.
    """
    notes = notes or {}

    def cost_text(name: str) -> str:
        note = f" ({notes[name]})" if name in notes else ""
        return f"{_format_cost(cost_of[name])}{note}"

    best_rows = [row for row in rows if row.p_value is None]
    if len(best_rows) != 1:
        raise ValueError(f"rows need exactly one best model (p_value None), got {len(best_rows)}")
    best = best_rows[0]
    for name, cost in costs.items():
        if math.isnan(cost):
            raise ValueError(f"cost of {name} is NaN")
    candidates = [row for row in rows if row.p_value is None or row.p_value >= alpha]
    cost_of = {row.name: float(costs.get(row.name, math.inf)) for row in candidates}
    chosen = min(candidates, key=lambda row: (cost_of[row.name], -row.accuracy, row.name))

    best_part = f"{best.name} is best on {metric_name} ({best.accuracy:.4g})"
    others = [row for row in rows if row is not best]
    if not others:
        reason = f"{best.name} is the only model compared."
    elif len(candidates) == 1:
        largest = max(row.p_value or 0.0 for row in others)
        reason = (
            f"{best_part} and every other model is significantly worse (McNemar p below "
            f"alpha = {alpha:g} for each, largest {format_p_value(largest)}), so it is "
            f"recommended whatever the cost."
        )
    elif chosen is best and math.isinf(cost_of[best.name]):
        reason = (
            f"{best_part}; no cost is known for it or the models not significantly worse "
            f"than it, so the best is kept."
        )
    elif chosen is best:
        tied = ", ".join(
            f"{row.name} {cost_text(row.name)} (McNemar {format_p_value(row.p_value)})"
            for row in candidates
            if row.p_value is not None
        )
        reason = (
            f"{best_part} and no cheaper model is statistically tied with it: cost "
            f"{best.name} {cost_text(best.name)} vs {tied}."
        )
    else:
        assert chosen.p_value is not None  # only the best row has None
        reason = (
            f"{best_part}, but {chosen.name} ({chosen.accuracy:.4g}) is not significantly worse "
            f"(McNemar {format_p_value(chosen.p_value)}, alpha = {alpha:g}) and is the cheapest "
            f"such model: cost {cost_text(chosen.name)} vs "
            f"{cost_text(best.name)} for {best.name}."
        )
    if chosen.name in notes and notes[chosen.name] not in reason:
        reason += f" {chosen.name}: {notes[chosen.name]}."
    missing = [row.name for row in candidates if row.name not in costs]
    if missing and others:
        reason += f" No cost given for {', '.join(missing)}; treated as infinitely expensive."
    return Recommendation(chosen.name, reason, tuple(row.name for row in candidates))
