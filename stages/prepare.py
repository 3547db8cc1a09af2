"""Stage prepare: data.source -> data/manifest.csv, every image checked once, and a split.

1. ``data.source`` (a folder, an archive or a URL) is resolved to a folder
   (pipeline.data.sources); a folder is read where it is, never written to.
2. Its class folders are scanned (pipeline.data.scan): or, in a pre-split data
   set, the class folders of its train/ val/ test/ folders, which give the split.
3. Every image is read and decoded once (pipeline.data.images) and judged against
   ``data.images``; exact and near copies are found (pipeline.data.duplicates).
4. ``data.images.bad`` / ``duplicates`` decide what stays (pipeline.data.policy):
   ``fail`` keeps it for the validate stage to fail on, naming each file;
   ``quarantine`` / ``drop`` leave it out, listed with the reason in data/dropped.csv.

Reads:  params seed, data.*, validate.min_side/max_side; the images of data.source
Writes: data/manifest.csv, data/dropped.csv, data/source.json, metrics/prepare.json
        (images, classes, left out), reports/data/{prepare,classes}.json (everything),
        plots/data/samples.png, plots/data/left_out.png
Exit 2 (one line naming the path or setting) when the source cannot be used.
"""

from __future__ import annotations

import logging

import pandas as pd

from pipeline.core import paths, stage
from pipeline.core.io import write_json
from pipeline.core.net import redacted
from pipeline.core.params import Params
from pipeline.data import images, manifest, scan, sources, summary
from pipeline.data.duplicates import mark_copies
from pipeline.data.pictures import draw_left_out, draw_samples
from pipeline.data.policy import apply_policy, check_unread_classes, problems, unreadable_rows
from pipeline.data.sources import SourceInfo, layout
from pipeline.data.splits import assign_splits

log = logging.getLogger(__name__)


def main(params: Params) -> None:
    d, im = params.data, params.data.images
    info = sources.resolve(d)
    folders, presplit = layout.presplit_folders(info.root, d.presplit)
    if folders is None and d.root is None:
        layout.check_one_data_set(info.root)
    found = scan.scan(info.root, folders)
    scan.check_classes(found.labels, info.root, found)
    policy = images.ImagePolicy.from_params(im, params.validate_)
    inspected = images.inspect_all(info.root, [rel for rel, _ in found.images], policy,
                                   workers=im.workers)
    frame = manifest.build(found.images, found.splits if presplit else [], inspected)
    # Copies are left out before the split is drawn, so that no split can hold a copy of
    # another's image; the split is then drawn over what stays.
    kept, dropped = apply_policy(frame, im.bad, im.duplicates, im.near_threshold)
    kept = assign_splits(kept, d.split.as_dict(), params.seed, presplit=presplit,
                         carve=layout.carved_from_train(folders))
    kept = mark_copies(kept.drop(columns=manifest.COPY_COLUMNS), im.near_threshold,
                       usable=kept["action"] != "reject")  # within and across the drawn splits
    dropped = pd.concat([dropped, unreadable_rows(found.unreadable)], ignore_index=True)
    check_unread_classes(kept, dropped)
    scan.check_classes(kept["label"].tolist(), info.root, found)

    manifest.write(kept[manifest.COLUMNS], paths.MANIFEST)
    manifest.write(dropped.reindex(columns=manifest.DROPPED_COLUMNS), paths.DROPPED)
    write_json(paths.SOURCE, sources.record(info, d.source, presplit))
    counts = summary.summary(kept, found, dropped)
    counts["source"] = {"kind": info.kind, "sha256": info.sha256, "presplit": presplit,
                        "split_from": layout.describe(folders, presplit, d.split.as_dict(),
                                                      counts["splits"])}
    emptied = sorted(set(found.labels) - set(kept["label"]))
    counts["emptied_classes"] = emptied
    write_json(paths.DATA_REPORTS / "prepare.json", counts)
    write_json(paths.METRICS / "prepare.json", {
        "images": counts["images"], "classes": counts["classes"], "left_out": len(dropped)})
    per_class = summary.class_summary(kept)
    write_json(paths.DATA_REPORTS / "classes.json", per_class)
    exif_orientation = params.data.images.exif_orientation
    draw_samples(kept, info.root, paths.PLOTS / "data" / "samples.png", exif_orientation)
    draw_left_out(kept, dropped, info.root, paths.PLOTS / "data" / "left_out.png",
                  exif_orientation=exif_orientation)
    report(params, info, counts, per_class, kept, dropped, found, emptied)


def report(params: Params, info: SourceInfo, counts: dict, per_class: dict, kept: pd.DataFrame,
           dropped: pd.DataFrame, found: scan.Scan, emptied: list[str]) -> None:
    where = {"folder": "folder", "archive": "archive", "url": "URL"}[info.kind]
    extra = "" if info.kind == "folder" else f" (sha256 {info.sha256[:12]}, in {info.root})"
    split_from = counts["source"]["split_from"]
    skip = ", ".join(f"{n} {why}" for why, n in counts["skipped"].items()) or "none"
    log.info(
        f"prepare: {counts['images']} images of {counts['classes']} classes from {where} "
        f"{redacted(params.data.source)}{extra} -> {paths.MANIFEST}; {len(dropped)} left "
        f"out -> {paths.DROPPED}; skipped: {skip}"
    )
    log.info(f"splits: {split_from}")
    log.info(summary.format_class_table(per_class))
    for name in found.empty_classes:
        log.warning(f"warning: class folder {name!r} holds no image: it is not a class of the "
                    "manifest (validate fails if validate.classes names it)")
    if found.special:
        more = " ..." if len(found.special) > 10 else ""
        log.warning(f"warning: {len(found.special)} special file(s) skipped, never opened: "
                    f"{', '.join(found.special[:10])}{more}")
    for name, n in found.hidden_folders.items():
        log.warning(f"warning: folder {name!r} starts with a dot (hidden): its {n} file(s) "
                    "skipped")
    for name, n in found.other_folders.items():
        log.warning(f"warning: folder {name!r} is beside the split folders: its {n} file(s) "
                    "skipped")
    across = dropped["reason"].fillna("").str.contains(", leakage ", regex=False)
    if counts["source"]["presplit"] and across.any():
        log.warning(f"note: data.images.duplicates: drop left out {int(across.sum())} copies "
                    "across the split folders, each from the later split (train, val, test "
                    "order): the given split is changed (see data/dropped.csv)")
    for label in emptied:
        n = int((dropped["label"] == label).sum())
        log.warning(f"warning: class {label!r}: all {n} image(s) left out (see "
                    f"{paths.DROPPED}): it is not a class of the manifest")
    if len(dropped):
        log.info(f"left out ({len(dropped)}):")
        for line in [f"  {r.path}: {r.reason}" for r in dropped.head(20).itertuples()]:
            log.info(line)
        if len(dropped) > 20:
            log.info(f"  ... and {len(dropped) - 20} more in {paths.DROPPED}")
    found_problems = problems(kept)
    if found_problems:
        log.info(f"problems the validate stage will report ({counts['rejected']} rejected, "
                 f"{counts['duplicates']} duplicates; data.images.bad: quarantine / "
                 "duplicates: drop leave them out):")
        for line in found_problems:
            log.info(f"  {line}")


if __name__ == "__main__":
    stage.run(main, stage.parser(__doc__))
