"""Stage scratch_weights: hash each scratch entry's weights file (always re-checked).

scratch@NAME depends on its entry's record, so a weights file replaced under the same
name re-runs that entry, and no other; an entry with ``weights: none`` records that. A
stage of its own, not part of ``weights``: a scratch network needs no backbone, so it
must not wait on (or fail with) the ImageNet weights.

A missing file, a folder, or a file that is no weights file (random bytes, cut short, a
.keras zip) fails here, naming scratch.NAME.weights; the output persists (dvc.yaml), so
the failed run removes nothing, and scratch@NAME never starts on it.

Reads:  params scratch (each entry's weights); the files they name
Writes: data/scratch_weights/NAME.json (the file and its sha256)
"""

import logging

from pipeline.core import paths, stage
from pipeline.core.io import atomic_dir, write_json
from pipeline.core.params import Params
from pipeline.models.weights import scratch_record

log = logging.getLogger(__name__)


def main(params: Params) -> None:
    with atomic_dir(paths.SCRATCH_WEIGHTS) as folder:
        for name, entry in params.scratch.items():
            record = scratch_record(name, entry.weights)
            write_json(folder / f"{name}.json", record)
            if record["source"] != "random":
                log.info(f"scratch_weights: {name} <- {entry.weights} ({record['source']})")


if __name__ == "__main__":
    stage.run(main, stage.parser(__doc__))
