"""Stage: check data/manifest.csv against the Great Expectations suites.

Writes metrics/validation.json on success and on failure alike (a failed
validation is a result worth keeping), and Great Expectations' Data Docs (HTML)
to reports/data_docs/ (open index.html); prints what failed file by file, and
exits 1 on a critical failure so `dvc repro` stops before training on bad data.
Exit 2: params.yaml, the manifest or the suite YAML cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline import config, paths
from pipeline.io import atomic_dir, write_json
from pipeline.manifest import read as read_manifest
from pipeline.validation import SuiteError, validate_manifest

MANIFEST = Path("data/manifest.csv")
METRICS = Path("metrics/validation.json")
DOCS = paths.DATA_DOCS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=MANIFEST, help="manifest CSV to check")
    parser.add_argument("--metrics", type=Path, default=METRICS, help="JSON summary to write")
    parser.add_argument("--docs", type=Path, default=DOCS,
                        help="folder for Great Expectations' Data Docs (replaced)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = config.load()
    except config.ConfigError as err:
        print(err, file=sys.stderr)
        return 2
    try:
        manifest = read_manifest(args.manifest)
    except (OSError, ValueError) as err:
        print(f"cannot read {args.manifest}: {err}", file=sys.stderr)
        return 2

    try:
        with atomic_dir(args.docs) as docs:  # no stale pages from an earlier run
            report = validate_manifest(manifest, cfg.validate_,
                                       splits=tuple(cfg.data.split.as_dict()),
                                       images_cfg=cfg.data.images, docs_dir=docs)
    except SuiteError as err:
        print(err, file=sys.stderr)
        return 2
    write_json(args.metrics, report.to_metrics())
    print(report.format_table())
    if not report.success:
        print(
            f"validation failed: {len(report.critical)} critical expectation(s); "
            f"see the table above, {args.metrics} and {args.docs / 'index.html'}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
