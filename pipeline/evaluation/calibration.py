"""Calibration: do the probabilities mean what they say, and temperature scaling to mend them.

A model is calibrated when, of the images it gives 80 % confidence, about 80 % are
right. The expected calibration error (ECE) is the gap between confidence and accuracy,
averaged over 15 equal-width confidence bins weighted by their images (Guo et al.,
2017); the negative log-likelihood (NLL, scikit-learn's ``log_loss``) scores every
probability, not only the top one. Temperature scaling divides the logits by one
number ``T`` fitted on the validation split (T > 1 softens an over-confident model);
it never changes the argmax, so accuracy is unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from sklearn.metrics import log_loss

BINS = 15
# log T searched in [-3, 3]: T from 0.05 to 20, far beyond what a softmax classifier needs.
LOG_T_BOUNDS = (-3.0, 3.0)
_TINY = np.finfo(np.float64).tiny


def apply_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log(p) / T)`` row by row: what pipeline.models.temperature.Temperature does."""
    logits = np.log(np.maximum(np.asarray(proba, dtype=np.float64), _TINY)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def nll(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Mean negative log-likelihood of the true classes (natural log)."""
    return float(log_loss(y_true, proba, labels=np.arange(proba.shape[1])))


def reliability(y_true: np.ndarray, proba: np.ndarray, bins: int = BINS) -> pd.DataFrame:
    """One row per non-empty confidence bin: bin (0-based), confidence (mean top
    probability), accuracy, count. The bins split [0, 1] into ``bins`` equal widths."""
    conf = np.asarray(proba).max(axis=1)
    right = np.asarray(proba).argmax(axis=1) == np.asarray(y_true)
    # Right-closed bins, (k/B, (k+1)/B], as Guo et al.; a confidence of 0 cannot happen.
    index = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    table = pd.DataFrame({"bin": index, "confidence": conf, "accuracy": right.astype(float)})
    out = table.groupby("bin").agg(confidence=("confidence", "mean"),
                                   accuracy=("accuracy", "mean"),
                                   count=("accuracy", "size"))
    return out.reset_index()


def ece(y_true: np.ndarray, proba: np.ndarray, bins: int = BINS) -> float:
    """Expected calibration error: sum over bins of |accuracy - confidence| x share of images."""
    table = reliability(y_true, proba, bins)
    weights = table["count"] / table["count"].sum()
    return float((weights * (table["accuracy"] - table["confidence"]).abs()).sum())


def fit_temperature(y_true: np.ndarray, proba: np.ndarray) -> float:
    """The temperature minimising the NLL of ``proba`` (validation predictions), found over
    log T by a bounded scalar search: deterministic, no random start."""
    result = minimize_scalar(lambda t: nll(y_true, apply_temperature(proba, np.exp(t))),
                             bounds=LOG_T_BOUNDS, method="bounded",
                             options={"xatol": 1e-5})
    return float(np.exp(result.x))


def summary(y_val: np.ndarray, proba_val: np.ndarray, y_test: np.ndarray,
            proba_test: np.ndarray, fit: bool = True) -> tuple[dict, np.ndarray]:
    """(metrics, calibrated test probabilities): T fitted on validation, ECE and NLL on
    test before and after it. ``fit`` False (``evaluate.calibration: none``): ECE and NLL
    of the raw probabilities, which are what ships; no temperature."""
    if not fit:
        return {"ece": round(ece(y_test, proba_test), 4),
                "nll": round(nll(y_test, proba_test), 4)}, proba_test
    temperature = fit_temperature(y_val, proba_val)
    calibrated = apply_temperature(proba_test, temperature)
    metrics = {
        "temperature": round(temperature, 4),
        "ece": round(ece(y_test, proba_test), 4),
        "ece_calibrated": round(ece(y_test, calibrated), 4),
        "nll": round(nll(y_test, proba_test), 4),
        "nll_calibrated": round(nll(y_test, calibrated), 4),
    }
    return metrics, calibrated


def unhelpful(metrics: dict, val_images: int | None) -> str | None:
    """One sentence when the fitted temperature did not improve the test split's ECE or
    NLL (a tie counts: it did not improve), naming the figures and the likely reason;
    None when it improved both, or when no temperature was fitted."""
    keys = ("temperature", "ece", "ece_calibrated", "nll", "nll_calibrated")
    if not all(k in metrics for k in keys):
        return None
    worse = [(name, metrics[raw], metrics[f"{raw}_calibrated"])
             for name, raw in (("ECE", "ece"), ("NLL", "nll"))
             if metrics[f"{raw}_calibrated"] >= metrics[raw]]
    if not worse:
        return None
    figures = ", ".join(f"{name} {before:.3f} → {after:.3f}" for name, before, after in worse)
    too_few = (f"the {val_images} validation images it was fitted on are too few"
               if val_images else "the validation split it was fitted on is too small")
    return (f"temperature scaling (T = {metrics['temperature']:.3g}) did not improve the test "
            f"{' or '.join(n for n, _, _ in worse)} ({figures}): likely {too_few} to "
            "estimate it; the calibrated probabilities are no better than the raw "
            "ones (a bigger validation split, or evaluate.calibration: none)")


def reliability_table(y_true: np.ndarray, before: np.ndarray, after: np.ndarray,
                      bins: int = BINS) -> pd.DataFrame:
    """Both calibrations bin by bin, for DVC's plots: ``confidence`` is the bin's centre
    (the x axis, and the diagonal a calibrated model follows: column ``perfect``); a
    calibration's columns are empty in the bins it leaves empty."""
    out = pd.DataFrame({"bin": np.arange(bins)})
    out["confidence"] = np.round((out["bin"] + 0.5) / bins, 4)
    out["perfect"] = out["confidence"]
    for name, proba in (("before", before), ("after", after)):
        table = reliability(y_true, proba, bins).set_index("bin")
        out[f"accuracy_{name}"] = out["bin"].map(table["accuracy"]).round(4)
        out[f"mean_confidence_{name}"] = out["bin"].map(table["confidence"]).round(4)
        out[f"count_{name}"] = out["bin"].map(table["count"]).fillna(0).astype(int)
    return out[(out["count_before"] + out["count_after"]) > 0].reset_index(drop=True)


def reliability_chart(table: pd.DataFrame, metrics: dict, model: str, path: Path) -> None:
    """The reliability diagram as a PNG: accuracy against mean confidence per bin, before and
    after temperature scaling, with the diagonal of a perfectly calibrated model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pipeline.core.io import atomic_path

    fig, ax = plt.subplots(figsize=(4.2, 4.0), dpi=100)
    ax.plot([0, 1], [0, 1], color="#999", linestyle="--", linewidth=1, label="calibrated")
    lines = [("before", "#c0504d", f"raw, ECE {metrics['ece']:.3f}")]
    if "temperature" in metrics:  # else evaluate.calibration: none, the raw ones ship
        lines.append(("after", "#3a7d44", f"T = {metrics['temperature']:.2f}, "
                      f"ECE {metrics['ece_calibrated']:.3f}"))
    for name, colour, label in lines:
        rows = table[table[f"count_{name}"] > 0]
        ax.plot(rows[f"mean_confidence_{name}"], rows[f"accuracy_{name}"], marker="o",
                color=colour, label=label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (mean, per bin)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{model}: reliability on the test split", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)
