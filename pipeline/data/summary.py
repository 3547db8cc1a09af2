"""What prepare found, in numbers: metrics/prepare.json, the per-class table it prints."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from pipeline.data.scan import Scan
from pipeline.data.splits import SPLITS


def summary(manifest: pd.DataFrame, found: Scan, dropped: pd.DataFrame | None = None) -> dict:
    """Counts for metrics/prepare.json."""
    per_split = manifest.groupby("split").size()
    out = {
        "images": int(len(manifest)),
        "classes": int(manifest["label"].nunique()),
        "splits": {s: int(per_split.get(s, 0)) for s in SPLITS},
        "per_class": {k: int(v) for k, v in manifest.groupby("label").size().items()},
        "unreadable": int((manifest["error"].fillna("") != "").sum()),
    }
    if "action" in manifest:
        out["rejected"] = int((manifest["action"] == "reject").sum())
        out["converted"] = int((manifest["action"] == "convert").sum())
        out["ext_mismatch"] = int(manifest["ext_mismatch"].sum())
    if "duplicate_of" in manifest:
        out["duplicates"] = int((manifest["duplicate_of"].fillna("") != "").sum())
        out["leakage"] = int(manifest["leakage"].sum())
    if dropped is not None:
        bad = dropped["reason"].str.startswith("quarantined") if len(dropped) else []
        out["dropped"] = {"bad": int(sum(bad)), "duplicates": int(len(dropped) - sum(bad))}
    out["skipped"] = {k: int(v) for k, v in sorted(found.skipped.items())}
    out["empty_classes"] = list(found.empty_classes)
    out["hidden_folders"] = dict(found.hidden_folders)
    if found.other_folders:
        out["other_folders"] = dict(found.other_folders)
    return out


def class_summary(manifest: pd.DataFrame) -> dict[str, dict]:
    """Per class: images per split, mean width and height, and the share of each mode."""
    out: dict[str, dict] = {}
    for label, rows in manifest.groupby("label", sort=True):
        entry: dict = {s: int((rows["split"] == s).sum()) for s in SPLITS}
        for side in ("width", "height"):
            mean = pd.to_numeric(rows[side], errors="coerce").mean()
            entry[f"mean_{side}"] = None if pd.isna(mean) else round(float(mean), 1)
        if "mode" in rows:
            modes = rows["mode"].fillna("").replace("", "unreadable")
            shares = modes.value_counts(normalize=True)
            entry["modes"] = {str(m): round(float(v), 3) for m, v in
                              sorted(shares.items(), key=lambda kv: (-kv[1], kv[0]))}
        out[str(label)] = entry
    return out


def format_class_table(classes: Mapping[str, Mapping]) -> str:
    """The per-class summary as a plain aligned table."""
    header = ("class", *SPLITS, "mean size", "modes")
    rows = []
    for label, e in classes.items():
        size = ("?" if e["mean_width"] is None else
                f"{e['mean_width']:g}x{e['mean_height']:g}")
        modes = ", ".join(f"{m} {share:.0%}" for m, share in e.get("modes", {}).items())
        rows.append((label, *(str(e[s]) for s in SPLITS), size, modes))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for r in [header, *rows]:
        cells = [f"{r[0]:<{widths[0]}}"] + [f"{c:>{w}}" for c, w in zip(r[1:-1], widths[1:],
                                                                          strict=True)]
        lines.append("  ".join([*cells, r[-1]]).rstrip())
    return "\n".join(lines)
