"""Stage validate: check data/manifest.csv with the Great Expectations suites.

The suites (pipeline/data/suites/manifest.yaml) check columns, labels and splits,
every class in every split, image sides, aspect, format and mode, decodable and
untruncated files, rejected images, copies within a split (warning) and across
splits (leakage: fails), and class balance. Prints what failed file by file, and
exits 1 on a critical failure so `dvc repro` stops before training on bad data.
metrics/validation.json is written on failure too: a failed validation is a result.

Reads:  params validate.*, data.images.formats/modes/max_aspect; data/manifest.csv
Writes: metrics/validation.json (success, failures, warnings), reports/data/validation.json
        (everything), reports/data_docs/ (Great Expectations' Data Docs)
Exit 2: params.yaml, the manifest or the suite YAML cannot be read.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline.core import paths, stage
from pipeline.core.errors import PipelineError
from pipeline.core.io import atomic_dir, write_json
from pipeline.core.params import Params
from pipeline.data.manifest import read

log = logging.getLogger(__name__)


def main(params: Params, manifest: Path, metrics: Path, summary: Path, docs: Path) -> int:
    from pipeline.data.validation.run import validate_manifest

    try:
        frame = read(manifest)
    except (OSError, ValueError) as err:
        raise PipelineError(f"cannot read {manifest}: {err}") from None
    with atomic_dir(docs) as tmp:  # no stale pages from an earlier run
        report = validate_manifest(frame, params.validate_,
                                   splits=tuple(params.data.split.as_dict()),
                                   images_params=params.data.images, docs_dir=tmp)
    write_json(metrics, report.to_metrics())
    write_json(summary, report.to_summary())
    if report.success:
        log.info(report.format_table())
    else:  # the result the error line points at: on stdout as always, and -q keeps it
        print(report.format_table(), flush=True)
        log.error(f"validation failed: {len(report.critical)} critical expectation(s); "
                  f"see the table above, {metrics} and {docs / 'index.html'}")
        return 1
    return 0


if __name__ == "__main__":
    args = stage.parser(__doc__)
    args.add_argument("--manifest", type=Path, default=paths.MANIFEST,
                      help=f"manifest CSV to check (default: {paths.MANIFEST})")
    args.add_argument("--metrics", type=Path, default=paths.METRICS / "validation.json",
                      help="JSON summary to write (default: %(default)s)")
    args.add_argument("--summary", type=Path, default=paths.DATA_REPORTS / "validation.json",
                      help="JSON of every count and failure to write (default: %(default)s)")
    args.add_argument("--docs", type=Path, default=paths.DATA_DOCS,
                      help="folder for Great Expectations' Data Docs, replaced "
                      "(default: %(default)s)")
    stage.run(main, args)
