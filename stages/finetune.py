"""Stage finetune@NAME: the backbone and the trained head, fine-tuned end to end on the images.

The params.yaml entry finetune.NAME is the recipe (keras.io's): the head alone first
with the backbone frozen, then the backbone unfrozen at a low learning rate with
BatchNorm kept in inference mode. With budget_seconds, the whole stage (this process,
start to model saved) plans its epochs to fit in it (docs/models.md).

Reads:  params seed, backbone, finetune.NAME, distribute, data.images.exif_orientation (the
        decode, recorded in the card); data/manifest.csv, data/source.json,
        data/weights.json, models/head.keras
Writes: models/NAME.keras, models/NAME.json (its card), metrics/train/NAME.json
        (the validation accuracy), reports/runs/train/NAME.json (its run facts:
        seconds, images/s, strategy, machine), dvclive/NAME/, plots/NAME/augmented.png
"""

from pipeline.core import paths, stage
from pipeline.core.params import Params, ParamsError


def main(params: Params, name: str) -> None:
    if name not in params.finetune:
        known = ", ".join(params.finetune) or "none"
        raise ParamsError(f"no params entry finetune.{name}; the entries are: {known}")
    recipe = params.finetune[name]
    from pipeline.runs.backup import Key
    from pipeline.runs.placement import recipe_distribute
    from pipeline.runs.shell import Run, run

    # The recipe's own precision, if it sets one (the card's "distribute" says which ran).
    params = params.model_copy(
        update={"distribute": recipe_distribute(params.distribute, recipe.precision)})

    def outcome(r: Run):
        from pipeline.training.finetune import finetune
        from pipeline.training.inputs import training_splits

        splits = training_splits(params.data)
        done = finetune(recipe, params.backbone, splits, seed=params.seed,
                        placement=r.placement, live_dir=r.chief_only(paths.LIVE / name),
                        resume=r.resume,
                        batch_picture=r.chief_only(paths.PLOTS / name / "augmented.png"))
        return done.outcome(recipe.monitor, splits.classes, splits.exif_orientation)

    run(f"finetune@{name}", name, params, outcome, backup=Key(
        [recipe, params.backbone, params.distribute, params.seed],
        [paths.MANIFEST, paths.WEIGHTS_RECORD, paths.HEAD_MODEL]))


if __name__ == "__main__":
    args = stage.parser(__doc__)
    args.add_argument("name", metavar="NAME", help="an entry of params.yaml's finetune section")
    stage.run(main, args)
