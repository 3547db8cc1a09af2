"""Where each stage reads and writes, relative to the project root (as in dvc.yaml)."""

from pathlib import Path

SAMPLE = Path("data/sample")
MANIFEST = Path("data/manifest.csv")
FEATURES = Path("data/features")  # <split>.npz
MODELS = Path("models")
HEAD_MODEL = MODELS / "head.keras"
FINETUNE = MODELS / "finetune"  # <name>.keras
METRICS = Path("metrics")
WEIGHTS_RECORD = METRICS / "weights.json"
CONFUSION = METRICS / "confusion"  # <model>.csv
LIVE = Path("dvclive")  # DVCLive curves: head/, finetune/<name>/
