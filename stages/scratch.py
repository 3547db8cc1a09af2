"""Stage scratch@NAME: train the params.yaml entry scratch.NAME, a network on the images by itself.

A Wide ResNet (family wrn) or Big Transfer's ResNet-v2 (family bit), from scratch
or from a weights file of its own: no backbone, no head, no ImageNet weights record,
so a change to those never re-runs it.

Reads:  params seed, scratch.NAME, distribute, data.images.exif_orientation (the decode,
        recorded in the card); data/manifest.csv, data/source.json
Writes: models/NAME.keras, models/NAME.json (its card), metrics/train/NAME.json,
        dvclive/NAME/, plots/NAME/augmented.png
"""

from pipeline.core import paths, stage
from pipeline.core.params import Params, ParamsError
from pipeline.core.runtime import seed_everything


def main(params: Params, name: str) -> None:
    if name not in params.scratch:
        known = ", ".join(params.scratch) or "none"
        raise ParamsError(f"no params entry scratch.{name}; the entries are: {known}")
    recipe = params.scratch[name]
    from pipeline.training.distribute import place

    placement = place(params.distribute)
    seed_everything(params.seed)
    from pipeline.training.outputs import backup_folder, save_trained, training_splits
    from pipeline.training.scratch import train_scratch

    splits = training_splits(params.data)
    chief = placement.chief
    done = train_scratch(name, recipe, splits, seed=params.seed, placement=placement,
                         live_dir=paths.LIVE / name if chief else None,
                         backup=backup_folder(f"scratch-{name}", [
                             recipe, params.distribute, params.seed], [paths.MANIFEST]),
                         batch_picture=paths.PLOTS / name / "augmented.png" if chief else None)
    if not placement.chief:
        print(f"scratch@{name}: worker {placement.worker} done; the chief writes the outputs")
        return
    save_trained(name, done, recipe.monitor, splits.classes, placement,
                 exif_orientation=splits.exif_orientation)


if __name__ == "__main__":
    args = stage.parser(__doc__)
    args.add_argument("name", metavar="NAME", help="an entry of params.yaml's scratch section")
    stage.run(main, args)
