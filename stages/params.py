"""Stage params: check params.yaml, and the local files it names, before any other stage.

Every other stage depends on this stage's output, directly or through the stages before
it, so DVC runs it first. When params.yaml holds an invalid value (a wrong type, a value
out of range, .inf or .nan, a duplicate key, aliases that expand too far, an unknown
key), or names a local data.source or weights file that is missing or no weights file,
it fails in a second naming the key, and DVC stops before any stage whose outputs it
would remove has started: a refused run changes nothing, dvc.lock included. Its output
never changes (and persists: DVC does not remove it first), so passing re-runs nothing
else. It runs when params.yaml's values change; the source, weights and scratch_weights
stages check the same files on every run.

Reads:  params.yaml (all of it); whether data.source and the weights files it names exist
Writes: data/params_checked.json (the same bytes every time)
"""

import logging
from pathlib import Path

from pipeline.core import paths, stage
from pipeline.core.io import write_json
from pipeline.core.params import PARAMS_FILE, Params
from pipeline.data.sources.trees import local_source
from pipeline.data.sources.urls import is_url
from pipeline.models.weights import check_weights_file

log = logging.getLogger(__name__)

# What the output says: constant, so that the stages depending on it never re-run for it.
RECORD = {"checked": PARAMS_FILE, "by": "stages/params.py",
          "why": "every stage depends on this file, so DVC checks params.yaml first"}


def main(params: Params) -> None:
    # stage.run has loaded and validated params.yaml: here, the files it names.
    source = params.data.source
    if Path(source) != paths.SAMPLE and not is_url(source):  # the sample stage writes that one
        local_source(source)  # the source stage's own rule: missing, special, a system tree
    if params.backbone.weights not in ("auto", "imagenet", "none"):
        check_weights_file("backbone.weights", params.backbone.weights)
    for name, entry in params.scratch.items():
        if entry.weights != "none":
            check_weights_file(f"scratch.{name}.weights", entry.weights)
    write_json(paths.PARAMS_CHECKED, RECORD)
    log.info(f"params: {PARAMS_FILE} is valid ({len(params.models())} models) "
             f"-> {paths.PARAMS_CHECKED}")


if __name__ == "__main__":
    stage.run(main, stage.parser(__doc__))
