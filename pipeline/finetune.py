"""Fine-tuning recipes: the backbone + head end to end, and WRN / BiT trained on the images.

ResNet (keras.io "Transfer learning & fine-tuning"): the backbone that made the cached
features, with the head trained on them; optionally a few epochs of the head alone with
the backbone frozen (the head adapts to augmented images and another image size), then
unfreeze the stages the params name, RECOMPILE (``trainable`` is read at compile time) and
train everything with a low learning rate. BatchNorm stays in inference mode unless
``train_bn``: its statistics were learnt on far more data than a small set can supply.

WRN and BiT start from scratch (or a weights file) and train in one phase with the same
machinery: schedule, augmentation, early stopping with the best weights restored, and
per-epoch DVCLive curves.
"""

from __future__ import annotations

import csv
import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from pipeline import paths
from pipeline.augment import make_augment
from pipeline.config import (
    BiTFinetuneConfig,
    Config,
    ResNetFinetuneConfig,
    WRNFinetuneConfig,
)
from pipeline.io import read_json
from pipeline.training import FitResult, fit, make_optimizer, trainable_params
from pipeline.weights import WeightsError

# keras.applications ResNet layer-name prefixes, last stage first: ``unfreeze: N`` opens
# the first N. The stem (conv1_, pool1_) opens only with ``unfreeze: all``.
RESNET_STAGES = ("conv5_", "conv4_", "conv3_", "conv2_")

Recipe = ResNetFinetuneConfig | WRNFinetuneConfig | BiTFinetuneConfig


# --- which weights train --------------------------------------------------------------

def freeze(resnet: keras.Model, unfreeze: str | int, train_bn: bool) -> None:
    """Set ``trainable`` on every layer of a keras.applications ResNet.

    ``unfreeze="all"`` opens every layer, an int N only the last N stages (0: none).
    BatchNormalization layers stay frozen unless ``train_bn``; in Keras 3 a frozen BN
    layer also runs in inference mode (moving statistics used, never updated).
    """
    if unfreeze != "all" and not 0 <= int(unfreeze) <= len(RESNET_STAGES):
        raise ValueError(f"unfreeze must be 'all' or 0..{len(RESNET_STAGES)}, got {unfreeze!r}")
    open_prefixes = None if unfreeze == "all" else RESNET_STAGES[: int(unfreeze)]
    # A container's own flag gates its children's weights, so open it before the layers.
    resnet.trainable = True
    for layer in resnet.layers:
        on = open_prefixes is None or layer.name.startswith(open_prefixes)
        if isinstance(layer, keras.layers.BatchNormalization):
            on = on and train_bn
        layer.trainable = on


# --- models ---------------------------------------------------------------------------

def build_resnet_model(backbone: keras.Model, head: keras.Model, train_bn: bool) -> keras.Model:
    """Raw RGB image -> backbone -> the trained head's softmax, as one functional model.

    The backbone is called with ``training=False`` (keras.io's recipe) so BatchNorm stays
    in inference mode even once unfrozen; with ``train_bn`` it follows fit/predict instead.
    """
    inputs = keras.Input(backbone.input_shape[1:], name="image")
    features = backbone(inputs) if train_bn else backbone(inputs, training=False)
    return keras.Model(inputs, head(features), name=f"{backbone.name}_finetuned")


def build_scratch_model(
    cfg: WRNFinetuneConfig | BiTFinetuneConfig, num_classes: int, *, name: str = "model"
) -> keras.Model:
    """Raw RGB image -> [-1, 1] -> WideResNet / BiTResNet (pooled) -> Dense softmax.

    ``cfg.weights`` is ``none`` or a file: ``.weights.h5`` of this whole model, or for BiT
    an ``.npz`` of published BiT weights for the backbone part. ``name`` is the params
    entry, so that errors name the key to fix (``finetune.<name>.weights``).
    """
    from pipeline.bit import BiTResNet
    from pipeline.wide_resnet import WideResNet

    shape = (cfg.image_size, cfg.image_size, 3)
    inputs = keras.Input(shape, name="image")
    # Both nets train from scratch on [-1, 1], as BiT's own preprocessing does.
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="rescale")(inputs)
    if isinstance(cfg, WRNFinetuneConfig):
        net = WideResNet(cfg.depth, cfg.width, cfg.dropout, include_top=False,
                         input_shape=shape, pooling="avg")
        init = "glorot_uniform"
    else:
        net = BiTResNet(cfg.width, include_top=False, input_shape=shape, pooling="avg")
        init = "zeros"  # BiT's zero head: fine-tuning starts from a uniform prediction
    outputs = keras.layers.Dense(num_classes, activation="softmax", kernel_initializer=init,
                                 name="predictions")(net(x))
    model = keras.Model(inputs, outputs, name=f"{net.name}_classifier")
    _load_scratch_weights(model, net, cfg, name)
    return model


def _load_scratch_weights(model: keras.Model, net: keras.Model,
                          cfg: WRNFinetuneConfig | BiTFinetuneConfig, name: str) -> None:
    spec = cfg.weights
    if spec == "none":
        return
    key, path = f"finetune.{name}.weights", Path(spec)
    npz_ok = isinstance(cfg, BiTFinetuneConfig)
    kinds = "none, a .weights.h5" + (" or a BiT .npz file" if npz_ok else " file")
    if not (path.name.endswith(".weights.h5") or (npz_ok and path.suffix == ".npz")):
        raise WeightsError(f"{key}: {spec!r} is not {kinds}")
    if not path.is_file():
        raise WeightsError(f"{key}: weights file {spec!r} does not exist ({path.absolute()})")
    if path.suffix == ".npz":
        from pipeline.bit import load_bit_npz

        load_bit_npz(net, path)
    else:
        model.load_weights(path)


def inference_copy(model: keras.Model) -> keras.Model:
    """An uncompiled twin of ``model`` sharing its layers, for saving.

    A compiled model saves its optimizer: Adam's two moments would triple a ResNet50 file
    (~280 MB instead of ~95 MB), and loading it would need this module's schedule class
    registered. The evaluate stage only predicts.
    """
    return keras.Model(model.inputs, model.outputs, name=model.name)


# --- learning rate --------------------------------------------------------------------

@keras.saving.register_keras_serializable(package="pipeline")
class WarmupStepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``learning_rate``, then x ``factor`` at each step boundary.

    With no boundaries it is a constant rate after the warm-up. The warm-up matches
    ``keras.optimizers.schedules.CosineDecay``'s (0 at step 0, the target at
    ``warmup_steps``), so the cosine and step schedules start alike.
    """

    def __init__(self, learning_rate: float, warmup_steps: int = 0,
                 boundaries: tuple[int, ...] | list[int] = (), factor: float = 0.1) -> None:
        self.learning_rate = float(learning_rate)
        self.warmup_steps = int(warmup_steps)
        self.boundaries = tuple(int(b) for b in boundaries)
        self.factor = float(factor)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        drops = sum((ops.cast(step >= b, "float32") for b in self.boundaries),
                    ops.zeros((), "float32"))
        rate = self.learning_rate * ops.power(self.factor, drops)
        if self.warmup_steps:
            warm = self.learning_rate * step / self.warmup_steps
            rate = ops.where(step < self.warmup_steps, warm, rate)
        return rate

    def get_config(self) -> dict[str, Any]:
        return {"learning_rate": self.learning_rate, "warmup_steps": self.warmup_steps,
                "boundaries": list(self.boundaries), "factor": self.factor}


def make_schedule(cfg: Recipe, steps_per_epoch: int
                  ) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """``cfg.schedule`` in optimizer steps: constant, cosine to 0 over ``epochs``, or step.

    All three start with ``warmup_epochs`` of linear warm-up; step drops happen at the
    start of each epoch listed in ``step_epochs`` (counted from the first, warm-up included).
    """
    lr = cfg.learning_rate
    warmup = cfg.warmup_epochs * steps_per_epoch
    if cfg.schedule == "cosine":
        total = cfg.epochs * steps_per_epoch
        if not warmup:
            return keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(total, 1))
        return keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=max(total - warmup, 1), warmup_target=lr, warmup_steps=warmup
        )
    boundaries = [e * steps_per_epoch for e in cfg.step_epochs] if cfg.schedule == "step" else []
    if not warmup and not boundaries:
        return lr
    return WarmupStepDecay(lr, warmup, sorted(boundaries), cfg.step_factor)


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the optimizer's current learning rate to the epoch logs (so DVCLive plots it)."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["learning_rate"] = float(ops.convert_to_numpy(self.model.optimizer.learning_rate))


def compile_model(model: keras.Model, cfg: Recipe,
                  learning_rate: float | keras.optimizers.schedules.LearningRateSchedule) -> None:
    """Optimizer of ``cfg`` at ``learning_rate``; label-smoothed cross-entropy on one-hot."""
    model.compile(
        optimizer=make_optimizer(cfg.optimizer, learning_rate, cfg.momentum, cfg.weight_decay),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
        # One-hot (and MixUp's soft) labels: argmax accuracy, logged as "accuracy".
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )


# --- data -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Splits:
    """Image paths and integer labels of the train and validation splits."""

    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray]
    classes: list[str]


def datasets(splits: Splits, cfg: Recipe, image_size: int, seed: int
             ) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """Shuffled, augmented training batches and plain validation batches, one-hot labels."""
    from pipeline.data import image_dataset

    n = len(splits.classes)
    augment = make_augment(cfg.augment, n, seed)

    def onehot(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return images, tf.one_hot(labels, n)

    def train_map(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return augment(*onehot(images, labels))

    train = image_dataset(*splits.train, image_size, cfg.batch_size, shuffle_seed=seed,
                          augment=train_map if augment else onehot)
    val = image_dataset(*splits.val, image_size, cfg.batch_size, augment=onehot)
    return train, val


# --- the recipe -----------------------------------------------------------------------

@dataclass(frozen=True)
class Finetuned:
    """A trained model and how the training went."""

    model: keras.Model
    result: FitResult  # the main phase (the only one for wrn and bit)
    head_result: FitResult | None  # resnet's head-only warm-up, if any
    image_size: int
    family: str

    def summary(self, monitor: str) -> dict[str, Any]:
        """The main phase's best-epoch scores; train time covers both phases."""
        out = self.result.summary(monitor)
        if self.head_result is not None:
            out["train_seconds"] = round(self.result.seconds + self.head_result.seconds, 1)
            head = self.head_result.summary(monitor)
            out["head_phase"] = {k: head[k] for k in (
                "epochs_run", "best_epoch", "val_accuracy", "val_loss", "train_seconds"
            ) if k in head}
        return out | {"trainable_params": trainable_params(self.model),
                      "image_size": self.image_size, "family": self.family}


def append_curves(src: Path, dst: Path, offset: int) -> None:
    """Append the DVCLive curves of ``src`` to those of ``dst``, their steps shifted by ``offset``.

    ``training.fit`` opens a fresh DVCLive ``Live``, which wipes its dir, and DVCLive's own
    resume cannot follow a one-epoch run (it reads the last step, 0, as "nothing logged"
    and restarts at 0). So the second phase logs apart and its rows are appended here,
    making each plots file one curve over both phases.
    """
    for tsv in sorted((src / "plots" / "metrics").rglob("*.tsv")):
        with tsv.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        target = dst / tsv.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        fresh = not target.exists()
        with target.open("a", newline="", encoding="utf-8") as fh:
            if not rows:
                continue
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter="\t",
                                    lineterminator="\n")
            if fresh:
                writer.writeheader()
            for row in rows:
                writer.writerow(row | {"step": int(row["step"]) + offset})
    if (src / "metrics.json").exists():  # DVCLive's last-epoch summary (not tracked)
        shutil.copyfile(src / "metrics.json", dst / "metrics.json")


def _fit(model: keras.Model, cfg: Recipe, train: tf.data.Dataset, val: tf.data.Dataset,
         epochs: int, live_dir: Path, count: int) -> FitResult:
    return fit(model, train, val, epochs=epochs, patience=cfg.patience, monitor=cfg.monitor,
               live_dir=live_dir, train_count=count, callbacks=[LearningRateLogger()])


def train(name: str, cfg: Config, splits: Splits, *, live_dir: str | Path | None = None,
          weights_record: str | Path = paths.WEIGHTS_RECORD,
          head_model: str | Path = paths.HEAD_MODEL) -> Finetuned:
    """Train ``cfg.finetune[name]`` by its recipe; the caller has seeded everything."""
    entry: Recipe = cfg.finetune[name]
    live_dir = Path(live_dir or paths.LIVE / "finetune" / name)
    count = len(splits.train[0])
    steps = math.ceil(count / entry.batch_size)
    if isinstance(entry, ResNetFinetuneConfig):
        return _train_resnet(entry, cfg, splits, live_dir, Path(weights_record),
                             Path(head_model), count, steps)
    size = entry.image_size
    model = build_scratch_model(entry, len(splits.classes), name=name)
    train_ds, val_ds = datasets(splits, entry, size, cfg.seed)
    compile_model(model, entry, make_schedule(entry, steps))
    result = _fit(model, entry, train_ds, val_ds, entry.epochs, live_dir, count)
    return Finetuned(model, result, None, size, entry.family)


def _train_resnet(entry: ResNetFinetuneConfig, cfg: Config, splits: Splits, live_dir: Path,
                  weights_record: Path, head_model: Path, count: int, steps: int) -> Finetuned:
    from pipeline.backbone import build_backbone, resnet_of
    from pipeline.weights import weights_path

    size = entry.image_size or cfg.backbone.image_size
    # Build the backbone before anything else draws from the seeded generators: with
    # random weights (no ImageNet file) only the same seed, first, rebuilds the backbone
    # the features stage used, and so the one the head was trained for.
    backbone = build_backbone(cfg.backbone.arch, size, weights_path(read_json(weights_record)))
    head = keras.models.load_model(head_model)
    if head.output_shape[-1] != len(splits.classes):
        raise ValueError(f"{head_model} predicts {head.output_shape[-1]} classes, "
                         f"the manifest has {len(splits.classes)}")
    model = build_resnet_model(backbone, head, entry.train_bn)
    train_ds, val_ds = datasets(splits, entry, size, cfg.seed)

    head_result = None
    if entry.head_epochs > 0:
        backbone.trainable = False
        compile_model(model, entry, entry.head_learning_rate)
        head_result = _fit(model, entry, train_ds, val_ds, entry.head_epochs, live_dir, count)

    backbone.trainable = True
    freeze(resnet_of(backbone), entry.unfreeze, entry.train_bn)
    compile_model(model, entry, make_schedule(entry, steps))  # trainable is read here
    if head_result is None:
        result = _fit(model, entry, train_ds, val_ds, entry.epochs, live_dir, count)
    else:
        with tempfile.TemporaryDirectory(prefix="finetune-live-") as phase2:
            result = _fit(model, entry, train_ds, val_ds, entry.epochs, Path(phase2), count)
            append_curves(Path(phase2), live_dir, offset=head_result.epochs_run)
    return Finetuned(model, result, head_result, size, entry.family)
