"""OpenVINO's CPU plugin on the Keras model, converted in memory (``openvino.convert_model``).

On a CPU with native bfloat16 (AMX, AVX512-BF16) its bf16 kernels run ResNet50 several
times faster than TensorFlow's float32 path; in float32 it is still faster (fused,
layout-aware kernels). docs/performance.md has the figures.
"""

from __future__ import annotations

import numpy as np

from pipeline.runtimes.forward import Forward

# OpenVINO's names for the precisions of params.yaml's inference.precision.
HINTS = {"float32": "f32", "bfloat16": "bf16"}


def _without_telemetry() -> None:
    """Keep OpenVINO's converter from reporting usage to Google Analytics.

    ``openvino.tools.ovc`` sends an event on import and on every conversion unless the
    ``CI`` variable is set or the user opted out; the pipeline promises to run offline
    and to send nothing anywhere. With the telemetry package unimportable, ovc falls back
    to the no-op stub it ships (``openvino.tools.ovc.telemetry_stub``).
    """
    import sys

    if "openvino.tools.ovc" not in sys.modules:  # once imported, the choice was made
        sys.modules.setdefault("openvino_telemetry", None)  # None: ImportError on import


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def forward(model, precision: str, note: str = "") -> Forward:
    """``model`` (a Keras model taking float32 batches) compiled for the CPU.

    LATENCY: one stream over every core, since callers send one batch at a time (THROUGHPUT
    would split the cores into streams that a single synchronous request cannot fill)."""
    import warnings

    _without_telemetry()
    import openvino as ov

    with warnings.catch_warnings():  # Keras: a list of inputs where the model names one
        warnings.filterwarnings("ignore", message="The structure of `inputs`")
        converted = ov.convert_model(model)
    compiled = ov.Core().compile_model(converted, "CPU", {
        "INFERENCE_PRECISION_HINT": HINTS[precision],
        "PERFORMANCE_HINT": "LATENCY",
    })
    request = compiled.create_infer_request()
    port = compiled.output(0)

    def run(batch: np.ndarray) -> np.ndarray:
        # share_outputs=False: the array outlives the next call, which reuses the buffers.
        return np.asarray(request.infer([batch])[port], dtype=np.float32).copy()

    # What the plugin settled on: a CPU without bf16 units runs a bf16 hint in f32.
    actual = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
    return Forward(run, "openvino", "bfloat16" if "bf16" in actual or "bfloat16" in actual
                   else "float32", note)
