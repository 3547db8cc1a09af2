"""Stage finetune@NAME: the backbone and the trained head, fine-tuned end to end on the images.

The params.yaml entry finetune.NAME is the recipe (keras.io's): the head alone first
with the backbone frozen, then the backbone unfrozen at a low learning rate with
BatchNorm kept in inference mode.

Reads:  params seed, backbone, finetune.NAME, distribute, data.images.exif_orientation (the
        decode, recorded in the card); data/manifest.csv, data/source.json,
        data/weights.json, models/head.keras
Writes: models/NAME.keras, models/NAME.json (its card), metrics/train/NAME.json,
        dvclive/NAME/, plots/NAME/augmented.png
"""

from pipeline.core import paths, stage
from pipeline.core.params import Params, ParamsError
from pipeline.core.runtime import seed_everything


def main(params: Params, name: str) -> None:
    if name not in params.finetune:
        known = ", ".join(params.finetune) or "none"
        raise ParamsError(f"no params entry finetune.{name}; the entries are: {known}")
    recipe = params.finetune[name]
    from pipeline.training.distribute import place

    placement = place(params.distribute)
    seed_everything(params.seed)
    from pipeline.training.finetune import finetune
    from pipeline.training.outputs import backup_folder, save_trained, training_splits

    splits = training_splits(params.data)
    chief = placement.chief
    done = finetune(recipe, params.backbone, splits, seed=params.seed, placement=placement,
                    live_dir=paths.LIVE / name if chief else None,
                    backup=backup_folder(f"finetune-{name}", [
                        recipe, params.backbone, params.distribute, params.seed],
                        [paths.MANIFEST, paths.WEIGHTS_RECORD, paths.HEAD_MODEL]),
                    batch_picture=paths.PLOTS / name / "augmented.png" if chief else None)
    if not placement.chief:
        print(f"finetune@{name}: worker {placement.worker} done; the chief writes the outputs")
        return
    save_trained(name, done, recipe.monitor, splits.classes, placement,
                 exif_orientation=splits.exif_orientation)


if __name__ == "__main__":
    args = stage.parser(__doc__)
    args.add_argument("name", metavar="NAME", help="an entry of params.yaml's finetune section")
    stage.run(main, args)
