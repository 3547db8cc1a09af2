"""Typed view of params.yaml, validated at load.

Every stage loads the whole file, so a typo anywhere fails the first stage in
a second instead of the tenth minute of a run. Errors name the dotted key
(``head.learning_rate``) and the value at fault.
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

PARAMS_FILE = "params.yaml"

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, lt=1)]


class ConfigError(ValueError):
    """params.yaml is missing, unreadable or holds a bad key or value."""


class _Section(BaseModel):
    # Unknown keys are typos until proven otherwise.
    model_config = ConfigDict(extra="forbid", frozen=True)


class SampleConfig(_Section):
    images_per_class: PositiveInt = 80
    image_size: Annotated[int, Field(ge=16, le=1024)] = 128
    jpeg_quality: Annotated[int, Field(ge=10, le=100)] = 90


class SplitConfig(_Section):
    train: Annotated[float, Field(gt=0, lt=1)] = 0.7
    val: Annotated[float, Field(gt=0, lt=1)] = 0.15
    test: Annotated[float, Field(gt=0, lt=1)] = 0.15

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitConfig:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(
                f"train + val + test must sum to 1, got {self.train} + {self.val} + "
                f"{self.test} = {total:g}"
            )
        return self

    def as_dict(self) -> dict[str, float]:
        return {"train": self.train, "val": self.val, "test": self.test}


# What the pipeline's decoder (tf.io.decode_image) reads, as Pillow names them: the
# defaults and the most data.images.formats / data.images.modes may allow.
TF_FORMATS = ("JPEG", "PNG", "GIF", "BMP")
TF_MODES = (
    "RGB", "L", "LA", "RGBA", "RGBX", "P", "PA", "1", "CMYK", "I;16", "I;16L", "I;16B", "I;16N",
)  # fmt: skip


class ImagesConfig(_Section):
    """Image-level checks of stages/prepare.py (pipeline/images.py)."""

    formats: list[str] = list(TF_FORMATS)  # Pillow format names accepted
    modes: list[str] = list(TF_MODES)  # Pillow modes accepted (converted to RGB at load)
    max_aspect: Annotated[float, Field(ge=1)] = 10.0  # long side / short side
    max_pixels: PositiveInt = 89_478_485  # decompression-bomb limit (Pillow's default)
    bad: Literal["fail", "quarantine"] = "fail"  # rejected images: fail validation | drop
    duplicates: Literal["fail", "drop"] = "fail"  # copies: report (leakage fails) | drop
    near_threshold: Annotated[int, Field(ge=0, le=64)] | None = 3  # phash bits; None: exact
    workers: PositiveInt = 8  # threads decoding images

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


class DataConfig(_Section):
    # A folder of class folders, a .zip/.tar(.gz|.bz2|.xz) of one, or an http(s) URL of one.
    source: Annotated[str, Field(min_length=1)] = "data/sample"
    sha256: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")] | None = None  # archive pin
    presplit: Literal["auto", "use", "ignore"] = "auto"  # train/ val/ test/ folders
    cache: Annotated[str, Field(min_length=1)] = ".cache/sources"  # downloads, extractions
    max_bytes: PositiveInt = 10_000_000_000  # download and extracted size cap
    max_files: PositiveInt = 1_000_000  # archive entries cap
    split: SplitConfig = SplitConfig()
    images: ImagesConfig = ImagesConfig()


class ValidateConfig(_Section):
    classes: list[str] = []
    min_per_class: PositiveInt = 5
    min_side: PositiveInt = 16
    max_side: PositiveInt = 8192
    max_imbalance: Annotated[float, Field(ge=1)] = 10.0

    @model_validator(mode="after")
    def _sides(self) -> ValidateConfig:
        if self.min_side > self.max_side:
            raise ValueError(f"min_side ({self.min_side}) exceeds max_side ({self.max_side})")
        return self


Arch = Literal["resnet50", "resnet101", "resnet152"]


class BackboneConfig(_Section):
    arch: Arch = "resnet50"
    # auto | imagenet | none | a path to a .weights.h5 / .h5 file
    weights: Annotated[str, Field(min_length=1)] = "auto"
    image_size: Annotated[int, Field(ge=32, le=1024)] = 128
    batch_size: PositiveInt = 32


Optimizer = Literal["adam", "adamw", "sgd", "rmsprop"]
Monitor = Literal["val_loss", "val_accuracy"]


class HeadConfig(_Section):
    dropout: Fraction = 0.2
    l2: NonNegativeFloat = 1e-4
    optimizer: Optimizer = "adam"
    learning_rate: PositiveFloat = 1e-3
    batch_size: PositiveInt = 32
    epochs: PositiveInt = 60
    patience: PositiveInt = 8
    monitor: Monitor = "val_loss"


class AugmentConfig(_Section):
    flip: bool = True  # random horizontal flip
    crop: bool = True  # random resized crop
    crop_min_scale: Annotated[float, Field(gt=0, le=1)] = 0.6  # smallest crop side fraction
    color_jitter: Fraction = 0.1  # brightness / contrast delta; 0 = off
    mixup_alpha: NonNegativeFloat = 0.0  # 0 = off


ImageSize = Annotated[int, Field(ge=16, le=1024)]


class _Recipe(_Section):
    """What every fine-tuned model shares: input, schedule, regularisation."""

    # px; None (resnet only) = backbone.image_size, the size the head's features came from
    image_size: ImageSize | None = None
    batch_size: PositiveInt = 16
    epochs: PositiveInt = 4
    optimizer: Optimizer = "adam"
    learning_rate: PositiveFloat = 1e-4
    momentum: Fraction = 0.9  # sgd and rmsprop only
    schedule: Literal["constant", "cosine", "step"] = "cosine"
    warmup_epochs: Annotated[int, Field(ge=0)] = 0  # linear learning-rate warm-up
    step_epochs: list[PositiveInt] = []  # step schedule: epochs where lr *= step_factor
    step_factor: Annotated[float, Field(gt=0, le=1)] = 0.1
    weight_decay: NonNegativeFloat = 0.0
    label_smoothing: Fraction = 0.0
    patience: PositiveInt = 3
    monitor: Monitor = "val_loss"
    augment: AugmentConfig = AugmentConfig()


class ResNetFinetuneConfig(_Recipe):
    """The backbone of the `backbone` section, started from the head."""

    family: Literal["resnet"]
    head_epochs: Annotated[int, Field(ge=0)] = 1  # warm-up of the head alone, backbone frozen
    head_learning_rate: PositiveFloat = 1e-3
    unfreeze: Literal["all"] | Annotated[int, Field(ge=0, le=4)] = "all"  # or last N stages
    train_bn: bool = False  # False keeps BatchNorm in inference mode


class WRNFinetuneConfig(_Recipe):
    """WRN-depth-width (Zagoruyko and Komodakis), from scratch or a weights file."""

    family: Literal["wrn"]
    image_size: ImageSize = 64  # from scratch: no features to match, small is fast
    depth: PositiveInt = 16
    width: PositiveInt = 2  # WRN-16-2 trains ~4x faster than WRN-16-4 on a CPU
    dropout: Fraction = 0.3
    weights: str = "none"  # none | path/to/file.weights.h5

    @model_validator(mode="after")
    def _depth(self) -> WRNFinetuneConfig:
        if self.depth < 10 or (self.depth - 4) % 6:
            raise ValueError(
                f"depth must be 6N+4 with N >= 1 (10, 16, 22, 28, 40, ...), got {self.depth}"
            )
        return self


class BiTFinetuneConfig(_Recipe):
    """Big Transfer's ResNet-50 (GroupNorm, weight-standardised), width multiplier k."""

    family: Literal["bit"]
    image_size: ImageSize = 64
    width: PositiveInt = 3
    weights: str = "none"  # none | path/to/BiT-M-R50x3.npz | path/to/file.weights.h5


FinetuneModelConfig = Annotated[
    ResNetFinetuneConfig | WRNFinetuneConfig | BiTFinetuneConfig,
    Field(discriminator="family"),
]


class EvaluateConfig(_Section):
    top_k: PositiveInt = 3
    batch_size: PositiveInt = 32


class Config(_Section):
    seed: Annotated[int, Field(ge=0)] = 42
    sample: SampleConfig = SampleConfig()
    data: DataConfig = DataConfig()
    validate_: ValidateConfig = Field(ValidateConfig(), alias="validate")
    backbone: BackboneConfig = BackboneConfig()
    head: HeadConfig = HeadConfig()
    finetune: dict[str, FinetuneModelConfig] = {}
    evaluate: EvaluateConfig = EvaluateConfig()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _key(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    # pydantic puts the discriminator's tag in the location (finetune.wrn.wrn.depth);
    # users know the key they typed, so drop the tag.
    if len(parts) > 2 and parts[0] == "finetune" and parts[2] in ("resnet", "wrn", "bit"):
        del parts[2]
    return ".".join(parts) if parts else "(top level)"


def parse(raw: Any, source: str = PARAMS_FILE) -> Config:
    """Validate a parsed params mapping; raise ConfigError naming every bad key."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Config.model_validate(raw)
    except ValidationError as err:
        lines = []
        for e in err.errors():
            key = _key(e["loc"])
            if e["type"] == "extra_forbidden":
                lines.append(f"  {key}: unknown key (typo?)")
            else:
                value = e.get("input")
                shown = "" if isinstance(value, dict) else f" (got {value!r})"
                lines.append(f"  {key}: {e['msg']}{shown}")
        raise ConfigError(f"{source}: invalid params\n" + "\n".join(lines)) from None


def load(path: str | Path = PARAMS_FILE) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    return parse(raw, str(path))
