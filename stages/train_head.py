"""Stage train_head: the softmax head on the cached features (seconds, not minutes).

Standardisation, dropout and an L2 softmax layer; early stopping on validation with
the best epoch restored; per-epoch curves with DVCLive.

Reads:  params seed, head.*, distribute; data/features/{train,val}.npz and info.json
Writes: models/head.keras, models/head.json (its card), metrics/train/head.json,
        dvclive/head/
"""

from pipeline.core import paths, stage
from pipeline.core.io import read_json
from pipeline.core.params import Params


def main(params: Params) -> None:
    from pipeline.runs.shell import Run, run

    def outcome(r: Run):
        from pipeline.models.features import Features
        from pipeline.training.head import head_outcome, train_head

        train = Features.load(paths.FEATURES / "train.npz")
        val = Features.load(paths.FEATURES / "val.npz")
        model, result = train_head(train, val, params.head, r.chief_only(paths.LIVE / "head"),
                                   r.placement, seed=params.seed, fit=r.fit)
        return head_outcome(model, result, params.head.monitor, train.classes.tolist(),
                            read_json(paths.FEATURES / "info.json"))

    run("train_head", "head", params, outcome)


if __name__ == "__main__":
    stage.run(main, stage.parser(__doc__))
