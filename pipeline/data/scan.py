"""Walk a data folder: the images of its class folders, and what was skipped and why.

The layout is the one Keras' ``image_dataset_from_directory`` reads: one
sub-folder per class, or the class folders of a pre-split set's split folders.
"""

from __future__ import annotations

import os
import stat
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.core.image_formats import IMAGE_EXTENSIONS
from pipeline.data.source_errors import DataSourceError
from pipeline.data.sources.names import SPECIAL, not_utf8, shown
from pipeline.data.sources.trees import check_folder_link


@dataclass
class Scan:
    """What a walk of the data folder found."""

    images: list[tuple[str, str]] = field(default_factory=list)  # (relative path, label)
    skipped: Counter = field(default_factory=Counter)  # reason -> count of files
    splits: list[str] = field(default_factory=list)  # per image, when split folders give it
    empty_classes: list[str] = field(default_factory=list)  # class folders without an image
    hidden_folders: dict[str, int] = field(default_factory=dict)  # ".x" folder -> files skipped
    other_folders: dict[str, int] = field(default_factory=dict)  # beside split folders -> files
    # Folders inside a class folder that cannot be listed: (path, label, reason).
    unreadable: list[tuple[str, str, str]] = field(default_factory=list)
    special: list[str] = field(default_factory=list)  # FIFOs, sockets, devices: never opened

    @property
    def labels(self) -> list[str]:
        return sorted({label for _, label in self.images})


def _hidden(name: str) -> bool:
    # .DS_Store, macOS resource forks (._x.jpg), editor droppings.
    return name.startswith(".")


def _special(path: Path) -> str | None:
    """FIFO, socket or device: what ``path`` is if opening it could hang or fail, else None.
    A stat, which opens nothing."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    return SPECIAL.get(stat.S_IFMT(mode))


def _skip_special(path: Path, root: Path, found: Scan) -> bool:
    kind = _special(path)
    if kind is not None:
        found.skipped["special file"] += 1
        found.special.append(f"{shown(path.relative_to(root).as_posix())} ({kind})")
    return kind is not None


def _check_name(path: Path, root: Path) -> str:
    """``path`` relative to ``root``, or DataSourceError if the manifest cannot hold its name."""
    rel = path.relative_to(root).as_posix()
    if not_utf8(rel):
        raise DataSourceError(
            f"data.source: {shown(rel)} under {str(root)!r}: the name is not UTF-8 (Latin-1?); "
            "rename it (`convmv -f latin1 -t utf8 -r --notest <folder>` renames them all)"
        )
    return rel


def _count_files(path: Path) -> int:
    if path.is_symlink() or not path.is_dir():  # a link is not followed: it is not read
        return 1
    return sum(1 for p in path.rglob("*") if p.is_file() or p.is_symlink())


def scan(root: str | Path, presplit: Mapping[str, Path] | None = None) -> Scan:
    """List the images under ``root``'s class folders; count what is skipped and why.

    ``presplit`` (``{split: folder}``, as :func:`pipeline.data.sources.layout.find_presplit`
    gives it): the class folders are inside those folders, paths keep the split
    folder (``train/cat/1.jpg``) and the folder gives each image its split; other
    folders beside them are skipped and reported by name. A split or class folder
    that is a symbolic link to a folder outside ``root`` or holding it (a loop) is an
    error naming it: nothing outside the data folder is read (an image link leading out
    is rejected by pipeline.data.images).
    """
    root = Path(root)
    if not root.exists():
        raise DataSourceError(f"data.source: folder {str(root)!r} does not exist")
    if not root.is_dir():
        raise DataSourceError(f"data.source: {str(root)!r} is a file, expected a folder")
    top = os.path.realpath(root)
    found = Scan()
    if presplit:
        split_dirs = set(presplit.values())
        for folder in split_dirs:
            check_folder_link(folder, top, folder.relative_to(root).as_posix(), "split folder ",
                              within="the data folder")
        for entry in sorted(root.iterdir()):
            if entry in split_dirs:
                continue
            if _hidden(entry.name):
                found.skipped["hidden"] += _count_files(entry)
            elif _skip_special(entry, root, found):
                continue
            elif entry.is_dir():
                n = _count_files(entry)
                found.other_folders[entry.name] = n
                found.skipped["outside the split folders"] += n
            else:
                found.skipped["outside a class folder"] += 1
        for split, folder in presplit.items():
            _scan_classes(root, folder, found, split, top)
    else:
        _scan_classes(root, root, found, None, top)
    _check_case_twins(found)
    have = set(found.labels)
    for path, label, why in found.unreadable:
        if label not in have:
            raise DataSourceError(
                f"data.source: folder {path!r} cannot be read ({why.split(': ', 1)[-1]}) and "
                f"class {label!r} has no other image: fix its permissions (chmod -R u+rX)"
            )
    if not found.images:
        empty = (f"; empty class folders: {', '.join(found.empty_classes)}"
                 if found.empty_classes else "")
        raise DataSourceError(
            f"data.source: no images found in class folders under {str(root)!r} "
            f"(expected {root}/<class>/<image>{{{','.join(sorted(IMAGE_EXTENSIONS))}}})"
            + empty
        )
    return found


def class_name(folder: str) -> str:
    """The label of a class folder: its name in Unicode NFC, so that the same name typed
    on macOS (NFD) and elsewhere (NFC) is one class, not two that print alike."""
    return unicodedata.normalize("NFC", folder)


def _listable(folder: Path) -> str | None:
    """None if ``folder`` can be listed, else why not (rglob skips it silently)."""
    try:
        with os.scandir(folder):
            return None
    except OSError as err:
        return err.strerror or str(err)


def _check_case_twins(found: Scan) -> None:
    """Two labels equal once case-folded would be one folder on macOS or Windows (and a
    checkout there would merge them): an error naming both."""
    seen: dict[str, str] = {}
    for label in found.labels:
        other = seen.setdefault(label.casefold(), label)
        if other != label:
            raise DataSourceError(
                f"data.source: class folders {other!r} and {label!r} differ only in case: "
                "they are one folder on a case-insensitive file system (macOS, Windows); "
                "rename or merge one"
            )


def _scan_classes(root: Path, base: Path, found: Scan, split: str | None, top: str) -> None:
    """Add the images of ``base``'s class folders to ``found`` (paths relative to ``root``);
    a class folder leading to a folder outside ``top`` (or to one holding it) is an error."""
    names: dict[str, str] = {}  # label -> folder name, for NFC twins
    for entry in sorted(base.iterdir()):
        name = entry.relative_to(root).as_posix()
        if _hidden(entry.name):
            n = _count_files(entry)
            found.skipped["hidden"] += n
            if entry.is_dir():
                found.hidden_folders[name] = n
        elif _skip_special(entry, root, found):
            continue
        elif entry.is_file():
            found.skipped["outside a class folder"] += 1
        elif entry.is_dir():
            _check_name(entry, root)
            label = class_name(entry.name)
            twin = names.setdefault(label, entry.name)
            if twin != entry.name:
                raise DataSourceError(
                    f"data.source: class folders {ascii(twin)} and {ascii(entry.name)} in "
                    f"{str(base)!r} are the same name {label!r} once Unicode-normalised (NFC): "
                    "rename or merge one"
                )
            check_folder_link(entry, top, name, "class folder ", within="the data folder")
            why = _listable(entry)
            if why:
                raise DataSourceError(
                    f"data.source: class folder {name!r} cannot be read ({why}): leaving it "
                    f"out would remove class {label!r}; fix its permissions (chmod -R u+rX)"
                )
            before = len(found.images)
            for file in sorted(entry.rglob("*")):
                if any(_hidden(part) for part in file.relative_to(entry).parts):
                    found.skipped["hidden"] += int(file.is_file())
                elif _skip_special(file, root, found):
                    continue
                elif file.is_dir() and not file.is_symlink():
                    why = _listable(file)
                    if why:
                        found.unreadable.append(
                            (file.relative_to(root).as_posix(), label, f"unreadable folder: {why}"))
                elif file.is_symlink() and not file.exists():
                    found.skipped["broken symbolic link"] += 1
                elif not file.is_file():
                    continue
                elif file.suffix.lower() not in IMAGE_EXTENSIONS:
                    found.skipped["not an image"] += 1
                else:
                    found.images.append((_check_name(file, root), label))
                    if split is not None:
                        found.splits.append(split)
            if len(found.images) == before:
                found.empty_classes.append(name)
        elif entry.is_symlink():
            found.skipped["broken symbolic link"] += 1


def check_classes(labels: Sequence[str], root: str | Path, found: Scan | None = None) -> None:
    """DataSourceError unless there are at least two classes: a classifier needs them."""
    names = sorted(set(labels))
    if len(names) >= 2:
        return
    shown = f"1 ({names[0]!r})" if names else "none"
    empty = (f"; empty class folders: {', '.join(found.empty_classes)}"
             if found and found.empty_classes else "")
    raise DataSourceError(
        f"data.source: a classifier needs at least 2 classes; found {shown} under "
        f"{str(root)!r}{empty}"
    )
