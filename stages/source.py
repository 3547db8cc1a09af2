"""Stage source: fingerprint data.source, so that DVC never opens the data folder itself.

Runs on every `dvc repro` (always_changed) and costs a stat of each file when nothing
changed: file hashes are cached by (path, size, mtime_ns) in data.cache/fingerprints/.
prepare depends on the fingerprint instead of the folder, so a FIFO, a socket or a
non-UTF-8 name in the folder cannot hang or break DVC's hashing; special files are
listed, never opened. A URL is fingerprinted by its data.sha256 pin, else by the hash
recorded with its cached download (downloaded here once if not cached): `dvc status`
sends no request. Refused here, in one line, before prepare's outputs are touched: a
source that is missing, a FIFO/socket/device, a system tree (/proc, /sys), or a folder
with a symbolic link leading outside it (docs/data-sources.md). The output persists
(dvc.yaml), so a refused run leaves the previous fingerprint, and prepare's outputs, as
they were.

Reads:  params data.source, data.sha256, data.cache, data.max_bytes, data.download;
        the file names, sizes and mtimes of data.source (the bytes of new or changed files)
Writes: data/source_fingerprint.json (kind, files, bytes, special files, sha256)
"""

import logging

from pipeline.core import paths, stage
from pipeline.core.io import write_json
from pipeline.core.params import Params
from pipeline.data.sources.fingerprint import fingerprint
from pipeline.data.sources.urls import has_credentials

log = logging.getLogger(__name__)


def main(params: Params) -> None:
    if has_credentials(params.data.source):
        log.warning("warning: data.source holds credentials (user:password@): the pipeline never "
                    "shows or stores them, but params.yaml and dvc.lock are in git; put them in "
                    "~/.netrc instead (docs/data-sources.md)")
    record = fingerprint(params.data)
    write_json(paths.SOURCE_FINGERPRINT, record)
    counts = (f"{record['files']:,} files, {record['bytes']:,} bytes, "
              if record["kind"] == "folder" else "")
    log.info(f"source: {record['source']} ({record['kind']}): {counts}sha256 "
             f"{str(record.get('sha256'))[:12]} -> {paths.SOURCE_FINGERPRINT}")
    special = record.get("special") or []
    if special:
        log.warning(f"warning: data.source: {len(special)} special file(s) skipped, never "
                    f"opened: {', '.join(special[:10])}{' ...' if len(special) > 10 else ''}")


if __name__ == "__main__":
    stage.run(main, stage.parser(__doc__))
