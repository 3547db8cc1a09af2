"""Stage prepare: data.source -> data/manifest.csv (every image checked, a split), data/dropped.csv.

1. ``data.source`` (a folder, an archive or a URL) is resolved to a folder
   (pipeline/sources.py); a folder is read where it is, never written to.
2. Its class folders are scanned (pipeline/manifest.py): or, in a pre-split data
   set, the class folders of its train/ val/ test/ folders, which give the split.
3. Every image is decoded once (pipeline/images.py) and judged against
   ``data.images``; exact and near copies are found.
4. ``data.images.bad`` / ``duplicates`` decide what stays: ``fail`` keeps it for
   the validate stage to fail on, naming each file; ``quarantine`` / ``drop``
   leave it out, listed with the reason in data/dropped.csv.

Exit 2 (one line naming the path or setting) when the source cannot be used.
"""

from __future__ import annotations

import sys

import pandas as pd

from pipeline import images, manifest, paths, sources, stage
from pipeline.config import Config
from pipeline.io import write_json
from pipeline.sources import SourceInfo


def main(cfg: Config) -> None:
    d, im = cfg.data, cfg.data.images
    info = sources.resolve_source(d.source, d.cache, sha256=d.sha256, max_bytes=d.max_bytes,
                                  max_files=d.max_files)
    folders, presplit = sources.presplit_folders(info, d.presplit)
    found = manifest.scan(info.root, folders)
    manifest.check_classes(found.labels, info.root, found)
    fractions = d.split.as_dict()
    frame, _ = manifest.build(info.root, fractions, cfg.seed, im.workers, presplit=folders,
                              found=found)

    inspected = images.inspect_all(info.root, frame["path"].tolist(), images.policy_for(cfg),
                                   workers=im.workers)
    frame = manifest.add_inspection(frame, inspected)
    if not presplit:  # the split is over the images that stay (and re-made for ignore)
        usable = (frame["action"] != "reject") if im.bad == "quarantine" else \
            pd.Series(True, index=frame.index)
        frame.loc[usable, "split"] = manifest.stratified_split(
            frame.loc[usable, "label"].tolist(), fractions, cfg.seed)
    kept, dropped = images.apply_policy(frame, im.bad, im.duplicates, im.near_threshold)
    manifest.check_classes(kept["label"].tolist(), info.root, found)

    manifest.write(kept[manifest.COLUMNS], paths.MANIFEST)
    manifest.write(dropped.reindex(columns=manifest.DROPPED_COLUMNS), paths.DROPPED)
    write_json(paths.SOURCE, sources.record(info, d.source, presplit))
    summary = manifest.summary(kept, found, dropped)
    summary["source"] = {"kind": info.kind, "sha256": info.sha256, "presplit": presplit}
    emptied = sorted(set(found.labels) - set(kept["label"]))
    summary["emptied_classes"] = emptied
    write_json(paths.METRICS / "prepare.json", summary)
    classes = manifest.class_summary(kept)
    write_json(paths.CLASSES, classes)
    report(cfg, info, summary, classes, kept, dropped, found, emptied)


def report(cfg: Config, info: SourceInfo, summary: dict, classes: dict, kept: pd.DataFrame,
           dropped: pd.DataFrame, found: manifest.Scan, emptied: list[str]) -> None:
    where = {"folder": "folder", "archive": "archive", "url": "URL"}[info.kind]
    extra = "" if info.kind == "folder" else f" (sha256 {info.sha256[:12]}, in {info.root})"
    split_from = "the split folders" if summary["source"]["presplit"] else "a stratified split"
    skip = ", ".join(f"{n} {why}" for why, n in summary["skipped"].items()) or "none"
    print(
        f"prepare: {summary['images']} images of {summary['classes']} classes from {where} "
        f"{cfg.data.source}{extra} -> {paths.MANIFEST}; splits {summary['splits']} from "
        f"{split_from}; {len(dropped)} left out -> {paths.DROPPED}; skipped: {skip}"
    )
    print(manifest.format_class_table(classes))
    for name in found.empty_classes:
        print(f"warning: class folder {name!r} holds no image: it is not a class of the "
              "manifest (validate fails if validate.classes names it)", file=sys.stderr)
    for name, n in found.hidden_folders.items():
        print(f"warning: folder {name!r} starts with a dot (hidden): its {n} file(s) "
              "skipped", file=sys.stderr)
    for name, n in found.other_folders.items():
        print(f"warning: folder {name!r} is beside the split folders: its {n} file(s) "
              "skipped", file=sys.stderr)
    for label in emptied:
        n = int((dropped["label"] == label).sum())
        print(f"warning: class {label!r}: all {n} image(s) left out (see {paths.DROPPED}): it "
              "is not a class of the manifest", file=sys.stderr)
    if len(dropped):
        print(f"left out ({len(dropped)}):")
        for line in [f"  {r.path}: {r.reason}" for r in dropped.head(20).itertuples()]:
            print(line)
        if len(dropped) > 20:
            print(f"  ... and {len(dropped) - 20} more in {paths.DROPPED}")
    problems = images.problems(kept)
    if problems:
        print(f"problems the validate stage will report ({summary['rejected']} rejected, "
              f"{summary['duplicates']} duplicates; data.images.bad: quarantine / "
              "duplicates: drop leave them out):")
        for line in problems:
            print(f"  {line}")


if __name__ == "__main__":
    stage.run(main)
