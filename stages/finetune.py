"""Stage finetune@NAME: train the params.yaml entry finetune.NAME on the images.

family resnet: the backbone with the resolved weights and the trained head, end to
end (head alone first, then unfrozen at a low learning rate); wrn / bit: the network
by itself, from scratch or its own weights file.

Reads:  params seed, backbone, finetune.NAME; data/manifest.csv, data/source.json;
        resnet also metrics/weights.json and models/head.keras
Writes: models/finetune/NAME.keras, metrics/finetune/NAME.json, dvclive/finetune/NAME/
"""

from pipeline.core import paths, stage
from pipeline.core.io import atomic_path, write_json
from pipeline.core.params import Params, ParamsError, ResNetRecipe
from pipeline.core.runtime import seed_everything
from pipeline.data.manifest import classes, read
from pipeline.data.sources import data_root


def main(params: Params, name: str) -> None:
    if name not in params.finetune:
        known = ", ".join(params.finetune) or "none"
        raise ParamsError(f"no params entry finetune.{name}; the entries are: {known}")
    recipe = params.finetune[name]
    seed_everything(params.seed)
    from pipeline.data.input import split_arrays
    from pipeline.models.classifier import inference_copy
    from pipeline.training.finetune import finetune
    from pipeline.training.inputs import Splits
    from pipeline.training.scratch import train_scratch

    manifest = read(paths.MANIFEST)
    names = classes(manifest)
    root = data_root(params.data)
    splits = Splits(*(split_arrays(manifest, root, s, names) for s in ("train", "val")),
                    classes=names)
    live = paths.LIVE / "finetune" / name
    if isinstance(recipe, ResNetRecipe):
        done = finetune(recipe, params.backbone, splits, seed=params.seed, live_dir=live)
    else:
        done = train_scratch(name, recipe, splits, seed=params.seed, live_dir=live)
    with atomic_path(paths.FINETUNE / f"{name}.keras", suffix=".keras") as tmp:
        inference_copy(done.model).save(tmp)
    summary = done.summary(recipe.monitor)
    write_json(paths.METRICS / "finetune" / f"{name}.json", summary)
    print(f"finetune {name}: best epoch {done.result.best_epoch}/{done.result.epochs_run}, "
          f"val accuracy {summary.get('val_accuracy')}, {summary['train_seconds']} s, "
          f"{summary['train_images_per_second']} img/s")


if __name__ == "__main__":
    args = stage.parser(__doc__)
    args.add_argument("name", metavar="NAME", help="an entry of params.yaml's finetune section")
    stage.run(main, args)
