"""Stage weights: resolve backbone.weights into the weights actually used (always re-checked).

auto | imagenet | none | a weights file: Keras' ImageNet file is looked up in its
cache (and downloaded when online), a file is hashed. Each scratch entry's weights
file is hashed too, into a record its stage depends on: a file replaced in place
re-runs that entry alone.

Reads:  params seed, backbone.arch, backbone.weights, scratch (each entry's weights);
        Keras' cache ($KERAS_HOME/models)
Writes: data/weights.json (source, and its hash or seed),
        data/scratch_weights/NAME.json (each scratch entry's file and its hash)
"""

import logging

from pipeline.core import paths, stage
from pipeline.core.io import atomic_dir, write_json
from pipeline.core.params import Params
from pipeline.models.weights import resolve, scratch_record

log = logging.getLogger(__name__)


def main(params: Params) -> None:
    bb = params.backbone
    record = resolve(bb.arch, bb.weights, params.seed)
    write_json(paths.WEIGHTS_RECORD, record)
    log.info(f"weights: {bb.arch} <- {record['source']} ({record})")
    with atomic_dir(paths.SCRATCH_WEIGHTS) as folder:
        for name, entry in params.scratch.items():
            write_json(folder / f"{name}.json", scratch_record(entry.weights))


if __name__ == "__main__":
    stage.run(main, stage.parser(__doc__))
