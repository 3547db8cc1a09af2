"""Typed view of params.yaml, validated at load.

params.yaml is the one home of every value: the classes here give types and
bounds, never defaults, so a key missing from the file is an error naming it
rather than a silent value DVC cannot track. Every stage loads the whole file,
so a typo anywhere fails the first stage in a second instead of the tenth minute
of a run. Errors name the dotted key (``head.learning_rate``) and the value at
fault.

Naming: ``Params`` is the whole file, ``*Params`` one section, and a
``finetune.<name>`` entry is a *recipe*.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pipeline.core.errors import PipelineError
from pipeline.core.formats import TF_FORMATS, TF_MODES

PARAMS_FILE = "params.yaml"

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, lt=1)]


class ParamsError(PipelineError, ValueError):
    """params.yaml is missing, unreadable or holds a bad key or value."""


class _Section(BaseModel):
    # Unknown keys are typos until proven otherwise.
    model_config = ConfigDict(extra="forbid", frozen=True)


class SampleParams(_Section):
    images_per_class: PositiveInt
    image_size: Annotated[int, Field(ge=16, le=1024)]
    jpeg_quality: Annotated[int, Field(ge=10, le=100)]


class SplitParams(_Section):
    train: Annotated[float, Field(gt=0, lt=1)]
    val: Annotated[float, Field(gt=0, lt=1)]
    test: Annotated[float, Field(gt=0, lt=1)]

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitParams:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(
                f"train + val + test must sum to 1, got {self.train} + {self.val} + "
                f"{self.test} = {total:g}"
            )
        return self

    def as_dict(self) -> dict[str, float]:
        return {"train": self.train, "val": self.val, "test": self.test}


class ImagesParams(_Section):
    """Image-level checks of stages/prepare.py (pipeline/data/images.py)."""

    formats: list[str]  # Pillow format names accepted
    modes: list[str]  # Pillow modes accepted (converted to RGB at load)
    max_aspect: Annotated[float, Field(ge=1)]  # long side / short side
    max_pixels: PositiveInt  # decompression-bomb limit (Pillow's default)
    bad: Literal["fail", "quarantine"]  # rejected images: fail validation | drop
    duplicates: Literal["fail", "drop"]  # copies: report (leakage fails) | drop
    near_threshold: Annotated[int, Field(ge=0, le=64)] | None  # phash bits; None: exact
    workers: PositiveInt  # threads decoding images
    exif_orientation: bool  # apply the EXIF Orientation tag (as phone photos need)

    @field_validator("formats", "modes")
    @classmethod
    def _readable(cls, given: list[str], info: ValidationInfo) -> list[str]:
        known = TF_FORMATS if info.field_name == "formats" else TF_MODES
        unknown = [v for v in given if v not in known]
        if unknown or not given:
            raise ValueError(
                f"{unknown or 'an empty list'}: the pipeline's decoder reads {list(known)}"
            )
        return given


class DownloadParams(_Section):
    """How an http(s) data.source is fetched (pipeline/data/sources/download.py)."""

    deadline: PositiveFloat  # seconds for the whole download, retries included
    timeout: PositiveFloat  # seconds without a byte before a read gives up
    retries: Annotated[int, Field(ge=0, le=10)]  # extra attempts after a transient failure
    # The minimum rate (curl's --speed-limit/--speed-time): an attempt bringing fewer than
    # min_rate bytes/s in a window of min_rate_seconds fails (and is retried); 0: no floor.
    min_rate: Annotated[int, Field(ge=0)]
    min_rate_seconds: PositiveFloat


class DataParams(_Section):
    # A folder of class folders, a .zip/.tar(.gz|.bz2|.xz) of one, or an http(s) URL of one.
    source: Annotated[str, Field(min_length=1)]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")] | None  # archive pin; null: none
    presplit: Literal["auto", "use", "ignore"]  # train/ val/ test/ folders
    # The sub-folder of the source holding the class folders (several data sets in one
    # archive); "." takes the source's top level as it is; None: found automatically.
    root: str | None
    cache: Annotated[str, Field(min_length=1)]  # downloads, extractions
    max_bytes: PositiveInt  # download and extracted size cap
    max_files: PositiveInt  # archive entries cap
    download: DownloadParams
    split: SplitParams
    images: ImagesParams

    @field_validator("root")
    @classmethod
    def _relative(cls, root: str | None) -> str | None:
        if root is None:
            return None
        parts = Path(root.strip()).parts if root.strip() else ()
        if not parts or Path(root).is_absolute() or ".." in parts:
            raise ValueError(
                f"{root!r}: a sub-folder of data.source (relative, no '..'), '.' or null")
        return Path(*parts).as_posix()


class ValidateParams(_Section):
    classes: list[str]
    min_per_class: PositiveInt
    min_side: PositiveInt
    max_side: PositiveInt
    max_imbalance: Annotated[float, Field(ge=1)]

    @model_validator(mode="after")
    def _sides(self) -> ValidateParams:
        if self.min_side > self.max_side:
            raise ValueError(f"min_side ({self.min_side}) exceeds max_side ({self.max_side})")
        return self


Arch = Literal["resnet50", "resnet101", "resnet152"]


class BackboneParams(_Section):
    arch: Arch
    # auto | imagenet | none | a path to a .weights.h5 / .h5 file
    weights: Annotated[str, Field(min_length=1)]
    image_size: Annotated[int, Field(ge=32, le=1024)]
    batch_size: PositiveInt


Optimizer = Literal["adam", "adamw", "sgd", "rmsprop"]
Monitor = Literal["val_loss", "val_accuracy"]


class HeadParams(_Section):
    dropout: Fraction
    l2: NonNegativeFloat
    optimizer: Optimizer
    learning_rate: PositiveFloat
    batch_size: PositiveInt
    epochs: PositiveInt
    patience: PositiveInt
    monitor: Monitor


class AugmentParams(_Section):
    flip: bool  # random horizontal flip
    crop: bool  # random resized crop
    crop_min_scale: Annotated[float, Field(gt=0, le=1)]  # smallest crop side fraction
    color_jitter: Fraction  # brightness / contrast delta; 0 = off
    mixup_alpha: NonNegativeFloat  # Beta(alpha, alpha) MixUp; 0 = off


ImageSize = Annotated[int, Field(ge=16, le=1024)]


class _Recipe(_Section):
    """What every network recipe shares: input, schedule, regularisation."""

    batch_size: PositiveInt
    epochs: PositiveInt
    optimizer: Optimizer
    learning_rate: PositiveFloat
    momentum: Fraction  # sgd and rmsprop only
    schedule: Literal["constant", "cosine", "onecycle", "step"]  # onecycle: linear to 0
    warmup_epochs: Annotated[int, Field(ge=0)]  # linear learning-rate warm-up
    step_epochs: list[PositiveInt]  # step schedule: epochs where lr *= step_factor
    step_factor: Annotated[float, Field(gt=0, le=1)]
    weight_decay: NonNegativeFloat
    label_smoothing: Fraction
    patience: PositiveInt
    monitor: Monitor
    augment: AugmentParams
    flip_tta: bool  # the saved model averages each image's prediction with its mirror's
    # The training's precision: the distribute section's mixed_precision, float32,
    # bfloat16 (mixed_bfloat16), or auto: bfloat16 where the CPU computes it natively.
    precision: Literal["distribute", "auto", "float32", "bfloat16"]
    # Wall seconds of the whole stage (its process's start to the model saved): the epochs
    # are then as many as fit in it, ``epochs`` at most (pipeline/training/budget.py);
    # None: no budget, ``epochs`` run.
    budget_seconds: PositiveFloat | None


class ResNetRecipe(_Recipe):
    """A ``finetune`` entry: the backbone of the `backbone` section, started from the head."""

    # px; None = backbone.image_size, the size the head's features came from
    image_size: ImageSize | None
    head_epochs: Annotated[int, Field(ge=0)]  # warm-up of the head alone, backbone frozen
    head_learning_rate: PositiveFloat
    unfreeze: Literal["all"] | Annotated[int, Field(ge=0, le=4)]  # or last N stages
    train_bn: bool  # False keeps BatchNorm in inference mode

    @property
    def family(self) -> str:
        return "resnet"


class WRNRecipe(_Recipe):
    """WRN-depth-width (Zagoruyko and Komodakis), from scratch or a weights file."""

    family: Literal["wrn"]
    image_size: ImageSize  # from scratch: no features to match, small is fast
    depth: PositiveInt
    width: PositiveInt  # WRN-16-2 trains ~4x faster than WRN-16-4 on a CPU
    dropout: Fraction
    weights: str  # none | path/to/file.weights.h5

    @model_validator(mode="after")
    def _depth(self) -> WRNRecipe:
        if self.depth < 10 or (self.depth - 4) % 6:
            raise ValueError(
                f"depth must be 6N+4 with N >= 1 (10, 16, 22, 28, 40, ...), got {self.depth}"
            )
        return self


class BiTRecipe(_Recipe):
    """Big Transfer's ResNet-50 (GroupNorm, weight-standardised), width multiplier k."""

    family: Literal["bit"]
    image_size: ImageSize
    width: PositiveInt
    weights: str  # none | path/to/BiT-M-R50x3.npz | path/to/file.weights.h5


class ResNet9Recipe(_Recipe):
    """ResNet-9 (Page, "How to train your ResNet"), from scratch or a weights file."""

    family: Literal["resnet9"]
    image_size: ImageSize
    width: PositiveInt  # filters of the prep conv; the three layers have 2x, 4x, 8x
    weights: str  # none | path/to/file.weights.h5


ScratchRecipe = Annotated[WRNRecipe | BiTRecipe | ResNet9Recipe, Field(discriminator="family")]
Recipe = ResNetRecipe | WRNRecipe | BiTRecipe | ResNet9Recipe
SCRATCH_FAMILIES = ("wrn", "bit", "resnet9")
# A model name is a stage name (finetune@NAME), a file name (models/NAME.keras) and a
# dotted params key, so it is kept to letters, digits, "_" and "-".
ModelName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")]
RESERVED_NAMES = ("head",)  # the head has its own section, files and stages


class DistributeParams(_Section):
    """Where and in which precision networks run (pipeline/runs/placement.py).

    Batch sizes in params.yaml are per replica: the global batch is ``batch_size`` times
    the replicas of the strategy. Learning rates are used as given."""

    strategy: Literal["auto", "default", "mirrored", "multi_worker", "tpu"]
    mixed_precision: Literal["none", "mixed_float16", "mixed_bfloat16"]


class InferenceParams(_Section):
    """Which runtime and precision run every forward pass that does not train: the
    features stage, the evaluate stages, pipeline.predict (pipeline/runtimes/)."""

    runtime: Literal["auto", "tensorflow", "openvino"]  # auto: the fastest that agrees with TF
    precision: Literal["auto", "float32", "bfloat16"]  # auto: bfloat16 on native-bf16 CPUs


class EvaluateParams(_Section):
    top_k: PositiveInt  # top-k accuracy, reported when k < classes
    batch_size: PositiveInt
    mistakes_shown: Annotated[int, Field(ge=0)]  # misclassified thumbnails per model


class ReportParams(_Section):
    """The recommendation rule: the best on accuracy; among the models not significantly
    worse than it (McNemar, p >= alpha), the cheapest by ``cost``."""

    alpha: Annotated[float, Field(gt=0, lt=1)]
    # trainable_params does not move between runs; the seconds are measured (machine, load).
    cost: Literal["trainable_params", "train_seconds", "inference_seconds"]


ExportFormat = Literal["saved_model", "tflite", "tflite_int8", "onnx"]


class ExportParams(_Section):
    """stages/export.py: the recommended model in other formats, checked and timed."""

    formats: list[ExportFormat]  # beside model.keras, which is always written
    int8_images: PositiveInt  # train images calibrating the int8 TFLite model
    latency_repeats: PositiveInt  # single-image runs timed per format
    batch_size: PositiveInt  # parity batches and the throughput figure

    @field_validator("formats")
    @classmethod
    def _once(cls, given: list[str]) -> list[str]:
        twice = sorted({f for f in given if given.count(f) > 1})
        if twice:
            raise ValueError(f"{twice} listed more than once")
        return given


class GateParams(_Section):
    """python -m pipeline.gate: the recommended model's ``metric`` must reach ``min``; on the
    same test images as the baseline (McNemar, p < ``alpha``), the recommended model must not
    drop at all and no other model by more than ``max_drop``."""

    metric: Literal["accuracy", "macro_f1"]
    min: Annotated[float, Field(ge=0, le=1)]
    max_drop: Annotated[float, Field(ge=0, le=1)]
    alpha: Annotated[float, Field(gt=0, lt=1)]


class Params(_Section):
    seed: Annotated[int, Field(ge=0)]
    sample: SampleParams
    data: DataParams
    validate_: ValidateParams = Field(alias="validate")
    backbone: BackboneParams
    head: HeadParams
    finetune: dict[ModelName, ResNetRecipe]
    scratch: dict[ModelName, ScratchRecipe]
    distribute: DistributeParams
    inference: InferenceParams
    evaluate: EvaluateParams
    report: ReportParams
    export: ExportParams
    gate: GateParams

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _unique_names(self) -> Params:
        both = sorted(set(self.finetune) & set(self.scratch))
        if both:
            raise ValueError(f"model name(s) {both} in both finetune and scratch: each "
                             "model needs its own name (it names its stages and files)")
        reserved = sorted((set(self.finetune) | set(self.scratch)) & set(RESERVED_NAMES))
        if reserved:
            raise ValueError(f"model name(s) {reserved} are reserved ({RESERVED_NAMES})")
        return self

    def models(self) -> list[str]:
        """Every trained model: the head, then the finetune and scratch entries."""
        return ["head", *self.finetune, *self.scratch]


def _key(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    # pydantic puts the discriminator's tag in the location (scratch.wrn.wrn.depth);
    # users know the key they typed, so drop the tag.
    if len(parts) > 2 and parts[0] == "scratch" and parts[2] in SCRATCH_FAMILIES:
        del parts[2]
    return ".".join(parts) if parts else "(top level)"


def parse(raw: Any, source: str = PARAMS_FILE) -> Params:
    """Validate a parsed params mapping; raise ParamsError naming every bad key."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        lines = []
        for e in err.errors():
            key = _key(e["loc"])
            if e["type"] == "extra_forbidden":
                lines.append(f"  {key}: unknown key (typo?)")
            elif e["type"] == "union_tag_not_found":
                lines.append(f"  {key}.family: missing ({' | '.join(SCRATCH_FAMILIES)})")
            elif e["type"] == "missing":
                lines.append(f"  {key}: missing (every key is set in params.yaml)")
            else:
                value = e.get("input")
                shown = "" if isinstance(value, dict) else f" (got {value!r})"
                lines.append(f"  {key}: {e['msg']}{shown}")
        raise ParamsError(f"{source}: invalid params\n" + "\n".join(lines)) from None


def load(path: str | Path = PARAMS_FILE) -> Params:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ParamsError(f"cannot read {path}: {err.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    return parse(raw, str(path))
