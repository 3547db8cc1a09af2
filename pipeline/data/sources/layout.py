"""Where the class folders are: wrapping folders, and the split folders of a pre-split set.

The layout is the one Keras' ``image_dataset_from_directory`` reads: one sub-folder
per class, possibly inside a lone wrapping folder (``flower_photos/<class>/``), or
a pre-split data set with ``train/``, ``val/`` (or ``validation/``) and ``test/``
folders of class folders.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.data.errors import SourceError
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
    """The split folders if ``root`` has ``train/``, ``val/`` (or ``validation/``) and ``test/``.

    Names match case-insensitively (``Train/`` from Windows). Having both ``val/``
    and ``validation/`` is ambiguous and an error; a partial set (``train/`` and
    ``test/`` only) is not a pre-split data set and gives None (see
    :func:`split_folders`).
    """
    found = split_folders(root)
    return found if len(found) == len(SPLIT_FOLDERS) else None


def split_folders(root: Path) -> dict[str, Path]:
    """The split-named folders directly in ``root``, ``{split: folder}``, even a partial set.

    Canonical split order (train, val, test); an empty dict when there are none.
    """
    if not root.is_dir():
        return {}
    dirs = {d.name.lower(): d for d in _entries(root)[0]}
    found: dict[str, Path] = {}
    for split, names in SPLIT_FOLDERS.items():
        present = [dirs[n] for n in names if n in dirs]
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

    auto: a complete set of split folders gives the split; a partial one is an error
    rather than being taken for classes. use: a complete set is required. ignore:
    the images of any split folders are pooled and split afresh.
    """
    found = split_folders(root)
    if mode == "ignore":
        return found or None, False
    if len(found) == len(SPLIT_FOLDERS):
        return found, True
    need = " and ".join("/ or ".join(names) + "/" for names in SPLIT_FOLDERS.values())
    if found:
        have = ", ".join(f"{p.name}/" for p in found.values())
        missing = " and ".join("/ or ".join(SPLIT_FOLDERS[s]) + "/"
                               for s in SPLIT_FOLDERS if s not in found)
        raise SourceError(
            f"data.source: {str(root)!r} has the split folder(s) {have} but no "
            f"{missing}: a pre-split data set needs {need}. Add the missing folder, or set "
            "data.presplit: ignore to pool their images and split them afresh"
        )
    if mode == "use":
        raise SourceError(
            f"data.presplit is 'use', but {str(root)!r} has no split folders "
            f"(expected {need} holding the class folders)"
        )
    return None, False
