"""``compile_forward``: params.yaml's ``inference`` section resolved on this machine.

``auto`` runtime: the first runtime of the registry (``pipeline.runtimes.registry``:
OpenVINO) that is installed, converts the model, and whose outputs on a few synthetic
inputs agree with TensorFlow float32's (per-row cosine); otherwise TensorFlow, with the
reason printed and recorded. ``auto`` precision: bfloat16 where the CPU computes it
natively (/proc/cpuinfo ``amx_bf16`` or ``avx512_bf16``) and the runtime runs it; float32
elsewhere. The accuracy side of that choice (the head's test accuracy moves by at most 0.5
point on flowers) was measured once: docs/performance.md.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np

from pipeline.core.errors import PipelineError
from pipeline.runtimes import registry
from pipeline.runtimes.forward import Forward
from pipeline.runtimes.registry import Runtime

log = logging.getLogger(__name__)

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
    runs_bf16 = "bfloat16" in registry.RUNTIMES[runtime].precisions
    return "bfloat16" if runs_bf16 and native_bf16(flags) else "float32"


def compile_forward(model, runtime: str = "auto", precision: str = "auto", *,
                    check: bool = True, quiet: bool = False) -> Forward:
    """``model`` (Keras, float32 inputs) as a :class:`Forward` on the requested runtime.

    An explicit runtime that is missing or disagrees with TensorFlow raises
    :class:`RuntimeChoiceError`; ``auto`` falls back to TensorFlow and says why. The
    TensorFlow runtime runs the model in the precision it was built in (bfloat16 there
    is distribute.mixed_precision's job), so an explicit bfloat16 asks for another."""
    runtimes = registry.names()
    if runtime not in runtimes:
        raise RuntimeChoiceError(f"inference.runtime: {runtime!r} is not one of {runtimes}")
    if precision not in PRECISIONS:
        raise RuntimeChoiceError(f"inference.precision: {precision!r} is not one of "
                                 f"{PRECISIONS}")
    chosen = registry.RUNTIMES.get(runtime)  # None: auto
    if chosen is not None and precision not in ("auto", *chosen.precisions):
        raise RuntimeChoiceError(_refused_precision(chosen, precision))
    reference = registry.RUNTIMES[registry.REFERENCE].forward(model, "float32")
    if runtime == registry.REFERENCE:
        return reference
    tried = registry.candidates() if chosen is None else [chosen]
    reasons = []
    for candidate in tried:
        try:
            return _checked(candidate, model, reference, precision, check)
        except Exception as err:  # conversion and plugin errors have many types
            why = " ".join(str(err).split())[:300] or type(err).__name__
            if chosen is not None:
                raise RuntimeChoiceError(f"inference.runtime: {runtime}: {why}") from None
            reasons.append(f"{candidate.name}: {why}" if len(tried) > 1 else why)
    if not reasons:  # TensorFlow is the only runtime registered
        return reference
    why = "; ".join(reasons)
    if not quiet:
        log.warning(f"inference: falling back to TensorFlow: {why}")
    return replace(reference, note=f"fell back: {why}")


def _checked(candidate: Runtime, model, reference: Forward, precision: str,
             check: bool) -> Forward:
    """``model`` on ``candidate``, or an error saying why it cannot run or disagrees."""
    wanted = resolve_precision(candidate.name, precision)
    if wanted not in candidate.precisions:  # auto, with an explicit precision
        raise RuntimeChoiceError(f"{candidate.label} does not run {wanted}")
    if not candidate.available():
        raise RuntimeChoiceError(f"{candidate.label} is not installed ({candidate.install})")
    forward = candidate.forward(model, wanted)
    if check:
        inputs = check_inputs(model.input_shape)
        cosine = min_cosine(forward(inputs), reference(inputs))
        if not cosine >= MIN_COSINE[wanted]:
            raise RuntimeChoiceError(
                f"{candidate.label} {wanted} disagrees with TensorFlow float32 (least cosine "
                f"{cosine:.6f} < {MIN_COSINE[wanted]}) on {CHECK_ROWS} test inputs")
        note = f"least cosine to TensorFlow float32 {cosine:.6f} on {CHECK_ROWS} inputs"
        forward = replace(forward, note=note)
    return forward


def _refused_precision(runtime: Runtime, precision: str) -> str:
    """Why an explicit runtime cannot run an explicit precision, and what can."""
    able = [r for r in registry.RUNTIMES.values() if precision in r.precisions]
    text = f"inference.precision: {precision} runs on " + (
        f"{' or '.join(r.label for r in able)} (inference.runtime: "
        f"{' or '.join(r.name for r in able)} or auto)" if able else "no registered runtime")
    if runtime.name == registry.REFERENCE:
        text += f"; on TensorFlow use distribute.mixed_precision: mixed_{precision}"
    return text
