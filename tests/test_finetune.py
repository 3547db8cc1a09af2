"""Fine-tuning: which weights train, BatchNorm stays put, the head carries over, schedules."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from helpers import (
    Killed,
    default_placement,
    kill_after_checkpoint,
    params,
    resnet9_recipe,
    resnet_recipe,
    wrn_recipe,
)
from PIL import Image

from pipeline.core.params import ResNet9Recipe, ResNetRecipe, WRNRecipe
from pipeline.models.backbone import build_backbone, resnet_of
from pipeline.models.classifier import build_resnet_model, build_scratch_model, inference_copy
from pipeline.models.head import build_head
from pipeline.models.saving import load_model
from pipeline.models.weights import WeightsError
from pipeline.runs.budget import Budget
from pipeline.runs.resume import resuming
from pipeline.runs.save import save_trained
from pipeline.training.finetune import finetune
from pipeline.training.freeze import RESNET_STAGES, freeze
from pipeline.training.inputs import Splits
from pipeline.training.recipe import compile_model
from pipeline.training.schedules import WarmupStepDecay, make_schedule
from pipeline.training.scratch import train_scratch

SIZE = 32
CLASSES = 3


def recipe(**changes) -> ResNetRecipe:
    """params.yaml's ResNet recipe; a test sets every figure it relies on."""
    return resnet_recipe(**changes)


def batch(n: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (n, SIZE, SIZE, 3)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, CLASSES, n), CLASSES)
    return x, y


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """One tiny ResNet50 backbone (slow to build) and a head saved as head.keras."""
    keras.utils.set_random_seed(0)
    backbone = build_backbone("resnet50", SIZE)
    features = np.random.default_rng(0).normal(5, 2, (24, 2048)).astype("float32")
    head_file = tmp_path_factory.mktemp("head") / "head.keras"
    build_head(features, CLASSES, 0.2, 1e-4).save(head_file)
    return backbone, backbone.get_weights(), head_file


@pytest.fixture
def backbone(parts):
    """The shared backbone, reset to its initial weights and all-trainable flags."""
    model, weights, _ = parts
    model.trainable = True
    model.set_weights(weights)
    return model


def weighted(resnet: keras.Model) -> list[keras.layers.Layer]:
    return [layer for layer in resnet.layers if layer.weights]


def is_bn(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, keras.layers.BatchNormalization)


def test_unfreeze_all_opens_every_layer_but_batchnorm(backbone):
    resnet = resnet_of(backbone)
    freeze(resnet, "all", train_bn=False)
    layers = weighted(resnet)
    assert any(layer.name.startswith("conv1_") for layer in layers if layer.trainable)
    assert all(layer.trainable != is_bn(layer) for layer in layers)
    bn_vars = {id(v) for layer in layers if is_bn(layer) for v in layer.weights}
    assert resnet.trainable_weights and not bn_vars & {id(v) for v in resnet.trainable_weights}


@pytest.mark.parametrize("stages", [0, 1, 2])
def test_unfreeze_n_opens_only_the_last_n_stages(backbone, stages):
    resnet = resnet_of(backbone)
    freeze(resnet, stages, train_bn=False)
    opened = RESNET_STAGES[:stages]
    for layer in weighted(resnet):
        expected = bool(opened) and layer.name.startswith(opened) and not is_bn(layer)
        assert layer.trainable == expected, layer.name
    if stages == 0:
        assert resnet.trainable_weights == []
    if stages == 1:
        assert {w.path.split("/")[0] for w in resnet.trainable_weights} == {
            layer.name for layer in weighted(resnet)
            if layer.name.startswith("conv5_") and not is_bn(layer)
        }


def test_train_bn_opens_batchnorm_of_open_stages_only(backbone):
    resnet = resnet_of(backbone)
    freeze(resnet, 1, train_bn=True)
    bns = [layer for layer in weighted(resnet) if is_bn(layer)]
    assert all(layer.trainable == layer.name.startswith("conv5_") for layer in bns)


def bn_stats(resnet: keras.Model) -> list[np.ndarray]:
    return [np.array(v) for layer in resnet.layers if is_bn(layer)
            for v in (layer.moving_mean, layer.moving_variance)]


@pytest.mark.parametrize("train_bn", [False, True])
def test_batchnorm_statistics_move_only_with_train_bn(parts, backbone, train_bn):
    model = build_resnet_model(backbone, keras.models.load_model(parts[2]), train_bn)
    freeze(resnet_of(backbone), "all", train_bn)
    compile_model(model, recipe(), 1e-3)
    resnet = resnet_of(backbone)
    before_stats = bn_stats(resnet)
    kernel = np.array(resnet.get_layer("conv5_block3_3_conv").kernel)
    model.fit(*batch(8), batch_size=4, epochs=1, verbose=0)  # two steps
    moved = [not np.array_equal(a, b) for a, b in zip(before_stats, bn_stats(resnet), strict=True)]
    assert all(moved) if train_bn else not any(moved)
    assert not np.array_equal(kernel, resnet.get_layer("conv5_block3_3_conv").kernel)


def test_model_starts_from_the_saved_head(parts, backbone):
    saved = keras.models.load_model(parts[2])
    model = build_resnet_model(backbone, keras.models.load_model(parts[2]), train_bn=False)
    head = model.get_layer("head")
    for a, b in zip(saved.get_weights(), head.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    x, _ = batch()
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               saved.predict(backbone.predict(x, verbose=0), verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_finetuned_model_round_trips_with_safe_mode(parts, backbone, tmp_path):
    model = build_resnet_model(backbone, keras.models.load_model(parts[2]), train_bn=False)
    freeze(resnet_of(backbone), 1, train_bn=False)
    compile_model(model, recipe(), make_schedule(recipe(warmup_epochs=1), 2))
    model.fit(*batch(8), batch_size=4, epochs=1, verbose=0)
    inference_copy(model).save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    x, _ = batch(seed=3)
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))


# --- schedules ------------------------------------------------------------------------

def lr_at(schedule, step: int) -> float:
    return float(keras.ops.convert_to_numpy(schedule(step)))


def test_constant_schedule_is_the_rate_itself():
    cfg = recipe(schedule="constant", learning_rate=0.01, warmup_epochs=0)
    assert make_schedule(cfg, 10) == 0.01


def test_cosine_schedule_without_and_with_warmup():
    lr, spe = 0.1, 10
    plain = make_schedule(
        recipe(schedule="cosine", learning_rate=lr, epochs=4, warmup_epochs=0), spe
    )
    assert lr_at(plain, 0) == pytest.approx(lr)
    assert lr_at(plain, 20) == pytest.approx(lr / 2, rel=1e-5)
    assert lr_at(plain, 40) == pytest.approx(0, abs=1e-7)
    warm = make_schedule(
        recipe(schedule="cosine", learning_rate=lr, epochs=5, warmup_epochs=1), spe
    )
    assert lr_at(warm, 0) == pytest.approx(0)
    assert lr_at(warm, 5) == pytest.approx(lr / 2, rel=1e-5)
    assert lr_at(warm, 10) == pytest.approx(lr, rel=1e-5)
    assert lr_at(warm, 30) == pytest.approx(lr / 2, rel=1e-5)  # half-way through the decay
    assert lr_at(warm, 50) == pytest.approx(0, abs=1e-7)


def test_step_schedule_warms_up_then_drops_at_the_listed_epochs():
    cfg = recipe(schedule="step", learning_rate=0.1, epochs=8, warmup_epochs=1,
                 step_epochs=[5, 3], step_factor=0.2)
    schedule = make_schedule(cfg, 10)
    expected = {0: 0.0, 5: 0.05, 10: 0.1, 29: 0.1, 30: 0.02, 49: 0.02, 50: 0.004, 79: 0.004}
    for step, rate in expected.items():
        assert lr_at(schedule, step) == pytest.approx(rate, rel=1e-5), step
    copy = WarmupStepDecay.from_config(schedule.get_config())
    assert lr_at(copy, 35) == pytest.approx(0.02, rel=1e-5)


def test_constant_with_warmup_ramps_then_holds():
    schedule = make_schedule(recipe(schedule="constant", learning_rate=0.01, warmup_epochs=2), 5)
    assert [round(lr_at(schedule, s), 6) for s in (0, 5, 10, 99)] == [0, 0.005, 0.01, 0.01]


# --- from scratch ---------------------------------------------------------------------

def wrn(**changes) -> WRNRecipe:
    """A WRN-10-1 at 32 px (the smallest there is), from params.yaml's wrn recipe."""
    return wrn_recipe(**({"depth": 10, "width": 1, "image_size": SIZE} | changes))


def test_scratch_model_takes_raw_pixels_and_loads_its_weights_file(tmp_path):
    keras.utils.set_random_seed(1)
    model = build_scratch_model(wrn(), CLASSES)
    assert model.input_shape == (None, SIZE, SIZE, 3) and model.output_shape == (None, CLASSES)
    assert model.get_layer("rescale")(np.array([[0.0, 255.0]])).numpy().tolist() == [[-1, 1]]
    model.save_weights(tmp_path / "w.weights.h5")
    keras.utils.set_random_seed(2)
    again = build_scratch_model(wrn(weights=str(tmp_path / "w.weights.h5")), CLASSES)
    x, _ = batch()
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))


def test_a_family_without_a_builder_is_named_not_built_as_another():
    """A family params.yaml accepts but build_scratch_model has no branch for (a step of
    docs/model-families.md left out) is an error naming it, not a BiT built by default."""
    from types import SimpleNamespace

    other = SimpleNamespace(family="vgg", image_size=SIZE, width=1, weights="none")
    with pytest.raises(TypeError, match=r"^scratch\.mine\.family: no builder for 'vgg'"):
        build_scratch_model(other, CLASSES, name="mine")

def test_bad_scratch_weights_are_one_line_naming_the_key_and_the_file(tmp_path):
    """Each kind of file no network loads, and weights of another network: one line naming
    scratch.NAME.weights and the file (Keras says "unexpected OSError" or 20 lines)."""
    import h5py

    good = tmp_path / "good.weights.h5"
    build_scratch_model(wrn(), CLASSES).save_weights(good)
    bad = {"random.weights.h5": np.random.default_rng(0).bytes(4000), "empty.weights.h5": b"",
           "cut.weights.h5": good.read_bytes()[: good.stat().st_size // 2]}
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "folder.weights.h5").mkdir()
    build_scratch_model(wrn(), CLASSES).save(tmp_path / "model.keras")
    (tmp_path / "model.keras").rename(tmp_path / "zip.weights.h5")  # a whole model, renamed
    with h5py.File(tmp_path / "plain.weights.h5", "w") as h5:
        h5["x"] = np.zeros(3)
    build_scratch_model(wrn(width=2), CLASSES).save_weights(tmp_path / "wider.weights.h5")
    build_scratch_model(wrn(), CLASSES + 1).save_weights(tmp_path / "classes.weights.h5")
    names = [*bad, "missing.weights.h5", "folder.weights.h5", "zip.weights.h5",
             "plain.weights.h5", "wider.weights.h5", "classes.weights.h5"]
    for name in names:
        with pytest.raises(WeightsError) as info:
            build_scratch_model(wrn(weights=str(tmp_path / name)), CLASSES, name="small")
        said = str(info.value)
        assert said.startswith("scratch.small.weights: ") and name in said, said
        assert "\n" not in said and len(said) < 400, said
    assert f"layer predictions has shape (64, {CLASSES}), the file (64, {CLASSES + 1})" in said


# --- the recipe end to end, on a few tiny images ----------------------------------------

def images(root, n: int) -> Splits:
    rng = np.random.default_rng(0)
    files, labels = [], []
    for i in range(n):
        label = i % CLASSES
        pixels = np.full((SIZE, SIZE, 3), 60 * label, np.uint8) + rng.integers(0, 40, (SIZE,) * 2
                                                                                + (3,), np.uint8)
        path = root / f"{i}.png"
        Image.fromarray(pixels).save(path)
        files.append(str(path))
        labels.append(label)
    data = (np.array(files), np.array(labels, np.int32))
    return Splits(train=data, val=data, classes=[f"c{i}" for i in range(CLASSES)])


R = "finetune.resnet50"
# Both phases, MixUp and crops on (the head has dropout 0.2): all that draws random numbers.
RESUMABLE = {"backbone.image_size": SIZE, f"{R}.image_size": None, f"{R}.head_epochs": 1,
             f"{R}.epochs": 3, f"{R}.patience": 4, f"{R}.batch_size": 4, f"{R}.unfreeze": 1,
             f"{R}.augment.mixup_alpha": 0.2, f"{R}.augment.crop": True}


def fine_tune_run(parts, folder, backup, live_dir=None):
    """The RESUMABLE fine-tune on 8 images in ``folder``, with ``backup`` as its backup."""
    record = folder / "weights.json"
    record.write_text(json.dumps({"arch": "resnet50", "source": "random", "seed": 0}))
    loaded = params(RESUMABLE)
    keras.utils.set_random_seed(0)
    with resuming(backup) as resume:
        return finetune(loaded.finetune["resnet50"], loaded.backbone, images(folder, 8),
                        seed=0, live_dir=live_dir, weights_record=record,
                        head_model=parts[2], placement=default_placement(), resume=resume)


@pytest.fixture(scope="module")
def fine_tuned(parts, tmp_path_factory):
    """One uninterrupted RESUMABLE fine-tune, its curves in live/ (ResNet50 fine-tunes are
    the slow part of this module: the tests share this one)."""
    folder = tmp_path_factory.mktemp("fine_tuned")
    return folder, fine_tune_run(parts, folder, folder / "backup", folder / "live")


def test_resnet_recipe_runs_both_phases_into_one_curve(fine_tuned):
    folder, done = fine_tuned
    assert done.head_result.epochs_run == 1 and done.result.epochs_run == 3
    curve = (folder / "live/plots/metrics/eval/loss.tsv").read_text().split()
    assert curve[:2] == ["step", "loss"] and curve[2::2] == ["0", "1", "2", "3"]
    summary = done.summary("val_loss")
    assert summary["image_size"] == SIZE and summary["family"] == "resnet"
    assert summary["trainable_params"] < 20_000_000  # conv5 and the head only
    assert summary["train_seconds"] >= summary["head_phase"]["train_seconds"]


def test_resnet_recipe_refuses_a_head_for_other_classes(parts, tmp_path):
    record = tmp_path / "weights.json"
    record.write_text(json.dumps({"arch": "resnet50", "source": "random", "seed": 0}))
    splits = images(tmp_path, 4)
    other = Splits(splits.train, splits.val, classes=["a", "b"])
    loaded = params({"backbone.image_size": SIZE})
    with pytest.raises(ValueError, match="predicts 3 classes, the manifest has 2"):
        finetune(loaded.finetune["resnet50"], loaded.backbone, other, seed=0,
                 live_dir=tmp_path / "live", weights_record=record, head_model=parts[2],
                 placement=default_placement())


def test_scratch_recipe_trains_in_one_phase(tmp_path):
    cfg = wrn(epochs=1, batch_size=4, patience=5)
    keras.utils.set_random_seed(0)
    done = train_scratch("small", cfg, images(tmp_path, 6), seed=0, live_dir=tmp_path / "live",
                         placement=default_placement())
    assert done.head_result is None and done.result.epochs_run == 1
    assert done.model.input_shape == (None, SIZE, SIZE, 3)
    assert done.model.output_shape == (None, CLASSES)
    curve = (tmp_path / "live/plots/metrics/eval/loss.tsv").read_text().split()
    assert curve[:3] == ["step", "loss", "0"] and len(curve) == 4
    summary = done.summary("val_loss")
    assert summary["family"] == "wrn" and summary["image_size"] == SIZE
    assert "head_phase" not in summary and summary["trainable_params"] > 0


def untimed_summary(summary: dict) -> dict:
    """A training summary without what measures time (or says that the run resumed)."""
    return {k: untimed_summary(v) if isinstance(v, dict) else v for k, v in summary.items()
            if "second" not in k and k != "resumed_after_epoch"}


def test_a_fine_tune_killed_in_its_main_phase_resumes_to_the_same_model(
        parts, fine_tuned, tmp_path, monkeypatch):
    """Killed after the main phase's second epoch and started again, the fine-tune ends with
    the weights and scores of an uninterrupted run: the input is addressed by epoch and the
    memory beside the checkpoint brings back early stopping, the scores so far and
    Dropout's random state (the head has dropout 0.2, MixUp and crops are on)."""
    whole = fine_tuned[1]
    backup = tmp_path / "killed"
    kill_after_checkpoint(monkeypatch, 2, folder_suffix="main_phase")
    with pytest.raises(Killed):
        fine_tune_run(parts, tmp_path, backup)
    monkeypatch.undo()
    assert json.loads((backup / "main_phase/training_metadata.json").read_text())["epoch"] == 2
    resumed = fine_tune_run(parts, tmp_path, backup)
    assert resumed.result.first_epoch == 2 and not backup.exists()
    untimed = [untimed_summary(done.summary("val_loss")) for done in (whole, resumed)]
    assert untimed[0] == untimed[1] and untimed[0]["epochs_run"] == 3
    assert whole.result.history == resumed.result.history
    for a, b in zip(whole.model.get_weights(), resumed.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


# --- a time budget ------------------------------------------------------------------------

class Ticks:
    """A budget's clock one second later at each reading: time that moves with the run's own
    work (its steps, validations, plans), the same on any machine however loaded."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def resnet9(**changes) -> ResNet9Recipe:
    """params.yaml's ResNet-9 at 32 px, width 4, 40 epochs at most (patience 40)."""
    return resnet9_recipe(**({"image_size": SIZE, "width": 4, "batch_size": 2, "epochs": 40,
                              "patience": 40} | changes))


def test_a_budget_ends_a_scratch_run_on_time_with_a_valid_model(tmp_path, monkeypatch):
    """A budget far short of the 40 epochs: the run plans the epochs that fit, runs them,
    ends before the finish line, and saves a model (flip-averaged, as the recipe asks)
    whose card says what the budget planned and used, kept out of the metrics file."""
    splits = images(tmp_path, 6)
    budget = Budget(80, started=0.0, clock=Ticks())
    keras.utils.set_random_seed(0)
    done = train_scratch("small", resnet9(), splits, seed=0, live_dir=None,
                         placement=default_placement(), budget=budget)
    assert budget.elapsed() <= 80 - budget.reserve()
    monkeypatch.chdir(tmp_path)
    placement = default_placement()
    card = save_trained("small", done.outcome("val_loss", splits.classes, True),
                        placement.label(), placement.replicas)
    assert card["stopped_by"] == "budget" and card["flip_tta"] is True
    assert 1 < card["epochs_run"] == card["budget"]["planned_epochs"] < 40
    assert card["budget"]["budget_seconds"] == 80 and card["budget"]["used_seconds"] <= 80
    assert json.loads((tmp_path / "models/small.json").read_text())["budget"] == card["budget"]
    metrics = json.loads((tmp_path / "metrics/train/small.json").read_text())
    assert "budget" not in metrics and "stopped_by" not in metrics
    model = load_model(tmp_path / "models/small.keras")  # as evaluate and serve load it
    x, _ = batch(4)
    proba = model.predict(x, verbose=0)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    # Each image and its mirror image, averaged: the mirror gets the same prediction.
    np.testing.assert_allclose(model.predict(x[:, :, ::-1], verbose=0), proba, rtol=1e-5,
                               atol=1e-6)


def test_a_budget_holds_for_both_phases_of_the_fine_tune(parts, tmp_path):
    """The head phase may use half of the time left when it starts; the main phase plans
    the rest, and the whole run ends before the finish line."""
    record = tmp_path / "weights.json"
    record.write_text(json.dumps({"arch": "resnet50", "source": "random", "seed": 0}))
    r = "finetune.resnet50"
    loaded = params({"backbone.image_size": SIZE, f"{r}.image_size": None,
                     f"{r}.head_epochs": 20, f"{r}.epochs": 40, f"{r}.patience": 40,
                     f"{r}.batch_size": 4, f"{r}.unfreeze": 1, f"{r}.budget_seconds": 100})
    budget = Budget(100, started=0.0, clock=Ticks())
    keras.utils.set_random_seed(0)
    done = finetune(loaded.finetune["resnet50"], loaded.backbone, images(tmp_path, 8),
                    seed=0, live_dir=None, weights_record=record, head_model=parts[2],
                    placement=default_placement(), budget=budget)
    assert budget.elapsed() <= 100 - budget.reserve()
    summary = done.summary("val_loss")
    head = summary["head_phase"]
    assert head["stopped_by"] == "budget" and 1 <= head["epochs_run"] < 20
    assert summary["stopped_by"] == "budget"
    assert 1 < summary["epochs_run"] == summary["budget"]["planned_epochs"] < 40


def test_a_budgeted_run_killed_and_resumed_keeps_its_budget_and_plan(tmp_path, monkeypatch):
    """Killed after its second epoch and started again (a new process: its clock starts
    afresh), the run goes on with the plan it made and the time it had used, and ends as
    the uninterrupted run did: the same epochs, scores and weights."""
    splits = images(tmp_path, 6)

    def run(backup):
        keras.utils.set_random_seed(0)
        with resuming(backup) as resume:
            return train_scratch("small", resnet9(), splits, seed=0, live_dir=None,
                                 placement=default_placement(), resume=resume,
                                 budget=Budget(80, started=0.0, clock=Ticks()))

    whole = run(tmp_path / "whole")
    backup = tmp_path / "killed"
    kill_after_checkpoint(monkeypatch, 2)
    with pytest.raises(Killed):
        run(backup)
    monkeypatch.undo()
    memory = json.loads((backup / "memory-00002.json").read_text())
    resumed = run(backup)
    assert resumed.result.first_epoch == 2 and not backup.exists()
    assert resumed.result.budget["planned_epochs"] == whole.result.budget["planned_epochs"]
    assert resumed.result.epochs_run == whole.result.epochs_run
    assert resumed.result.stopped_by == whole.result.stopped_by == "budget"
    assert resumed.budget.spent_before == memory["plan"]["used_seconds"] > 0
    assert whole.result.history == resumed.result.history
    for a, b in zip(whole.model.get_weights(), resumed.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
