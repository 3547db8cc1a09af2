"""Which machine produced a number: the CPU, the kernel-selecting instruction sets, versions.

oneDNN and XLA pick their kernels by CPU feature (AVX-512, AVX512_BF16, AMX), so the same
seed and code can give a different accuracy on another CPU (one reading: wrn 0.45 on an
Intel Xeon with AMX, 0.50 on an AMD EPYC). The metrics, the model card and the report
record it, so ``dvc metrics diff`` shows the cause next to the change. The cards keep the
dict; the metrics files keep one flat string (``record``), as they keep ``distribute``:
DVC 3.67 shows strings in ``dvc metrics show/diff`` and ``dvc exp show`` but silently drops
lists, and a dict would add one column per key to every metrics file in ``dvc exp show``.
"""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")
# The x86 features whose presence changes which kernels oneDNN / Eigen / XLA run.
KERNEL_FEATURES = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16",
                   "amx_tile", "amx_bf16", "amx_int8")
RUNTIMES = ("tensorflow", "keras", "openvino", "onnxruntime")


def parse_cpuinfo(text: str) -> tuple[str, list[str]]:
    """The CPU model name and the kernel-selecting features in /proc/cpuinfo's text.

    x86 lists ``model name`` and ``flags``; ARM has no model name, only ``Features``.
    """
    model, flags = "", set()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip().lower()
        if key == "model name" and not model:
            model = " ".join(value.split())
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return model or platform.processor() or platform.machine() or "unknown", [
        f for f in KERNEL_FEATURES if f in flags]


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def accelerator() -> str:
    """The GPUs and TPUs TensorFlow sees when it is already loaded (stages that ran a network),
    else the NVIDIA driver's list; "none" when there are neither. Never starts TensorFlow."""
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        names = []
        for device in tf.config.list_physical_devices("GPU"):
            details = tf.config.experimental.get_device_details(device)
            names.append(details.get("device_name", device.name))
        names += [d.name for d in tf.config.list_physical_devices("TPU")]
        return ", ".join(names) or "none"
    names = []
    for info in sorted(NVIDIA_GPUS.glob("*/information")) if NVIDIA_GPUS.is_dir() else []:
        for line in info.read_text(errors="replace").splitlines():
            if line.startswith("Model:"):
                names.append(line.split(":", 1)[1].strip())
    return ", ".join(names) or "none"


def describe(cpuinfo: str | None = None) -> dict:
    """The machine as a small dict: ``cpu``, ``isa`` (a list), ``accelerator``, versions."""
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text(errors="replace")
        except OSError:  # not Linux
            cpuinfo = ""
    cpu, isa = parse_cpuinfo(cpuinfo)
    return {"cpu": cpu, "isa": isa, "accelerator": accelerator(),
            **{name: _version(name) for name in RUNTIMES},
            "python": platform.python_version()}


def record(machine: dict | None = None) -> str:
    """The machine as the metrics files hold it: ``line(describe())``."""
    return line(machine or describe())


def line(machine: dict | str) -> str:
    """One line for people: ``AMD EPYC (avx2 avx512f ...), no accelerator; tensorflow ...``
    (a metrics file's ``record`` is that line already)."""
    if isinstance(machine, str):
        return machine
    isa = machine.get("isa") or "no AVX2/AVX-512/AMX"
    isa = " ".join(isa) if isinstance(isa, list) else isa
    acc = machine.get("accelerator", "none")
    runtimes = ", ".join(f"{name} {machine[name]}" for name in RUNTIMES
                         if machine.get(name, "not installed") != "not installed")
    return (f"{machine.get('cpu', 'unknown CPU')} ({isa}), "
            f"{'no accelerator' if acc == 'none' else acc}; {runtimes}; "
            f"Python {machine.get('python', '?')}")
