"""Where each stage reads and writes, relative to the project root (as in dvc.yaml)."""

from pathlib import Path

PARAMS_CHECKED = Path("data/params_checked.json")  # every stage runs after the params check
SAMPLE = Path("data/sample")
MANIFEST = Path("data/manifest.csv")
SOURCE_FINGERPRINT = Path("data/source_fingerprint.json")  # what prepare depends on (source)
SOURCE = Path("data/source.json")  # where data.source resolved to (written by prepare)
DROPPED = Path("data/dropped.csv")  # images prepare left out of the manifest, with the reason
FEATURES = Path("data/features")  # <split>.npz
MODELS = Path("models")  # <model>.keras and its card <model>.json (head, finetune, scratch)
HEAD_MODEL = MODELS / "head.keras"
# The recommended model, exported (model.keras + card.json ...): outside models/, which the
# export and report stages depend on as a whole (DVC refuses an output inside a dependency).
BEST = Path("artifacts/classifier")
METRICS = Path("metrics")  # results `dvc exp show` compares runs on: a few numbers per stage
EVALUATIONS = METRICS / "evaluate"  # <model>.json: see evaluation()
WEIGHTS_RECORD = Path("data/weights.json")  # the weights actually used (weights stage)
SCRATCH_WEIGHTS = Path("data/scratch_weights")  # <entry>.json: its weights file, hashed
LIVE = Path("dvclive")  # DVCLive's per-epoch curves, one folder per model
PLOTS = Path("plots")  # pictures and plot data: data/, <model>/ (confusion, per class, ...)
REPORTS = Path("reports")  # what people read: report.html, data summaries, predictions
FIGURES = REPORTS / "figures"  # the report's own: not in plots/, which the report depends on
DATA_REPORTS = REPORTS / "data"  # prepare's full summary and per-class table
# Run facts (pipeline.core.run_facts): how each stage ran (seconds, speeds, sizes, the
# machine), one file per stage beside its metrics file's place; committed, never metrics.
RUNS = REPORTS / "runs"
PREDICTIONS = REPORTS / "predictions"  # <model>.csv: each test image, true and predicted
EXPORT_CHECK = REPORTS / "export.json"  # each exported format against the Keras model
DATA_DOCS = REPORTS / "data_docs"  # Great Expectations' HTML report (validate)
BACKUP = Path(".cache/backup")  # BackupAndRestore checkpoints of a running fit, one per stage


# --------------------------------------------------------------------------- per model
# The one place a model's files are named: training writes them, evaluation, the report,
# the export, predict and the gate read them.


def model_file(name: str) -> Path:
    """``models/<name>.keras``: the trained network (head, finetune or scratch entry)."""
    return MODELS / f"{name}.keras"


def model_card(name: str) -> Path:
    """``models/<name>.json``: its card (classes, input, decode, training facts)."""
    return MODELS / f"{name}.json"


def train_metrics(name: str) -> Path:
    """``metrics/train/<name>.json``: what its training stage found."""
    return METRICS / "train" / f"{name}.json"


def evaluation(name: str) -> Path:
    """``metrics/evaluate/<name>.json``: its test scores and validation temperature."""
    return EVALUATIONS / f"{name}.json"


def predictions(name: str) -> Path:
    """``reports/predictions/<name>.csv``: each test image, true and predicted."""
    return PREDICTIONS / f"{name}.csv"


def run_record(name: str) -> Path:
    """``reports/runs/<name>.json``: the run facts of ``name`` (``features``,
    ``train/head``, ``evaluate/wrn``, ``export``), see pipeline.core.run_facts."""
    return RUNS / f"{name}.json"
