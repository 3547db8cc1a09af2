"""Stage scratch@NAME: train the params.yaml entry scratch.NAME, a network on the images by itself.

A Wide ResNet (family wrn), Big Transfer's ResNet-v2 (family bit) or ResNet-9 (family
resnet9), from scratch or from a weights file of its own: no backbone, no head, no
ImageNet weights record, so a change to those never re-runs it. With budget_seconds, the
whole stage (this process, start to model saved) plans its epochs to fit in it and the
card records the plan, the time used and why it stopped (docs/models.md).

Reads:  params seed, scratch.NAME, distribute, data.images.exif_orientation (the decode,
        recorded in the card); data/manifest.csv, data/source.json;
        data/scratch_weights/NAME.json (the weights file, checked against its hash)
Writes: models/NAME.keras, models/NAME.json (its card), metrics/train/NAME.json
        (the validation accuracy), reports/runs/train/NAME.json (its run facts:
        seconds, images/s, strategy, machine), dvclive/NAME/, plots/NAME/augmented.png
"""

from pipeline.core import paths, stage
from pipeline.core.params import Params, ParamsError
from pipeline.models.weights import check_scratch_weights


def main(params: Params, name: str) -> None:
    if name not in params.scratch:
        known = ", ".join(params.scratch) or "none"
        raise ParamsError(f"no params entry scratch.{name}; the entries are: {known}")
    recipe = params.scratch[name]
    check_scratch_weights(name, recipe.weights)
    from pipeline.runs.backup import Key
    from pipeline.runs.placement import recipe_distribute
    from pipeline.runs.shell import Run, run

    # The recipe's own precision, if it sets one (the card's "distribute" says which ran).
    params = params.model_copy(
        update={"distribute": recipe_distribute(params.distribute, recipe.precision)})

    def outcome(r: Run):
        from pipeline.training.inputs import training_splits
        from pipeline.training.scratch import train_scratch

        splits = training_splits(params.data)
        done = train_scratch(name, recipe, splits, seed=params.seed, placement=r.placement,
                             live_dir=r.chief_only(paths.LIVE / name), resume=r.resume,
                             batch_picture=r.chief_only(paths.PLOTS / name / "augmented.png"))
        return done.outcome(recipe.monitor, splits.classes, splits.exif_orientation)

    run(f"scratch@{name}", name, params, outcome,
        backup=Key([recipe, params.distribute, params.seed], [paths.MANIFEST]))


if __name__ == "__main__":
    args = stage.parser(__doc__)
    args.add_argument("name", metavar="NAME", help="an entry of params.yaml's scratch section")
    stage.run(main, args)
