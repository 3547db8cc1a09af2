"""Typed view of params.yaml, validated at load.

params.yaml is the one home of every value: the classes here give types and
bounds, never defaults, so a key missing from the file is an error naming it
rather than a silent value DVC cannot track. Every stage loads the whole file,
so a typo anywhere fails the first stage in a second instead of the tenth minute
of a run. Errors name the dotted key (``head.learning_rate``) and the value at
fault.

Every value is checked as a class, not key by key: types are strict (``true`` is no
integer, ``"0.1"`` no number, ``1`` no boolean), no float is infinite or NaN, every
number has a declared range (tests/test_config.py fails on one without), and no string
holds a NUL byte. The file itself is read with no duplicate key and a bound on what YAML
aliases expand to. The ``params`` stage (stages/params.py) runs this check before any
other stage can remove an output (docs/pipeline.md, "How params are checked").

Naming: ``Params`` is the whole file, ``*Params`` one section, and a
``finetune.<name>`` entry is a *recipe*.
"""

from __future__ import annotations

import difflib
import re
import typing
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
from pipeline.core.image_formats import TF_FORMATS, TF_MODES

PARAMS_FILE = "params.yaml"
# The YAML nodes (keys, values, sections) params.yaml may hold once its aliases are
# expanded: ~7x the file as shipped (1,500), far from the memory that a few lines of
# nested aliases ("billion laughs") would take.
MAX_NODES = 10_000

# Counts and sizes end up in TensorFlow's, NumPy's and Pillow's 32-bit integers.
INT32_MAX = 2**31 - 1
PositiveInt = Annotated[int, Field(gt=0, le=INT32_MAX)]
NonNegativeInt = Annotated[int, Field(ge=0, le=INT32_MAX)]
BatchSize = Annotated[int, Field(gt=0, le=65536)]  # per replica: more fits no device
LearningRate = Annotated[float, Field(gt=0, le=10)]  # above: a slip (1e3 for 1e-3), it diverges
Seconds = Annotated[float, Field(gt=0, le=7 * 24 * 3600)]  # a week; a socket overflows far above
Decay = Annotated[float, Field(ge=0, le=1)]  # L2 and weight decay
Ratio = Annotated[float, Field(ge=1, le=1e6)]  # long/short side, largest/smallest class
Fraction = Annotated[float, Field(ge=0, lt=1)]


class ParamsError(PipelineError, ValueError):
    """params.yaml is missing, unreadable or holds a bad key or value."""


# Unknown keys are typos until proven otherwise; a value of the wrong type is refused, not
# converted (YAML's `yes` or `"0.1"` is a slip, and DVC tracks it as written); .inf and
# .nan are no setting.
_CONFIG = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


# Each rule beyond a type and a range is a plain function that its validator calls:
# mutation testing (mutmut, docs/development.md) does not reach into decorated functions.


def _nul_free(value: Any) -> Any:
    # A NUL byte ends a path at the operating system: open() raises on it.
    texts = value if isinstance(value, list) else [value]
    if any(isinstance(t, str) and "\0" in t for t in texts):
        raise ValueError("a NUL character (\\0) in a name or path")
    return value


class _Section(BaseModel):
    model_config = _CONFIG

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        return _nul_free(value)


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
        return _split_sums_to_one(self)

    def as_dict(self) -> dict[str, float]:
        return {"train": self.train, "val": self.val, "test": self.test}


def _split_sums_to_one(split: SplitParams) -> SplitParams:
    total = split.train + split.val + split.test
    if abs(total - 1.0) > 1e-6:
        raise ValueError(
            f"train + val + test must sum to 1, got {split.train} + {split.val} + "
            f"{split.test} = {total:g}"
        )
    return split


class ImagesParams(_Section):
    """Image-level checks of stages/prepare.py (pipeline/data/images.py)."""

    formats: list[str]  # Pillow format names accepted
    modes: list[str]  # Pillow modes accepted (converted to RGB at load)
    max_aspect: Ratio  # long side / short side
    max_pixels: PositiveInt  # decompression-bomb limit (Pillow's default)
    bad: Literal["fail", "quarantine"]  # rejected images: fail validation | drop
    duplicates: Literal["fail", "drop"]  # copies: report (leakage fails) | drop
    near_threshold: Annotated[int, Field(ge=0, le=64)] | None  # phash bits; None: exact
    workers: PositiveInt  # threads decoding images
    exif_orientation: bool  # apply the EXIF Orientation tag (as phone photos need)

    @field_validator("formats", "modes")
    @classmethod
    def _readable(cls, given: list[str], info: ValidationInfo) -> list[str]:
        return _decoder_reads(given, TF_FORMATS if info.field_name == "formats" else TF_MODES)


def _decoder_reads(given: list[str], known: tuple[str, ...]) -> list[str]:
    unknown = [v for v in given if v not in known]
    if unknown or not given:
        raise ValueError(
            f"{unknown or 'an empty list'}: the pipeline's decoder reads {list(known)}")
    return given


class DownloadParams(_Section):
    """How an http(s) data.source is fetched (pipeline/data/sources/download.py)."""

    deadline: Seconds  # for the whole download, retries included
    timeout: Seconds  # without a byte before a read gives up
    retries: Annotated[int, Field(ge=0, le=10)]  # extra attempts after a transient failure
    # The minimum rate (curl's --speed-limit/--speed-time): an attempt bringing fewer than
    # min_rate bytes/s in a window of min_rate_seconds fails (and is retried); 0: no floor.
    min_rate: NonNegativeInt  # bytes/s
    min_rate_seconds: Seconds


class DataParams(_Section):
    # A folder of class folders, a .zip/.tar(.gz|.bz2|.xz) of one, or an http(s) URL of one.
    source: Annotated[str, Field(min_length=1)]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")] | None  # archive pin; null: none
    presplit: Literal["auto", "use", "ignore"]  # train/ val/ test/ folders
    # The sub-folder of the source holding the class folders (several data sets in one
    # archive); "." takes the source's top level as it is; None: found automatically.
    root: str | None
    cache: Annotated[str, Field(min_length=1)]  # downloads, extractions
    max_bytes: Annotated[int, Field(gt=0, le=2**50)]  # download and extracted size cap
    max_files: PositiveInt  # archive entries cap
    download: DownloadParams
    split: SplitParams
    images: ImagesParams

    @field_validator("root")
    @classmethod
    def _relative(cls, root: str | None) -> str | None:
        return _sub_folder(root)


def _sub_folder(root: str | None) -> str | None:
    if root is None:
        return None
    if root.strip() == ".":  # the top level as it is (Path(".").parts is empty)
        return "."
    parts = Path(root.strip()).parts  # "" gives no parts
    if not parts or Path(root).is_absolute() or ".." in parts:
        raise ValueError(
            f"{root!r}: a sub-folder of data.source (relative, no '..'), '.' or null")
    return Path(*parts).as_posix()


class ValidateParams(_Section):
    classes: list[str]
    min_per_class: PositiveInt
    min_side: PositiveInt
    max_side: PositiveInt
    max_imbalance: Ratio

    @model_validator(mode="after")
    def _sides(self) -> ValidateParams:
        return _sides_in_order(self)


def _sides_in_order(validate: ValidateParams) -> ValidateParams:
    if validate.min_side > validate.max_side:
        raise ValueError(
            f"min_side ({validate.min_side}) exceeds max_side ({validate.max_side})")
    return validate


Arch = Literal["resnet50", "resnet101", "resnet152"]


class BackboneParams(_Section):
    arch: Arch
    # auto | imagenet | none | a path to a .weights.h5 / .h5 file
    weights: Annotated[str, Field(min_length=1)]
    image_size: Annotated[int, Field(ge=32, le=1024)]
    batch_size: BatchSize

    @field_validator("weights")
    @classmethod
    def _weights_file(cls, spec: str) -> str:
        return weights_file(spec, (".weights.h5", ".h5"), ("auto", "imagenet", "none"))


Optimizer = Literal["adam", "adamw", "sgd", "rmsprop"]
Monitor = Literal["val_loss", "val_accuracy"]


class HeadParams(_Section):
    # lbfgs: full-batch L-BFGS in NumPy/SciPy, dropout marginalised, no TensorFlow (the
    # optimizer, learning_rate and batch_size are keras' only; epochs caps iterations)
    solver: Literal["lbfgs", "keras"]
    dropout: Fraction
    l2: Decay
    optimizer: Optimizer
    learning_rate: LearningRate
    batch_size: BatchSize
    epochs: PositiveInt
    patience: PositiveInt
    monitor: Monitor
    # Wall seconds for the whole stage; lbfgs stops at the iteration that would cross it,
    # keras plans its epochs as a fine-tune does. None: no budget.
    budget_seconds: Seconds | None


class AugmentParams(_Section):
    flip: bool  # random horizontal flip
    crop: bool  # random resized crop
    crop_min_scale: Annotated[float, Field(gt=0, le=1)]  # smallest crop side fraction
    color_jitter: Fraction  # brightness / contrast delta; 0 = off
    mixup_alpha: Annotated[float, Field(ge=0, le=100)]  # Beta(alpha, alpha) MixUp; 0 = off


ImageSize = Annotated[int, Field(ge=16, le=1024)]


class _Recipe(_Section):
    """What every network recipe shares: input, schedule, regularisation."""

    batch_size: BatchSize
    epochs: PositiveInt
    optimizer: Optimizer
    learning_rate: LearningRate
    momentum: Fraction  # sgd and rmsprop only
    schedule: Literal["constant", "cosine", "onecycle", "step"]  # onecycle: linear to 0
    warmup_epochs: NonNegativeInt  # linear learning-rate warm-up
    step_epochs: list[PositiveInt]  # step schedule: epochs where lr *= step_factor
    step_factor: Annotated[float, Field(gt=0, le=1)]
    weight_decay: Decay
    label_smoothing: Fraction
    patience: PositiveInt
    monitor: Monitor
    augment: AugmentParams
    flip_tta: bool  # the saved model averages each image's prediction with its mirror's
    # The training's precision: the distribute section's mixed_precision, float32,
    # bfloat16 (mixed_bfloat16), or auto: bfloat16 where the CPU computes it natively.
    precision: Literal["distribute", "auto", "float32", "bfloat16"]
    # Wall seconds of the whole stage (its process's start to the model saved): the epochs
    # are then as many as fit in it, ``epochs`` at most (pipeline/training/budget_planner.py);
    # None: no budget, ``epochs`` run.
    budget_seconds: Seconds | None


class ResNetRecipe(_Recipe):
    """A ``finetune`` entry: the backbone of the `backbone` section, started from the head."""

    # px; None = backbone.image_size, the size the head's features came from
    image_size: ImageSize | None
    head_epochs: NonNegativeInt  # warm-up of the head alone, backbone frozen
    head_learning_rate: LearningRate
    unfreeze: Literal["all"] | Annotated[int, Field(ge=0, le=4)]  # or last N stages
    train_bn: bool  # False keeps BatchNorm in inference mode

    @property
    def family(self) -> str:
        return "resnet"


class WRNRecipe(_Recipe):
    """WRN-depth-width (Zagoruyko and Komodakis), from scratch or a weights file."""

    family: Literal["wrn"]
    image_size: ImageSize  # from scratch: no features to match, small is fast
    depth: Annotated[int, Field(gt=0, le=1000)]
    width: Annotated[int, Field(gt=0, le=64)]  # WRN-16-2: ~4x faster than WRN-16-4 on a CPU
    dropout: Fraction
    weights: str  # none | path/to/file.weights.h5

    @field_validator("weights")
    @classmethod
    def _weights_file(cls, spec: str) -> str:
        return weights_file(spec, (".weights.h5",))

    @model_validator(mode="after")
    def _depth(self) -> WRNRecipe:
        return _wrn_depth(self)


def _wrn_depth(recipe: WRNRecipe) -> WRNRecipe:
    if recipe.depth < 10 or (recipe.depth - 4) % 6:
        raise ValueError(
            f"depth must be 6N+4 with N >= 1 (10, 16, 22, 28, 40, ...), got {recipe.depth}"
        )
    return recipe


class BiTRecipe(_Recipe):
    """Big Transfer's ResNet-50 (GroupNorm, weight-standardised), width multiplier k."""

    family: Literal["bit"]
    image_size: ImageSize
    width: Annotated[int, Field(gt=0, le=64)]
    weights: str  # none | path/to/BiT-M-R50x3.npz | path/to/file.weights.h5

    @field_validator("weights")
    @classmethod
    def _weights_file(cls, spec: str) -> str:
        return weights_file(spec, (".weights.h5", ".npz"))


def weights_file(spec: str, kinds: tuple[str, ...], words: tuple[str, ...] = ("none",)) -> str:
    """A ``weights`` key: one of ``words``, or a file name of a kind its network loads."""
    if spec not in words and not spec.endswith(kinds):
        raise ValueError(f"{spec!r} is not {', '.join(words)} or a {' or '.join(kinds)} file")
    return spec


class ResNet9Recipe(_Recipe):
    """ResNet-9 (Page, "How to train your ResNet"), from scratch or a weights file."""

    family: Literal["resnet9"]
    image_size: ImageSize
    width: Annotated[int, Field(gt=0, le=128)]  # the prep conv's filters; then 2x, 4x, 8x
    weights: str  # none | path/to/file.weights.h5

    @field_validator("weights")
    @classmethod
    def _weights_file(cls, spec: str) -> str:
        return weights_file(spec, (".weights.h5",))


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


# inference.runtime's values: the runtimes registered in pipeline/runtimes/registry.py,
# named here because params.yaml is checked at load, in core, which cannot import the
# runtimes (the layers of docs/pipeline.md); tests/test_runtimes.py keeps the two equal.
INFERENCE_RUNTIMES = ("auto", "tensorflow", "openvino")


class InferenceParams(_Section):
    """Which runtime and precision run every forward pass that does not train: the
    features stage, the evaluate stages, pipeline.predict (pipeline/runtimes/)."""

    runtime: Literal[INFERENCE_RUNTIMES]  # auto: the fastest that agrees with TF
    precision: Literal["auto", "float32", "bfloat16"]  # auto: bfloat16 on native-bf16 CPUs


class EvaluateParams(_Section):
    top_k: PositiveInt  # top-k accuracy, reported when k < classes
    batch_size: BatchSize
    mistakes_shown: Annotated[int, Field(ge=0, le=10_000)]  # misclassified thumbnails per model
    # temperature: fitted on the validation split; none: the raw probabilities ship
    calibration: Literal["temperature", "none"]


class ReportParams(_Section):
    """The recommendation rule: the best on accuracy; among the models not significantly
    worse than it (McNemar, p >= alpha), the cheapest by ``cost``."""

    alpha: Annotated[float, Field(gt=0, lt=1)]
    # shipped_params: every parameter of the network the export ships (a head with its
    # backbone); the counts do not move between runs, the seconds are measured (load).
    cost: Literal["shipped_params", "trainable_params", "train_seconds", "inference_seconds"]


ExportFormat = Literal["saved_model", "tflite", "tflite_int8", "onnx"]


class ExportParams(_Section):
    """stages/export.py: the recommended model in other formats, checked and timed."""

    formats: list[ExportFormat]  # beside model.keras, which is always written
    int8_images: PositiveInt  # train images calibrating the int8 TFLite model
    latency_repeats: PositiveInt  # single-image runs timed per format
    batch_size: BatchSize  # parity batches and the throughput figure

    @field_validator("formats")
    @classmethod
    def _once(cls, given: list[str]) -> list[str]:
        return _listed_once(given)


def _listed_once(given: list[str]) -> list[str]:
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
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)]  # NumPy's seeds are 32-bit
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

    model_config = _CONFIG | ConfigDict(populate_by_name=True)

    @model_validator(mode="after")
    def _unique_names(self) -> Params:
        return _names_unique(self)

    def models(self) -> list[str]:
        """Every trained model: the head, then the finetune and scratch entries."""
        return ["head", *self.finetune, *self.scratch]


def _names_unique(params: Params) -> Params:
    both = sorted(set(params.finetune) & set(params.scratch))
    if both:
        raise ValueError(f"model name(s) {both} in both finetune and scratch: each "
                         "model needs its own name (it names its stages and files)")
    reserved = sorted((set(params.finetune) | set(params.scratch)) & set(RESERVED_NAMES))
    if reserved:
        raise ValueError(f"model name(s) {reserved} are reserved ({RESERVED_NAMES})")
    return params


def _key(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    # pydantic puts the discriminator's tag in the location (scratch.wrn.wrn.depth);
    # users know the key they typed, so drop the tag.
    if len(parts) > 2 and parts[0] == "scratch" and parts[2] in SCRATCH_FAMILIES:
        del parts[2]
    return ".".join(parts) if parts else "(top level)"


def _keys_at(loc: tuple[Any, ...]) -> list[str]:
    """The keys the section at ``loc`` (pydantic's location, tags included) takes."""
    node: Any = Params
    for part in loc:
        while typing.get_origin(node) is Annotated:
            node = typing.get_args(node)[0]
        if isinstance(node, type) and issubclass(node, BaseModel):
            fields = {f.alias or name: f.annotation for name, f in node.model_fields.items()}
            node = fields.get(str(part))
        elif typing.get_origin(node) is dict:
            node = typing.get_args(node)[1]
        else:  # a discriminated union (scratch entries): the member the tag names
            node = next((m for m in typing.get_args(node) if isinstance(m, type)
                         and typing.get_args(m.model_fields["family"].annotation) == (part,)),
                        None)
    # pydantic reports an unknown key only inside a model: a section, never a list or a
    # dict's value, so ``node`` is a model here; the guard is for a future schema.
    if not (isinstance(node, type) and issubclass(node, BaseModel)):
        return []
    return [f.alias or name for name, f in node.model_fields.items()]


def _unknown(loc: tuple[Any, ...]) -> str:
    """The line for an unknown key: the closest known key of its section, else them all."""
    key, known = _key(loc), _keys_at(loc[:-1])
    parent = _key(loc[:-1]) if len(loc) > 1 else ""
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    if close:
        return f"  {key}: unknown key, did you mean {'.'.join(filter(None, [parent, close[0]]))}?"
    return f"  {key}: unknown key; {parent or 'the top level'} takes {', '.join(known)}"


def _typed(loc: tuple[Any, ...], raw: Any) -> tuple[Any, ...]:
    """``loc`` without the union members pydantic adds (``unfreeze.constrained-int``): the
    parts that are keys of the mapping the user wrote, or indices of its lists."""
    kept, node = [], raw
    for part in loc:
        if (isinstance(node, dict) and part in node) or (
                isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)):
            kept.append(part)
            node = node[part]
        elif not isinstance(node, dict):
            continue  # a union member's tag (``constrained-int``)
        else:  # a key missing from a mapping, or a scratch entry's family tag (_key drops it)
            kept.append(part)
    return tuple(kept)


def parse(raw: Any, source: str = PARAMS_FILE) -> Params:
    """Validate a parsed params mapping; raise ParamsError naming every bad key."""
    if not isinstance(raw, dict):
        got = "nothing (an empty file)" if raw is None else type(raw).__name__
        raise ParamsError(f"{source}: expected a mapping of sections, got {got}")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        lines: dict[str, list[str]] = {}
        for e in err.errors():
            key = _key(e["loc"])
            if e["type"] == "extra_forbidden":
                lines[key] = [_unknown(e["loc"])]
            elif e["type"] == "union_tag_not_found":
                lines[key] = [f"  {key}.family: missing ({' | '.join(SCRATCH_FAMILIES)})"]
            elif e["type"] == "missing":
                lines[key] = [f"  {key}: missing (every key is set in params.yaml)"]
            else:  # a union gives one error per member: one line, its rules joined by "or"
                key = _key(_typed(e["loc"], raw))
                rules = lines.setdefault(key, [])
                value = e.get("input")
                shown = "" if isinstance(value, dict) else f" (got {value!r})"
                if rules:
                    rules[0] = rules[0].removesuffix(shown)
                    e["msg"] = "or " + e["msg"].removeprefix("Input should be ")
                rules.append(f"{'' if rules else f'  {key}: '}{e['msg']}{shown}")
        text = "\n".join(" ".join(rules) for rules in lines.values())
        raise ParamsError(f"{source}: invalid params\n{text}") from None


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading floats as YAML 1.2 (DVC's ruamel, and what
    `dvc exp run -S` writes) does: ``1e-3`` is a number, not the string YAML 1.1 makes it."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _check_tree(root: yaml.Node, path: Path) -> None:
    """Refuse what PyYAML takes silently: a key given twice in a mapping (the last would
    win), and aliases that expand to more than MAX_NODES nodes (pydantic, like DVC,
    walks every copy). Iterative and memoised per node: linear in the file, any depth."""
    size: dict[int, int] = {}
    where: dict[int, str] = {id(root): ""}
    open_: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            open_.discard(id(node))
            size[id(node)] = 1 + sum(size[id(c)] for c in _children(node))
            continue
        if id(node) in size:
            continue
        if id(node) in open_:
            raise ParamsError(f"{path}: line {node.start_mark.line + 1}: a YAML alias that "
                              "contains itself")
        open_.add(id(node))
        stack.append((node, True))
        if isinstance(node, yaml.MappingNode):
            _no_duplicates(node, where[id(node)], path)
            for k, v in node.value:
                where.setdefault(id(v), ".".join(filter(None, [where[id(node)], k.value]))
                                 if isinstance(k, yaml.ScalarNode) else where[id(node)])
        for child in _children(node):
            where.setdefault(id(child), where[id(node)])
            if id(child) not in size:
                stack.append((child, False))
    if size[id(root)] > MAX_NODES:
        raise ParamsError(f"{path}: its YAML aliases expand to {size[id(root)]:,} keys and "
                          f"values, more than the {MAX_NODES:,} a params file may hold")


def _no_duplicates(node: yaml.MappingNode, at: str, path: Path) -> None:
    first: dict[str, int] = {}
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
            continue  # `<<: *base` then a key of base: an override, as YAML means it
        line = key.start_mark.line + 1
        if key.value in first:
            dotted = ".".join(filter(None, [at, key.value]))
            raise ParamsError(f"{path}: {dotted} is given twice (lines {first[key.value]} and "
                              f"{line}); keep one")
        first[key.value] = line


def _one_line(err: yaml.YAMLError, text: str) -> str:
    if isinstance(err, yaml.reader.ReaderError):  # a character, by its offset in the text
        line = text.count("\n", 0, err.position) + 1
        column = err.position - text.rfind("\n", 0, err.position)
        return (f"unacceptable character #x{err.character:04x}: {err.reason} "
                f"(line {line}, column {column})")
    mark = err.problem_mark if isinstance(err, yaml.MarkedYAMLError) else None
    if mark is None:
        return " ".join(str(err).split())
    return f"{err.problem} (line {mark.line + 1}, column {mark.column + 1})"


def load(path: str | Path = PARAMS_FILE) -> Params:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ParamsError(f"cannot read {path}: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise ParamsError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    try:
        loader = _Loader(text)  # its reader refuses a control character here
        try:
            root = loader.get_single_node()
            if root is not None:
                _check_tree(root, path)
            raw = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {_one_line(err, text)}") from None
    except RecursionError:
        raise ParamsError(f"{path}: not valid YAML: nested too deeply") from None
    return parse(raw, str(path))
