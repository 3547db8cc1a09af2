"""Stage train_head: softmax head on the cached features -> models/head.keras."""

from pipeline import paths, stage
from pipeline.config import Config
from pipeline.io import atomic_path, write_json
from pipeline.runtime import seed_everything


def main(cfg: Config) -> None:
    seed_everything(cfg.seed)
    from pipeline.features import Features
    from pipeline.head import build_head, compile_head
    from pipeline.training import fit, trainable_params

    hc = cfg.head
    train = Features.load(paths.FEATURES / "train.npz")
    val = Features.load(paths.FEATURES / "val.npz")
    model = build_head(train.features, len(train.classes), hc.dropout, hc.l2)
    compile_head(model, hc)
    result = fit(
        model, (train.features, train.labels), (val.features, val.labels),
        epochs=hc.epochs, patience=hc.patience, monitor=hc.monitor,
        live_dir=paths.LIVE / "head", train_count=len(train.labels), batch_size=hc.batch_size,
    )
    with atomic_path(paths.HEAD_MODEL, suffix=".keras") as tmp:
        model.save(tmp)
    summary = result.summary(hc.monitor) | {"trainable_params": trainable_params(model)}
    write_json(paths.METRICS / "head.json", summary)
    print(f"train_head: best epoch {result.best_epoch}/{result.epochs_run}, "
          f"val accuracy {summary.get('val_accuracy')}, {result.seconds:.1f} s")


if __name__ == "__main__":
    stage.run(main)
