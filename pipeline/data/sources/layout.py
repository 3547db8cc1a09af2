"""Where the class folders are: wrapping folders, and the split folders of a pre-split set.

The layout is the one Keras' ``image_dataset_from_directory`` reads: one sub-folder
per class, possibly inside a lone wrapping folder (``flower_photos/<class>/``), or
a pre-split data set with ``train/``, ``val/`` (or ``validation/``) and ``test/``
folders of class folders.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.core.image_formats import IMAGE_EXTENSIONS
from pipeline.data.source_errors import SourceError
from pipeline.data.sources.trees import check_folder_link
from pipeline.data.splits import SPLIT_FOLDERS

# Top-level droppings of archivers that are not part of the data.
_JUNK = frozenset({"__MACOSX", "Thumbs.db", "desktop.ini"})


def _entries(folder: Path) -> tuple[list[Path], list[Path]]:
    """(folders, files) directly in ``folder``, without hidden and archiver junk."""
    dirs, files = [], []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or entry.name in _JUNK:
            continue
        (dirs if entry.is_dir() else files).append(entry)
    return dirs, files


def class_root(top: Path) -> Path:
    """The folder holding the class folders: descend through lone wrapping folders.

    ``flower_photos.tgz`` holds ``flower_photos/<class>/...`` (plus a LICENSE.txt);
    a zip made on a Mac adds ``__MACOSX/``. A lone folder is descended into only
    if it has sub-folders itself, so a single-class data set (``wrap/cat/*.jpg``)
    stops at ``wrap`` and is reported as one class, not mistaken for images
    outside any class folder. Loose files beside the lone folder (a README) do
    not stop the descent.
    """
    root = top
    for _ in range(16):  # a bound, not a limit anyone meets
        dirs, _files = _entries(root)
        if len(dirs) != 1 or not _entries(dirs[0])[0]:
            return root
        root = dirs[0]
    return root


def find_presplit(root: Path) -> dict[str, Path] | None:
    """The split folders if ``root`` is a pre-split data set, ``{split: folder}``, else None.

    Names match case-insensitively (``Train/`` from Windows); having both ``val/`` and
    ``validation/`` is an error. Accepted: ``train/ val/ test/``, and ``train/`` with
    either ``val/`` or ``test/`` (the published layout of ImageNet, Imagenette and most
    Kaggle sets): that second folder is the held-out test split, so it is returned as
    ``"test"`` and prepare carves the validation split from ``train/``.
    """
    found = split_folders(root)
    if "train" not in found or len(found) < 2:
        return None
    if len(found) == 2 and "val" in found:  # train/ + val/: val/ is what results are on
        return {"train": found["train"], "test": found["val"]}
    return found


def _is_split_folder(folder: Path) -> bool:
    """False for a folder of images without sub-folders: a class that is named train."""
    try:
        dirs, _ = _entries(folder)
        return bool(dirs) or not _image_names(folder)
    except OSError:  # unreadable: scanning it names it
        return True


def split_folders(root: Path) -> dict[str, Path]:
    """The split-named folders directly in ``root``, ``{split: folder}``, even a partial set.

    A split-named folder of images without sub-folders is not one: it is a class named
    train (or val, test). Canonical split order (train, val, test); an
    empty dict when there are none.
    """
    if not root.is_dir():
        return {}
    dirs = {d.name.lower(): d for d in _entries(root)[0]}
    found: dict[str, Path] = {}
    for split, names in SPLIT_FOLDERS.items():
        present = [dirs[n] for n in names if n in dirs and _is_split_folder(dirs[n])]
        if len(present) > 1:
            raise SourceError(
                f"data.source: {root} has both {' and '.join(p.name + '/' for p in present)}; "
                f"keep one as the {split} split"
            )
        if present:
            found[split] = present[0]
    return found


def presplit_folders(root: Path, mode: str) -> tuple[dict[str, Path] | None, bool]:
    """(split folders to scan, whether they give the split) for ``data.presplit``.

    The keys are the splits the folders' images go to: with ``train/`` + ``val/`` only,
    ``val/`` is ``"test"`` and there is no ``"val"`` key (see :func:`find_presplit`):
    prepare then carves the validation split from the train images.
    auto: such a set gives the split; split folders without ``train/`` (or a lone one)
    are an error rather than being taken for classes. use: a set is required. ignore:
    the images of any split folders are pooled and split afresh.
    """
    found = split_folders(root)
    if mode == "ignore":
        return found or None, False
    presplit = find_presplit(root)
    if presplit:
        return presplit, True
    if found:
        have = ", ".join(f"{p.name}/" for p in found.values())
        raise SourceError(
            f"data.source: {str(root)!r} has the split folder(s) {have} but no "
            f"{'train/' if 'train' not in found else 'val/ or test/'}: a pre-split data set "
            "needs train/ and val/ (or validation/) and/or test/. Add the missing folder, or "
            "set data.presplit: ignore to pool their images and split them afresh"
        )
    if mode == "use":
        raise SourceError(
            f"data.presplit is 'use', but {str(root)!r} has no split folders "
            "(expected train/ and val/ and/or test/ holding the class folders)"
        )
    return None, False


def carved_from_train(folders: dict[str, Path] | None) -> bool:
    """Whether prepare draws the validation split from ``train/`` (no val/ folder given)."""
    return bool(folders) and "val" not in folders


def select_root(root: Path, sub: str | None, tree: Path | None = None) -> Path:
    """``data.root``: the sub-folder of the source holding the class folders.

    None keeps ``root``; "." too (and says the top level is what it is). A missing
    sub-folder is an error naming the folders there are, and so is one that resolves
    outside ``tree`` (the real folder of the source; default: ``root``'s) through a
    symbolic link: the source stage's fingerprint would not cover what it holds.
    """
    if sub is None or sub == ".":
        return root
    chosen = root / sub
    if not chosen.is_dir():
        there = ", ".join(f"{d.name}/" for d in _entries(root)[0]) or "none"
        raise SourceError(
            f"data.root: {sub!r} is not a folder of {str(root)!r} (its folders: {there})"
        )
    found = class_root(chosen)
    # Each step down, the lone wrapping folders descended into too: none may lead out.
    _check_links(root, found, os.path.realpath(tree if tree is not None else root))
    return found


def _check_links(root: Path, path: Path, top: str) -> None:
    """SourceError if a step from ``root`` down to ``path`` is a link leading outside ``top``."""
    step = root
    for part in path.relative_to(root).parts:
        step = step / part
        check_folder_link(step, top, step.relative_to(root).as_posix(), key="data.root")


def _image_names(folder: Path) -> bool:
    return any(f.suffix.lower() in IMAGE_EXTENSIONS for f in _entries(folder)[1])


def check_one_data_set(root: Path) -> None:
    """SourceError if ``root`` holds several data sets: two or more top-level folders,
    each holding no image itself but folders of images (``photos_2022/<class>/``,
    ``photos_2023/<class>/``). Taking them as classes would mix every real class.
    """
    try:
        tops = _entries(root)[0]
        if len(tops) < 2:
            return
        for top in tops:
            if _image_names(top):
                return
            inner = _entries(top)[0]
            if not inner or not any(_image_names(d) for d in inner):
                return
    except OSError:  # an unreadable folder: scanning it names it
        return
    names = ", ".join(f"{t.name}/" for t in tops)
    raise SourceError(
        f"data.source: {str(root)!r} holds several data sets ({names}), each a folder of "
        f"class folders: set data.root to the one to use (data.root: {tops[0].name}), or "
        "data.root: . to take each top-level folder as a class"
    )


def describe(folders: dict[str, Path] | None, presplit: bool, fractions: dict[str, float],
             counts: dict[str, int]) -> str:
    """Which images became which split, in words, for prepare's summary: ``counts`` are
    the images per split, ``fractions`` params.yaml's data.split."""
    def n(split: str) -> str:
        return f"{split} {counts.get(split, 0)}"

    if not presplit or not folders:
        shares = "/".join(f"{fractions[s]:g}" for s in ("train", "val", "test"))
        pooled = (f", the images of {', '.join(f'{p.name}/' for p in folders.values())} "
                  "pooled (data.presplit: ignore)" if folders else "")
        return (f"{n('train')}, {n('val')}, {n('test')}: a stratified {shares} split of the "
                f"images kept{pooled}")
    given = [f"{n(split)} from {folder.name}/" for split, folder in folders.items()
             if split != "train"]
    if not carved_from_train(folders):
        return f"{n('train')} from {folders['train'].name}/, " + ", ".join(given)
    held_out = folders["test"].name
    note = " (the held-out folder: results are reported on it)" if held_out != "test" else ""
    return (f"{n('train')} and {n('val')} from {folders['train'].name}/ (val: a stratified "
            f"{fractions['val']:g} of it, data.split.val), {n('test')} from {held_out}/{note}")
