"""The inference runtimes, by the name params.yaml's ``inference.runtime`` gives them.

Each is a module of this package with two functions, ``available() -> bool`` (its
library is installed) and ``forward(model, precision, note="") -> Forward`` (the Keras
model compiled on it), and one :class:`Runtime` entry in :data:`RUNTIMES` below. The
entry names the module rather than importing it: a runtime's library (OpenVINO, seconds
to import) is imported only when selection tries it. TensorFlow, the first entry, is the
reference every other runtime is checked against and the fallback of ``auto``, which tries
the others in the order listed here. params.yaml's validation lists the same names in
``pipeline.core.params.INFERENCE_RUNTIMES`` (core cannot import this package; the check
must run at load, before any stage starts), and tests/test_runtimes.py keeps the two
equal. docs/runtimes.md: how to add a runtime.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from pipeline.runtimes.forward import Forward


@dataclass(frozen=True)
class Runtime:
    name: str  # params.yaml's inference.runtime and serve's --runtime: ``openvino``
    label: str  # in messages: ``OpenVINO is not installed``
    module: str  # the module with available() and forward(): ``pipeline.runtimes.openvino``
    precisions: tuple[str, ...]  # what an explicit inference.precision may ask of it
    install: str  # what to run where available() is False: ``pip install openvino``

    def available(self) -> bool:
        return importlib.import_module(self.module).available()

    def forward(self, model, precision: str, note: str = "") -> Forward:
        return importlib.import_module(self.module).forward(model, precision, note)


REFERENCE = "tensorflow"
RUNTIMES: dict[str, Runtime] = {}


def register(runtime: Runtime) -> Runtime:
    """Add ``runtime`` after those registered (``auto`` tries them in this order)."""
    if runtime.name in ("auto", *RUNTIMES):
        raise ValueError(f"inference runtime {runtime.name!r} is already registered")
    RUNTIMES[runtime.name] = runtime
    return runtime


register(Runtime("tensorflow", "TensorFlow", "pipeline.runtimes.tensorflow", ("float32",),
                 "pip install tensorflow"))
register(Runtime("openvino", "OpenVINO", "pipeline.runtimes.openvino",
                 ("float32", "bfloat16"), "pip install openvino"))


def names() -> tuple[str, ...]:
    """What ``inference.runtime`` and ``--runtime`` accept: ``auto``, then each runtime."""
    return ("auto", *RUNTIMES)


def candidates() -> list[Runtime]:
    """What ``auto`` tries before it falls back to the reference, in order."""
    return [runtime for name, runtime in RUNTIMES.items() if name != REFERENCE]

