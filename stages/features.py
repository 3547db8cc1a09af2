"""Stage features: the frozen backbone over every split, once, cached for the head.

Reads:  params seed, backbone.arch/image_size/batch_size, distribute, inference,
        data.images.exif_orientation (recorded: the head and its export decode by it);
        data/manifest.csv,
        data/source.json (where the images are), data/weights.json
Writes: data/features/{train,val,test}.npz (features, labels, paths, classes) and
        info.json (backbone, size, weights, exif_orientation, and the backbone's params
        and weight_bytes: what a head ships behind it); its run facts, no metrics:
        reports/runs/features.json (weights used, images/s, the strategy, the runtime and
        precision that ran, the machine)
"""

import logging

import numpy as np

from pipeline.core import paths, run_facts, stage
from pipeline.core.io import atomic_dir, read_json, write_json
from pipeline.core.params import Params
from pipeline.core.process_setup import seed_everything
from pipeline.data.manifest import classes, read
from pipeline.data.sources import data_root
from pipeline.data.splits import SPLITS

log = logging.getLogger(__name__)


def main(params: Params) -> None:
    from pipeline.runs.placement import place

    placement = place(params.distribute, inference=True)
    if not placement.chief:
        log.info("features: not the chief worker; the chief extracts the features")
        return
    seed_everything(params.seed)
    from pipeline.data.input import image_dataset, split_arrays
    from pipeline.models.backbone import build_backbone
    from pipeline.models.features import Extractor, Features
    from pipeline.models.size import of_network
    from pipeline.models.weights import weights_path
    from pipeline.runtimes.select import compile_forward

    bb = params.backbone
    exif_orientation = params.data.images.exif_orientation
    record = read_json(paths.WEIGHTS_RECORD)
    with placement.scope():
        backbone = build_backbone(bb.arch, bb.image_size, weights_path(record))
    manifest = read(paths.MANIFEST)
    names = classes(manifest)
    root = data_root(params.data)
    speed = {}
    # Several replicas: TensorFlow's strategy splits the batches; else the inference runtime.
    forward = None if placement.replicas > 1 else compile_forward(
        backbone, params.inference.runtime, params.inference.precision)
    extractor = Extractor(backbone, placement.strategy, forward)  # one compile, three splits
    with atomic_dir(paths.FEATURES) as out:
        for split in SPLITS:
            files, labels = split_arrays(manifest, root, split, names)
            ds = image_dataset(files, labels, bb.image_size, placement.global_batch(bb.batch_size),
                               exif_orientation=exif_orientation)
            feats, speed[split] = extractor(ds, len(files), desc=f"features {split}")
            rel = manifest.loc[manifest["split"] == split, "path"].to_numpy(dtype=str)
            Features(feats, labels, rel, np.array(names)).save(out / f"{split}.npz")
        total = sum(len(manifest[manifest["split"] == s]) for s in SPLITS)
        params, weight_bytes = of_network(backbone)
        made = {"weights": record["source"], "images_per_second": round(speed["train"], 1),
                "distribute": placement.label(),
                "runtime": forward.label() if forward else "tensorflow (distributed)"}
        write_json(out / "info.json", made | {
            "arch": bb.arch, "image_size": bb.image_size, "exif_orientation": exif_orientation,
            "dim": int(backbone.output_shape[-1]), "images": total,
            "params": params, "weight_bytes": weight_bytes})
    run_facts.write("features", made)
    log.info(f"features: {total} images, {speed['train']:.1f} img/s on the train split "
             f"({made['runtime']})")


if __name__ == "__main__":
    stage.run(main, stage.parser(__doc__))
