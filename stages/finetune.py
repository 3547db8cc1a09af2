"""Stage finetune@NAME: train params entry finetune.NAME -> models/finetune/NAME.keras."""

import sys

from pipeline import paths, stage
from pipeline.config import Config, ConfigError
from pipeline.io import atomic_path, write_json
from pipeline.manifest import classes, read
from pipeline.runtime import seed_everything
from pipeline.sources import data_root


def main(cfg: Config, name: str) -> None:
    if name not in cfg.finetune:
        known = ", ".join(cfg.finetune) or "none"
        raise ConfigError(f"no params entry finetune.{name}; the entries are: {known}")
    seed_everything(cfg.seed)
    from pipeline.data import split_arrays
    from pipeline.finetune import Splits, inference_copy, train

    manifest = read(paths.MANIFEST)
    names = classes(manifest)
    root = data_root(cfg)
    splits = Splits(*(split_arrays(manifest, root, s, names) for s in ("train", "val")),
                    classes=names)
    done = train(name, cfg, splits)
    with atomic_path(paths.FINETUNE / f"{name}.keras", suffix=".keras") as tmp:
        inference_copy(done.model).save(tmp)
    entry = cfg.finetune[name]
    summary = done.summary(entry.monitor)
    write_json(paths.METRICS / "finetune" / f"{name}.json", summary)
    print(f"finetune {name}: best epoch {done.result.best_epoch}/{done.result.epochs_run}, "
          f"val accuracy {summary.get('val_accuracy')}, {summary['train_seconds']} s, "
          f"{summary['train_images_per_second']} img/s")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python stages/finetune.py NAME  (an entry of params.yaml's finetune)")
    stage.run(main, sys.argv[1])
