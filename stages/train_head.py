"""Stage train_head: the softmax head on the cached features (seconds, not minutes).

Standardisation, dropout and an L2 softmax layer; early stopping on validation with
the best epoch restored; per-epoch curves with DVCLive.

Reads:  params seed, head.*, distribute; data/features/{train,val}.npz and info.json
Writes: models/head.keras, models/head.json (its card), metrics/train/head.json,
        dvclive/head/
"""

from pipeline.core import paths, stage
from pipeline.core.io import atomic_path, read_json
from pipeline.core.params import Params
from pipeline.core.runtime import seed_everything


def main(params: Params) -> None:
    from pipeline.training.distribute import place

    placement = place(params.distribute)
    seed_everything(params.seed)
    from pipeline.models.features import Features
    from pipeline.training.card import write_card
    from pipeline.training.fit import trainable_params
    from pipeline.training.head import train_head

    head = params.head
    train = Features.load(paths.FEATURES / "train.npz")
    val = Features.load(paths.FEATURES / "val.npz")
    model, result = train_head(train, val, head, paths.LIVE / "head" if placement.chief else None,
                               placement, seed=params.seed)
    if not placement.chief:
        print(f"train_head: worker {placement.worker} done; the chief writes the outputs")
        return
    with atomic_path(paths.HEAD_MODEL, suffix=".keras") as tmp:
        model.save(tmp)
    made = read_json(paths.FEATURES / "info.json")
    card = {
        "name": "head", "input": "features", "family": "head",
        "preprocessing": f"pooled features of the {made['arch']} backbone at "
                         f"{made['image_size']} px ({made['weights']} weights), as the "
                         "features stage makes them",
        "backbone": {k: made[k] for k in ("arch", "image_size", "weights", "images_per_second")},
        "classes": train.classes.tolist(),
        # The decode of its features: predict and the export chain the backbone behind it so.
        "exif_orientation": made.get("exif_orientation", True),
    } | result.summary(head.monitor) | {"trainable_params": trainable_params(model),
                                        "distribute": placement.label(),
                                        "replicas": placement.replicas}
    write_card("head", card)
    print(f"train_head: best epoch {result.best_epoch}/{result.epochs_run}, "
          f"val accuracy {card.get('val_accuracy')}, {result.seconds:.1f} s")


if __name__ == "__main__":
    stage.run(main, stage.parser(__doc__))
