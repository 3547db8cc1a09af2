"""Calibration: do the probabilities mean what they say, and temperature scaling to mend them.

A model is calibrated when, of the images it gives 80 % confidence, about 80 % are
right. The expected calibration error (ECE) is the gap between confidence and accuracy,
averaged over 15 equal-width confidence bins weighted by their images (Guo et al.,
2017); the negative log-likelihood (NLL, scikit-learn's ``log_loss``) scores every
probability, not only the top one. Temperature scaling divides the logits by one
number ``T`` fitted on the validation split (T > 1 softens an over-confident model);
it never changes the argmax, so accuracy is unchanged.

NumPy only (no scikit-learn or SciPy import: each costs more than the head's whole
evaluation): the NLL is scikit-learn's ``log_loss`` formula, and T the minimum of that
NLL over log T found by a golden-section search, where SciPy's bounded Brent search was
used. tests/test_calibration.py checks both against scikit-learn's and SciPy's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

BINS = 15
# log T searched in [-3, 3]: T from 0.05 to 20, far beyond what a softmax classifier needs.
LOG_T_BOUNDS = (-3.0, 3.0)
_TINY = np.finfo(np.float64).tiny
LOG_T_TOLERANCE = 1e-7  # about 40 NLL evaluations, a millisecond each
_GOLDEN = (np.sqrt(5) - 1) / 2


def apply_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log(p) / T)`` row by row: what pipeline.models.temperature.Temperature does."""
    logits = np.log(np.maximum(np.asarray(proba, dtype=np.float64), _TINY)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def nll(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Mean negative log-likelihood of the true classes (natural log), each probability
    clipped to [eps, 1 - eps] of its float type, as scikit-learn's ``log_loss``."""
    proba = np.asarray(proba)
    if proba.dtype not in (np.float32, np.float64):
        proba = proba.astype(np.float64)
    eps = np.finfo(proba.dtype).eps
    picked = np.clip(proba[np.arange(len(proba)), np.asarray(y_true)], eps, 1 - eps)
    return float(-np.log(picked).mean())


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
    log T in LOG_T_BOUNDS by a golden-section search (the NLL is unimodal in log T):
    deterministic, no random start."""
    def loss(log_t: float) -> float:
        return nll(y_true, apply_temperature(proba, np.exp(log_t)))

    lo, hi = LOG_T_BOUNDS
    c, d = hi - _GOLDEN * (hi - lo), lo + _GOLDEN * (hi - lo)
    at_c, at_d = loss(c), loss(d)
    while hi - lo > LOG_T_TOLERANCE:
        if at_c <= at_d:  # the minimum is in [lo, d]
            hi, d, at_d = d, c, at_c
            c = hi - _GOLDEN * (hi - lo)
            at_c = loss(c)
        else:  # in [c, hi]
            lo, c, at_c = c, d, at_d
            d = lo + _GOLDEN * (hi - lo)
            at_d = loss(d)
    return float(np.exp((lo + hi) / 2))


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
    after temperature scaling, with the diagonal of a perfectly calibrated model.

    Drawn with Pillow, as the contact sheets are (pipeline.core.contact_sheets: its font, its
    deterministic PNG), at twice the size and scaled down for smooth lines: importing
    matplotlib and drawing with it took half of the head's whole evaluation."""
    from PIL import Image, ImageDraw

    from pipeline.core.contact_sheets import BACKGROUND, INK, MUTED, load_font, save_png

    k = 2  # supersampling
    width, height = 420 * k, 400 * k
    left, right, top, bottom = 52 * k, 404 * k, 30 * k, 352 * k  # the axes' box

    def at(x: float, y: float) -> tuple[float, float]:
        return left + x * (right - left), bottom - y * (bottom - top)

    img = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(img)
    small, label = load_font(9 * k), load_font(10 * k)
    for tick in np.linspace(0, 1, 6):
        x, y = at(tick, tick)
        draw.line([(x, top), (x, bottom)], fill=(232, 232, 232), width=k)
        draw.line([(left, y), (right, y)], fill=(232, 232, 232), width=k)
        draw.text((x, bottom + 4 * k), f"{tick:.1f}", fill=INK, font=small, anchor="mt")
        draw.text((left - 4 * k, y), f"{tick:.1f}", fill=INK, font=small, anchor="rm")
    draw.rectangle([left, top, right, bottom], outline=MUTED, width=k)
    dashes = np.linspace(0, 1, 41)
    for a, b in zip(dashes[0::2], dashes[1::2], strict=False):
        draw.line([at(a, a), at(b, b)], fill=(153, 153, 153), width=k)
    legend = [("calibrated", (153, 153, 153))]
    lines = [("before", (192, 80, 77), f"raw, ECE {metrics['ece']:.3f}")]
    if "temperature" in metrics:  # else evaluate.calibration: none, the raw ones ship
        lines.append(("after", (58, 125, 68), f"T = {metrics['temperature']:.2f}, "
                                              f"ECE {metrics['ece_calibrated']:.3f}"))
    for name, colour, text in lines:
        rows = table[table[f"count_{name}"] > 0]
        points = [at(x, y) for x, y in zip(rows[f"mean_confidence_{name}"],
                                           rows[f"accuracy_{name}"], strict=True)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2 * k, joint="curve")
        for x, y in points:
            draw.ellipse([x - 3 * k, y - 3 * k, x + 3 * k, y + 3 * k], fill=colour)
        legend.append((text, colour))
    box = max(draw.textlength(text, font=small) for text, _ in legend)
    draw.rectangle([left + 4 * k, top + 4 * k, left + 38 * k + box,
                    top + (18 + 14 * (len(legend) - 1)) * k],
                   fill=BACKGROUND, outline=(204, 204, 204), width=k)
    for i, (text, colour) in enumerate(legend):
        y = top + (12 + 14 * i) * k
        for a in range(0, 18, 6) if i == 0 else (0,):  # the diagonal's dashes
            draw.line([(left + (8 + a) * k, y), (left + (8 + (a + 4 if i == 0 else 18)) * k,
                                                 y)], fill=colour, width=(1 if i == 0 else 2) * k)
        draw.text((left + 32 * k, y), text, fill=INK, font=small, anchor="lm")
    draw.text(((left + right) / 2, 8 * k), f"{model}: reliability on the test split",
              fill=INK, font=label, anchor="mt")
    draw.text(((left + right) / 2, height - 12 * k), "confidence (mean, per bin)", fill=INK,
              font=label, anchor="mb")
    side = Image.new("RGB", (bottom - top, 16 * k), BACKGROUND)
    ImageDraw.Draw(side).text(((bottom - top) / 2, 8 * k), "accuracy", fill=INK, font=label,
                              anchor="mm")
    img.paste(side.rotate(90, expand=True), (4 * k, top))
    save_png(img.resize((width // k, height // k), Image.Resampling.LANCZOS), path)
