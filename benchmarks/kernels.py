"""Do a trained model's test predictions depend on the CPU kernels oneDNN picks?

    python benchmarks/kernels.py [MODEL]   # default wrn; needs models/MODEL.{keras,json},
                                          # data/manifest.csv and the images (a `dvc repro`)

One machine cannot be another CPU, but oneDNN can be told to stop at a lower instruction
set (ONEDNN_MAX_CPU_ISA) or be switched off (TF_ENABLE_ONEDNN_OPTS=0), which is what a CPU
without AVX-512 (or one with AMX) changes. Each setting predicts the test split in a fresh
process; the script prints, per setting, the accuracy, the images whose predicted class
differs from the default's, and the largest probability difference. Training on another
CPU compounds such differences over every step; this measures the forward pass alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {
    "default (this CPU's best ISA)": {},
    "oneDNN capped at AVX512_CORE (no bf16/VNNI)": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"},
    "oneDNN capped at AVX2 (a CPU without AVX-512)": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "oneDNN off (Eigen kernels)": {"TF_ENABLE_ONEDNN_OPTS": "0"},
}


def predict(model: str, out: Path) -> None:
    """Child process: the test split's probabilities and labels, as the evaluate stages
    make them."""
    sys.path.insert(0, str(ROOT))
    from pipeline.core import paths
    from pipeline.core.io import read_json
    from pipeline.core.params import load
    from pipeline.data.input import split_arrays
    from pipeline.data.manifest import read
    from pipeline.data.sources import data_root
    from pipeline.models.trained import TrainedModel

    card = read_json(paths.model_card(model))
    files, labels = split_arrays(read(paths.MANIFEST), data_root(load().data), "test",
                                 card["classes"])
    trained = TrainedModel.load(paths.model_file(model), card)
    proba = trained.network.predict(trained.dataset(files, labels, 32), verbose=0)
    np.savez(out, proba=proba, labels=labels)


def main() -> None:
    model = sys.argv[1] if len(sys.argv) > 1 else "wrn"
    from pipeline.core.machine import describe, line

    print(f"{model} on the test split; {line(describe())}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, env in SETTINGS.items():
            out = Path(tmp) / f"{len(results)}.npz"
            subprocess.run([sys.executable, __file__, "--child", model, str(out)], check=True,
                           env=os.environ | env | {"TF_CPP_MIN_LOG_LEVEL": "2"}, cwd=ROOT)
            with np.load(out) as found:
                results[name] = (found["proba"], found["labels"])
    base, labels = next(iter(results.values()))
    rows = []
    for name, (proba, _) in results.items():
        rows.append({"setting": name,
                     "accuracy": round(float((proba.argmax(1) == labels).mean()), 4),
                     "class changed": int((proba.argmax(1) != base.argmax(1)).sum()),
                     "max |dp|": float(np.abs(proba - base).max())})
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        predict(sys.argv[2], Path(sys.argv[3]))
    else:
        main()
