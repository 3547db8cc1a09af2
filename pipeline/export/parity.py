"""How an exported format compares with the Keras model, and how fast it runs here.

Parity is measured on every test image: the share whose top-1 class matches the Keras
model's, and the largest absolute difference of any class probability. Speed is
single-image latency (median and 95th percentile of ``repeats`` runs after a warm-up)
and throughput on full batches, each through the format's own runtime.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

import numpy as np

# The agreement a float format must reach with the Keras model on every test image:
# max |p - p_keras| over the probabilities.
FLOAT_TOLERANCE = 1e-4
WARMUP = 3  # untimed runs first: graph tracing, memory planning, caches


class Runner(Protocol):
    def predict(self, batch: np.ndarray) -> np.ndarray: ...


def predict_all(runner: Runner, inputs: np.ndarray, batch_size: int) -> np.ndarray:
    """Probabilities of every input, in batches of ``batch_size``."""
    return np.concatenate([runner.predict(inputs[i:i + batch_size])
                           for i in range(0, len(inputs), batch_size)])


def agreement(probabilities: np.ndarray, reference: np.ndarray,
              labels: Sequence[int]) -> dict[str, float]:
    """Top-1 agreement with ``reference``, the largest |difference|, and the accuracy."""
    top = probabilities.argmax(axis=1)
    return {
        "agreement": float(np.mean(top == reference.argmax(axis=1))),
        "max_abs_diff": float(np.max(np.abs(probabilities - reference))),
        "accuracy": float(np.mean(top == np.asarray(labels))),
    }


def latency_ms(runner: Runner, one: np.ndarray, repeats: int) -> dict[str, float]:
    """Median and 95th percentile milliseconds of ``runner`` on the batch of one ``one``."""
    for _ in range(WARMUP):
        runner.predict(one)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        runner.predict(one)
        times.append(1000 * (time.perf_counter() - start))
    return {"latency_ms_p50": round(float(np.median(times)), 3),
            "latency_ms_p95": round(float(np.percentile(times, 95)), 3)}


def throughput(runner: Runner, inputs: np.ndarray, batch_size: int) -> float:
    """Images per second on full batches of ``batch_size`` (the inputs cycled to fill them),
    at least two batches and every input once, after a warm-up batch."""
    count = max(2, -(-len(inputs) // batch_size))
    batches = [inputs[np.arange(i * batch_size, (i + 1) * batch_size) % len(inputs)]
               for i in range(count)]
    runner.predict(batches[0])
    start = time.perf_counter()
    for batch in batches:
        runner.predict(batch)
    return round(count * batch_size / (time.perf_counter() - start), 1)


def measure(runner: Runner, inputs: np.ndarray, reference: np.ndarray, labels: Sequence[int],
            repeats: int, batch_size: int) -> dict[str, float]:
    """Parity on every input, then latency on the first and throughput on all of them."""
    out = agreement(predict_all(runner, inputs, batch_size), reference, labels)
    out |= latency_ms(runner, inputs[:1], repeats)
    out["batch_images_per_second"] = throughput(runner, inputs, batch_size)
    return out


def meets_float_target(row: dict) -> bool:
    return row["agreement"] == 1.0 and row["max_abs_diff"] <= FLOAT_TOLERANCE
