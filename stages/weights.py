"""Stage weights: resolve backbone.weights into the weights actually used (always re-checked).

auto | imagenet | none | a weights file: Keras' ImageNet file is looked up in its
cache (and downloaded when online), a file is hashed.

Reads:  params seed, backbone.arch, backbone.weights; Keras' cache ($KERAS_HOME/models)
Writes: data/weights.json (source, and its hash or seed)
"""

import logging

from pipeline.core import paths, stage
from pipeline.core.io import write_json
from pipeline.core.params import Params
from pipeline.models.weights import resolve

log = logging.getLogger(__name__)


def main(params: Params) -> None:
    bb = params.backbone
    record = resolve(bb.arch, bb.weights, params.seed)
    write_json(paths.WEIGHTS_RECORD, record)
    detail = {"random": lambda r: f"seed {r['seed']}, backbone.weights: {r['requested']}",
              "imagenet": lambda r: f"Keras' {r['file']}, md5 {r['md5'][:12]}",
              "file": lambda r: f"{r['file']}, sha256 {r['sha256'][:12]}"}[record["source"]]
    log.info(f"weights: {bb.arch} <- {record['source']} ({detail(record)}) -> "
             f"{paths.WEIGHTS_RECORD}")


if __name__ == "__main__":
    stage.run(main, stage.parser(__doc__))
