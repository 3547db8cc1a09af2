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
SOURCE = Path("data/source.json")  # where data.source resolved to (written by prepare)
DROPPED = Path("data/dropped.csv")  # images prepare left out of the manifest, with the reason
CLASSES = METRICS / "classes.json"  # per-class summary written by prepare
DATA_DOCS = Path("reports/data_docs")  # Great Expectations' HTML report (validate)
