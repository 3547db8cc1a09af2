"""Stage train_head: the softmax head on the cached features (seconds, not minutes).

Standardisation, dropout and an L2 softmax layer; early stopping on validation with
the best iterate restored; per-epoch (lbfgs: per-iteration) curves with DVCLive.
head.solver lbfgs fits the softmax layer by full-batch L-BFGS in NumPy/SciPy, dropout
marginalised, without starting TensorFlow; keras runs model.fit under the distribute
strategy. Either way models/head.keras is the same Keras model.

Reads:  params seed, head.*, distribute (keras); data/features/{train,val}.npz, info.json
Writes: models/head.keras, models/head.json (its card), metrics/train/head.json
        (the validation accuracy), reports/runs/train/head.json (its run facts:
        seconds, images/s, strategy, machine), dvclive/head/
"""

from pipeline.core import paths, stage
from pipeline.core.io import read_json
from pipeline.core.params import Params


def main(params: Params) -> None:
    from pipeline.models.features import Features

    def splits() -> tuple[Features, Features]:
        return Features.load(paths.FEATURES / "train.npz"), Features.load(
            paths.FEATURES / "val.npz")

    if params.head.solver == "lbfgs":
        from pipeline.runs.shell import run_numpy
        from pipeline.training.head_recipes import fit_head, head_outcome

        def fitted():
            train, val = splits()
            model, result = fit_head(train, val, params.head, paths.LIVE / "head")
            return head_outcome(model, result, params.head, train.classes.tolist(),
                                read_json(paths.FEATURES / "info.json"))

        run_numpy("train_head", "head", fitted)
        return

    from pipeline.runs.shell import Run, run

    def outcome(r: Run):
        from pipeline.training.head_recipes import head_outcome, train_head

        train, val = splits()
        model, result = train_head(train, val, params.head, r.chief_only(paths.LIVE / "head"),
                                   r.placement, seed=params.seed, resume=r.resume)
        return head_outcome(model, result, params.head, train.classes.tolist(),
                            read_json(paths.FEATURES / "info.json"))

    run("train_head", "head", params, outcome)


if __name__ == "__main__":
    stage.run(main, stage.parser(__doc__))
