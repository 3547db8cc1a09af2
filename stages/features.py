"""Stage features: frozen backbone over every split -> data/features/<split>.npz."""

import numpy as np

from pipeline import paths, stage
from pipeline.config import Config
from pipeline.io import atomic_dir, read_json, write_json
from pipeline.manifest import SPLITS, classes, read
from pipeline.runtime import seed_everything
from pipeline.sources import data_root


def main(cfg: Config) -> None:
    seed_everything(cfg.seed)
    from pipeline.backbone import build_backbone
    from pipeline.data import image_dataset, split_arrays
    from pipeline.features import Features, extract
    from pipeline.weights import weights_path

    bb = cfg.backbone
    record = read_json(paths.WEIGHTS_RECORD)
    backbone = build_backbone(bb.arch, bb.image_size, weights_path(record))
    manifest = read(paths.MANIFEST)
    names = classes(manifest)
    root = data_root(cfg)
    speed = {}
    with atomic_dir(paths.FEATURES) as out:
        for split in SPLITS:
            files, labels = split_arrays(manifest, root, split, names)
            ds = image_dataset(files, labels, bb.image_size, bb.batch_size)
            feats, speed[split] = extract(backbone, ds, len(files), desc=f"features {split}")
            rel = manifest.loc[manifest["split"] == split, "path"].to_numpy(dtype=str)
            Features(feats, labels, rel, np.array(names)).save(out / f"{split}.npz")
    total = sum(len(manifest[manifest["split"] == s]) for s in SPLITS)
    write_json(paths.METRICS / "features.json", {
        "arch": bb.arch,
        "weights": record["source"],
        "image_size": bb.image_size,
        "dim": int(backbone.output_shape[-1]),
        "images": total,
        "images_per_second": round(speed["train"], 1),
    })
    print(f"features: {total} images, {speed['train']:.1f} img/s on the train split")


if __name__ == "__main__":
    stage.run(main)
