"""``compile_forward``: params.yaml's ``inference`` section resolved on this machine.

``auto`` runtime: OpenVINO when it is installed, converts the model, and its outputs on a
few synthetic inputs agree with TensorFlow float32's (per-row cosine); otherwise
TensorFlow, with the reason printed and recorded. ``auto`` precision: bfloat16 where the
CPU computes it natively (/proc/cpuinfo ``amx_bf16`` or ``avx512_bf16``) and OpenVINO
runs it; float32 elsewhere. The accuracy side of that choice (the head's test accuracy
moves by at most 0.5 point on flowers) was measured once: docs/performance.md.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np

from pipeline.core.errors import PipelineError
from pipeline.runtimes.forward import Forward

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "tensorflow", "openvino")
PRECISIONS = ("auto", "float32", "bfloat16")
NATIVE_BF16 = ("amx_bf16", "avx512_bf16")
# Least per-row cosine to TensorFlow float32 on the check inputs: bfloat16 keeps about
# 3 significant digits (the bar for features); float32 only reorders sums.
MIN_COSINE = {"float32": 0.99999, "bfloat16": 0.999}
CHECK_ROWS = 4


class RuntimeChoiceError(PipelineError, RuntimeError):
    """An explicitly requested runtime or precision cannot run here, or disagrees."""


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The first CPU's flags (empty where there is no /proc/cpuinfo)."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native_bf16(flags: set[str] | None = None) -> bool:
    return bool(set(NATIVE_BF16) & (cpu_flags() if flags is None else flags))


def check_inputs(shape: tuple, seed: int = 0) -> np.ndarray:
    """A few inputs of the model's shape: RGB noise in [0, 255] for images (the pipeline's
    models take raw pixels), standard normal for feature vectors."""
    if None in shape[1:]:
        raise RuntimeChoiceError(f"input shape {shape}: the check needs a fixed input size")
    rng = np.random.default_rng(seed)
    dims = tuple(int(d) for d in shape[1:])
    if len(dims) == 3:
        return rng.uniform(0, 255, (CHECK_ROWS, *dims)).astype(np.float32)
    return rng.standard_normal((CHECK_ROWS, *dims)).astype(np.float32)


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """The least cosine between matching rows (1.0 for two all-zero rows)."""
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return float("nan")
    dot = (a * b).sum(1)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cos = np.where(norms > 0, dot / np.where(norms > 0, norms, 1), 1.0)
    return float(cos.min())


def resolve_precision(runtime: str, precision: str, flags: set[str] | None = None) -> str:
    if precision != "auto":
        return precision
    return "bfloat16" if runtime == "openvino" and native_bf16(flags) else "float32"


def compile_forward(model, runtime: str = "auto", precision: str = "auto", *,
                    check: bool = True, quiet: bool = False) -> Forward:
    """``model`` (Keras, float32 inputs) as a :class:`Forward` on the requested runtime.

    An explicit runtime that is missing or disagrees with TensorFlow raises
    :class:`RuntimeChoiceError`; ``auto`` falls back to TensorFlow and says why. The
    TensorFlow runtime runs the model in the precision it was built in (bfloat16 there
    is distribute.mixed_precision's job), so an explicit bfloat16 asks for OpenVINO."""
    if runtime not in RUNTIMES:
        raise RuntimeChoiceError(f"inference.runtime: {runtime!r} is not one of {RUNTIMES}")
    if precision not in PRECISIONS:
        raise RuntimeChoiceError(f"inference.precision: {precision!r} is not one of "
                                 f"{PRECISIONS}")
    from pipeline.runtimes.tensorflow import tensorflow_forward

    reference = tensorflow_forward(model)
    if runtime == "tensorflow":
        if precision == "bfloat16":
            raise RuntimeChoiceError(
                "inference.precision: bfloat16 runs on OpenVINO (inference.runtime: openvino "
                "or auto); on TensorFlow use distribute.mixed_precision: mixed_bfloat16")
        return reference
    from pipeline.runtimes.openvino import available, openvino_forward

    wanted = resolve_precision("openvino", precision)
    try:
        if not available():
            raise RuntimeChoiceError("OpenVINO is not installed (pip install openvino)")
        candidate = openvino_forward(model, wanted)
        if check:
            inputs = check_inputs(model.input_shape)
            cosine = min_cosine(candidate(inputs), reference(inputs))
            if not cosine >= MIN_COSINE[wanted]:
                raise RuntimeChoiceError(
                    f"OpenVINO {wanted} disagrees with TensorFlow float32 (least cosine "
                    f"{cosine:.6f} < {MIN_COSINE[wanted]}) on {CHECK_ROWS} test inputs")
            note = f"least cosine to TensorFlow float32 {cosine:.6f} on {CHECK_ROWS} inputs"
            candidate = replace(candidate, note=note)
        return candidate
    except Exception as err:  # conversion and plugin errors have many types
        why = " ".join(str(err).split())[:300] or type(err).__name__
        if runtime == "openvino":
            raise RuntimeChoiceError(f"inference.runtime: openvino: {why}") from None
        if not quiet:
            log.warning(f"inference: falling back to TensorFlow: {why}")
        return replace(reference, note=f"fell back: {why}")
