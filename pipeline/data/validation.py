"""Validate the image manifest with the Great Expectations suites in pipeline/suites/.

The suites live in the repo as YAML data so that a reviewer reads the rules, not
code; the numbers in them come from the ``validate`` section of params.yaml
through ``${name}`` placeholders, so ``dvc exp run -S validate.min_side=32``
still drives them. Some rules are not about single rows (leakage between
splits, classes missing from a split, class imbalance), so this module derives
small tables from the manifest and validates each with its own suite: every
rule stays a plain, row-level expectation whose failures map back to files.

Each expectation carries ``meta.severity``: ``critical`` fails the stage,
``warning`` (say, the same image stored twice within a split) is only reported.

Given a folder, the stage also has Great Expectations write its Data Docs (HTML
pages of every expectation and result) there, made to render offline
(pipeline/data/data_docs.py).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

from pipeline.core.errors import PipelineError
from pipeline.core.params import ImagesParams, ValidateParams
from pipeline.data import manifest as manifest_columns
from pipeline.data.data_docs import make_offline
from pipeline.data.formats import FORMAT_ALIASES
from pipeline.data.splits import SPLITS

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuite

SUITE_FILE = Path(__file__).with_name("suites") / "manifest.yaml"
# Every manifest column but `error` (an absent one means no errors).
REQUIRED_COLUMNS = tuple(c for c in manifest_columns.COLUMNS if c != "error")
TEXT_COLUMNS = manifest_columns.TEXT_COLUMNS
NUMBER_COLUMNS = (*manifest_columns.INT_COLUMNS, *manifest_columns.FLOAT_COLUMNS, "bytes")
BOOL_COLUMNS = manifest_columns.BOOL_COLUMNS
SEVERITIES = ("critical", "warning")
TABLES = ("images", "class_split_counts", "class_totals")
MAX_FILES = 5

_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")
_LIST_IN_TEXT = 6  # a longer list inside a rule's text is cut, so the table stays readable


class SuiteError(PipelineError, ValueError):
    """The suite YAML is malformed, names an unknown placeholder or table, or lost
    expectations while Great Expectations built it."""


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class Failure:
    """One failed expectation, with the files (or classes) that made it fail."""

    table: str
    expectation: str
    column: str | None
    rule: str
    severity: str
    unexpected_count: int | None  # None for table-level expectations and errors
    offenders: tuple[str, ...]  # human-readable: paths, "label/split: n images", ...


@dataclass(frozen=True)
class ValidationReport:
    """What the validate stage prints and writes to metrics/validation.json."""

    images: int
    per_split: dict[str, int]
    per_class: dict[str, int]
    evaluated: int
    failures: tuple[Failure, ...]

    @property
    def critical(self) -> tuple[Failure, ...]:
        return tuple(f for f in self.failures if f.severity == "critical")

    @property
    def warnings(self) -> tuple[Failure, ...]:
        return tuple(f for f in self.failures if f.severity == "warning")

    @property
    def success(self) -> bool:
        """Warnings alone do not fail the stage."""
        return not self.critical

    def to_metrics(self) -> dict[str, Any]:
        """The numbers runs are compared on: no per-class figures (they would grow with
        the classes), no timestamps or run ids (same manifest, same file)."""
        return {
            "success": self.success,
            "critical_failures": len(self.critical),
            "warnings": len(self.warnings),
        }

    def to_summary(self) -> dict[str, Any]:
        """Everything: counts per split and class, expectations evaluated and failed."""
        return {
            "success": self.success,
            "images": self.images,
            "classes": len(self.per_class),
            "per_split": dict(self.per_split),
            "per_class": dict(self.per_class),
            "expectations": {
                "evaluated": self.evaluated,
                "successful": self.evaluated - len(self.failures),
                "failed": len(self.failures),
            },
            "critical_failures": len(self.critical),
            "warnings": len(self.warnings),
            "failures": [{"severity": f.severity, "rule": f.rule, "column": f.column,
                          "unexpected": f.unexpected_count, "files": list(f.offenders[:20])}
                         for f in self.failures],
        }

    def format_table(self, max_files: int = MAX_FILES) -> str:
        """A short table of the failures, critical first, each with up to ``max_files``
        offending files, so a failed stage says which files to look at."""
        head = (
            f"validation: {len(self.critical)} critical failure(s), "
            f"{len(self.warnings)} warning(s) in {self.evaluated} expectations "
            f"on {self.images} images"
        )
        if not self.failures:
            return head
        rows = [(f.severity, f.column or "-", _count_text(f), f.rule) for f in self._ordered()]
        titles = ("severity", "column", "unexpected", "rule")
        widths = [max(len(r[i]) for r in [titles, *rows]) for i in range(3)]
        lines = [head, _table_row(titles, widths)]
        for failure, row in zip(self._ordered(), rows, strict=True):
            lines.append(_table_row(row, widths))
            indent = " " * (widths[0] + 2)
            lines += [f"{indent}- {item}" for item in failure.offenders[:max_files]]
            if len(failure.offenders) > max_files:
                lines.append(f"{indent}  ... and {len(failure.offenders) - max_files} more")
        return "\n".join(lines)

    def _ordered(self) -> list[Failure]:
        return sorted(self.failures, key=lambda f: SEVERITIES.index(f.severity))


def _count_text(failure: Failure) -> str:
    return "-" if failure.unexpected_count is None else str(failure.unexpected_count)


def _table_row(cells: Sequence[str], widths: Sequence[int]) -> str:
    severity, column, count, rule = cells
    return f"{severity:<{widths[0]}}  {column:<{widths[1]}}  {count:>{widths[2]}}  {rule}"


# --------------------------------------------------------------------------- suites


def suite_values(
    validate: ValidateParams,
    classes: Sequence[str],
    splits: Sequence[str],
    images: ImagesParams,
) -> dict[str, Any]:
    """The values the YAML's ``${name}`` placeholders may use.

    ``images`` is params' ``data.images``. Formats
    include Pillow's other names for an allowed one (MPO: a camera's JPEG).
    """
    formats = list(images.formats)
    formats += [alias for alias, name in FORMAT_ALIASES.items() if name in formats]
    return {
        "classes": list(classes),
        "splits": list(splits),
        "min_side": validate.min_side,
        "max_side": validate.max_side,
        "min_per_class": validate.min_per_class,
        "max_imbalance": validate.max_imbalance,
        "formats": formats,
        "modes": list(images.modes),
        "max_aspect": images.max_aspect,
    }


def substitute(node: Any, values: Mapping[str, Any]) -> Any:
    """Fill ``${name}`` placeholders in a parsed YAML tree.

    A string that is exactly one placeholder becomes the value itself (a list stays
    a list, an int an int), as Great Expectations needs typed kwargs; a placeholder
    inside longer text is formatted into it. An unknown name raises SuiteError
    instead of reaching Great Expectations as a literal string.
    """
    if isinstance(node, dict):
        return {key: substitute(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [substitute(item, values) for item in node]
    if not isinstance(node, str):
        return node
    for name in _PLACEHOLDER.findall(node):
        if name not in values:
            known = ", ".join(sorted(values))
            raise SuiteError(f"unknown placeholder ${{{name}}} (known: {known})")
    whole = _PLACEHOLDER.fullmatch(node)
    if whole:
        return values[whole.group(1)]
    return _PLACEHOLDER.sub(lambda m: _as_text(values[m.group(1)]), node)


def _as_text(value: Any) -> str:
    if isinstance(value, list | tuple):
        shown = [str(v) for v in value[:_LIST_IN_TEXT]]
        if len(value) > _LIST_IN_TEXT:
            shown.append(f"... ({len(value)} in all)")
        return ", ".join(shown)
    return f"{value:g}" if isinstance(value, float) else str(value)


def load_suites(
    values: Mapping[str, Any], path: str | Path = SUITE_FILE
) -> dict[str, dict[str, Any]]:
    """Read the suite YAML, fill its placeholders and check every expectation's meta.

    Returns ``{table: suite dict}`` ready for ``ExpectationSuite(**suite)``. The
    severity in ``meta`` is also copied to the expectation's own ``severity`` field
    (GX >= 1.5), so GX's result objects agree with this module.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise SuiteError(f"cannot read suites from {path}: {err}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("suites"), dict):
        raise SuiteError(f"{path}: expected a mapping with a 'suites' mapping")
    unknown = sorted(set(raw["suites"]) - set(TABLES))
    if unknown:
        raise SuiteError(f"{path}: unknown table(s) {unknown}; known: {list(TABLES)}")
    suites = substitute(raw["suites"], values)
    for table, suite in suites.items():
        if not isinstance(suite, dict) or not isinstance(suite.get("expectations"), list):
            raise SuiteError(f"{path}: suites.{table} needs a name and a list of expectations")
        for i, expectation in enumerate(suite["expectations"]):
            _check_meta(expectation, f"{path}: suites.{table}.expectations[{i}]")
    return suites


def _check_meta(expectation: Any, where: str) -> None:
    if not isinstance(expectation, dict) or "type" not in expectation:
        raise SuiteError(f"{where}: expected a mapping with a 'type'")
    meta = expectation.get("meta") or {}
    if meta.get("severity") not in SEVERITIES:
        raise SuiteError(f"{where}: meta.severity must be one of {SEVERITIES}")
    if not meta.get("rule"):
        raise SuiteError(f"{where}: meta.rule (a short description) is missing")
    expectation["severity"] = meta["severity"]


def build_suite(data: Mapping[str, Any]) -> ExpectationSuite:
    """``ExpectationSuite(**data)``, failing loudly where GX would drop expectations.

    GX logs and skips an expectation it cannot build (an unknown type, a bad kwarg),
    so a typo in the YAML would silently weaken the checks: compare the counts and
    name what went missing, with GX's own reason.
    """
    from great_expectations.core import ExpectationSuite

    with _captured_gx_errors() as reasons:
        suite = ExpectationSuite(**data)
    wanted = [e["type"] for e in data.get("expectations", [])]
    if len(suite.expectations) != len(wanted):
        built = [e.expectation_type for e in suite.expectations]
        lost = list(wanted)
        for kind in built:
            lost.remove(kind)
        raise SuiteError(
            f"suite {data.get('name')!r}: {len(wanted)} expectations in the YAML but "
            f"{len(suite.expectations)} built; dropped {lost}"
            + "".join(f"\n  {reason}" for reason in reasons)
        )
    return suite


@contextlib.contextmanager
def _captured_gx_errors() -> Iterator[list[str]]:
    """Collect what GX logs while building a suite instead of printing its traceback."""
    reasons: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            reasons.append(record.getMessage())

    logger = logging.getLogger("great_expectations.core.expectation_suite")
    handler, propagate = _Collect(logging.WARNING), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield reasons
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


# --------------------------------------------------------------------------- tables


def expected_classes(manifest: pd.DataFrame, validate: ValidateParams) -> list[str]:
    """The ``classes`` param, or the labels found when it is empty."""
    if validate.classes:
        return list(validate.classes)
    if "label" not in manifest:
        return []
    labels = manifest["label"].dropna().astype(str).str.strip()
    return sorted(set(labels[labels != ""]))


def build_tables(
    manifest: pd.DataFrame, classes: Sequence[str], splits: Sequence[str]
) -> dict[str, pd.DataFrame]:
    """The frames the suites validate, keyed like the YAML's ``suites``.

    A required column that is missing stays missing in ``images`` (so the
    columns expectation names it); the derived tables are built as if it were empty.
    """
    images = _normalised(manifest)
    full = images.reindex(columns=list(dict.fromkeys([*REQUIRED_COLUMNS, *images.columns])))
    images["sha256_splits"] = full.groupby("sha256")["split"].transform("nunique")

    pairs = pd.MultiIndex.from_product([list(classes), list(splits)], names=["label", "split"])
    counts = full.groupby(["label", "split"]).size().reindex(pairs, fill_value=0)
    class_split_counts = counts.rename("images").reset_index()

    totals = full.groupby("label").size().reindex(list(classes), fill_value=0)
    class_totals = totals.rename("images").rename_axis("label").reset_index()
    smallest = float(class_totals["images"].min()) if len(class_totals) else 0.0
    # An empty class gives inf for the others (flagged) and NaN for itself (skipped:
    # "every class is present in every split" already names it).
    class_totals["ratio_to_smallest"] = class_totals["images"].astype(float) / smallest
    return {
        "images": images,
        "class_split_counts": class_split_counts,
        "class_totals": class_totals,
    }


def _normalised(manifest: pd.DataFrame) -> pd.DataFrame:
    """Blank text counts as missing, sizes as numbers, an absent ``error`` as none.

    DataFrames built in code and CSVs read without ``pipeline.data.manifest.read`` disagree on
    these details; the expectations should not.
    """
    frame = manifest.reset_index(drop=True).copy()
    for column in TEXT_COLUMNS:
        if column in frame:
            text = frame[column].astype("string").str.strip().replace("", pd.NA)
            frame[column] = text.astype(object).where(text.notna(), None)
    for column in NUMBER_COLUMNS:
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    for column in BOOL_COLUMNS:
        if column in frame:
            flags = manifest_columns.as_bool(frame[column]).astype(object)
            frame[column] = flags.where(flags.notna(), None)
    if "error" not in frame:
        frame["error"] = None
    return frame


def _counts(frame: pd.DataFrame, column: str, first: Sequence[str] = ()) -> dict[str, int]:
    if column not in frame:
        return {}
    found = frame[column].dropna().astype(str).value_counts()
    order = [k for k in first if k in found.index] + sorted(set(found.index) - set(first))
    return {key: int(found[key]) for key in order}


# --------------------------------------------------------------------------- run


def validate_manifest(
    manifest: pd.DataFrame,
    validate: ValidateParams,
    *,
    splits: Sequence[str] = SPLITS,
    suite_file: str | Path = SUITE_FILE,
    images_params: ImagesParams,
    docs_dir: str | Path | None = None,
) -> ValidationReport:
    """Run the suites on the manifest and report what failed, file by file.

    ``splits`` are the split names of params' ``data.split``, ``images_params`` its
    ``data.images``. ``docs_dir``: a folder for Great Expectations' Data Docs (HTML),
    created or filled. Raises SuiteError when the suite YAML is broken; a bad
    manifest is a report, not an exception.
    """
    images = _normalised(manifest)
    classes = expected_classes(images, validate)
    suites = load_suites(suite_values(validate, classes, splits, images_params), suite_file)
    tables = build_tables(images, classes, splits)
    evaluated, failures = 0, []
    with _quiet_gx():
        for table, result in _run(tables, suites, docs_dir):
            evaluated += 1
            if not result.success:
                failures.append(_failure(table, tables[table], result))
    if docs_dir is not None:
        make_offline(docs_dir)  # GX's pages load their styles and icons from CDNs
    return ValidationReport(
        images=len(images),
        per_split=_counts(images, "split", splits),
        per_class=_counts(images, "label"),
        evaluated=evaluated,
        failures=tuple(failures),
    )


DOCS_SITE = "data_docs"


def _run(
    tables: Mapping[str, pd.DataFrame],
    suites: Mapping[str, Mapping[str, Any]],
    docs_dir: str | Path | None = None,
) -> Iterator[tuple[str, Any]]:
    """Validate each table with its suite in a throwaway context; yield results in
    YAML order (GX returns them in its own order).

    Each table runs through a Checkpoint, whose UpdateDataDocsAction writes the
    Data Docs when ``docs_dir`` is given. An ephemeral context would put them in a
    temporary folder: a site with an absolute ``base_directory`` keeps them.
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    actions = []
    if docs_dir is not None:
        context.add_data_docs_site(
            site_name=DOCS_SITE,
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(Path(docs_dir).resolve()),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
        actions.append(gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=[DOCS_SITE]))
    source = context.data_sources.add_pandas("manifest")
    for table, suite_data in suites.items():
        suite = context.suites.add(build_suite(suite_data))
        definition = context.validation_definitions.add(gx.ValidationDefinition(
            name=table,
            data=source.add_dataframe_asset(table).add_batch_definition_whole_dataframe("all"),
            suite=suite,
        ))
        checkpoint = context.checkpoints.add(gx.Checkpoint(
            name=table,
            validation_definitions=[definition],
            actions=actions,
            # COMPLETE: every unexpected row's index, to name every offending file.
            result_format={"result_format": "COMPLETE"},
        ))
        run = checkpoint.run(batch_parameters={"dataframe": tables[table]})
        (outcome,) = run.run_results.values()
        by_id = {r.expectation_config.id: r for r in outcome.results}
        for expectation in suite.expectations:
            yield table, by_id[expectation.id]


@contextlib.contextmanager
def _quiet_gx() -> Iterator[None]:
    """Keep GX's info and warning chatter out of the stage output."""
    logger = logging.getLogger("great_expectations")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


# --------------------------------------------------------------------------- failures


def _failure(table: str, frame: pd.DataFrame, result: Any) -> Failure:
    config = result.expectation_config
    column = config.kwargs.get("column")
    errors = _exception_messages(result.exception_info)
    details = result.result or {}
    if errors:
        count, offenders = None, [f"error: {message}" for message in errors]
    elif "unexpected_index_list" in details:
        rows = frame.loc[list(details["unexpected_index_list"])]
        count = int(details.get("unexpected_count", len(rows)))
        offenders = _OFFENDERS[table](rows, column, config.type, frame)
    else:
        count, offenders = None, _table_level(details)
    return Failure(
        table=table,
        expectation=config.type,
        column=column,
        rule=str(config.meta["rule"]),
        severity=str(config.meta["severity"]),
        unexpected_count=count,
        offenders=tuple(offenders),
    )


def _exception_messages(info: Mapping[str, Any] | None) -> list[str]:
    """GX puts one exception at the top level or one per failed metric, keyed by metric."""
    if not info:
        return []
    entries = [info] if "raised_exception" in info else list(info.values())
    messages = [
        str(e.get("exception_message"))
        for e in entries
        if isinstance(e, dict) and e.get("raised_exception")
    ]
    return list(dict.fromkeys(messages))


def _table_level(details: Mapping[str, Any]) -> list[str]:
    missing = details.get("details", {}).get("mismatched", {}).get("missing")
    if missing:
        return [f"missing column(s): {', '.join(map(str, missing))}"]
    if "observed_value" in details:
        return [f"observed: {details['observed_value']}"]
    return []


def _image_offenders(
    rows: pd.DataFrame, column: str, kind: str, frame: pd.DataFrame
) -> list[str]:
    """Name files: the sizes of too small images, the error of undecodable ones, the
    paths sharing a sha256 (with their splits for leakage), the original a copy copies."""
    if column in ("duplicate_of", "leakage"):
        return [_copy_row(i, r, frame) for i, r in rows.iterrows()]
    if column in ("sha256", "sha256_splits") and kind != "expect_column_values_to_not_be_null":
        return [
            _same_file(str(sha), group, with_split=column == "sha256_splits")
            for sha, group in rows.groupby("sha256", sort=False)
        ]
    if kind == "expect_column_values_to_be_unique":
        return [
            f"{value} (listed {len(group)} times)"
            for value, group in rows.groupby(column, sort=False)
        ]
    return [_image_row(i, r, column, kind) for i, r in rows.iterrows()]


def _same_file(sha: str, group: pd.DataFrame, with_split: bool, most: int = 4) -> str:
    """One line per sha256: "a.jpg (train) = b.jpg (test)  [sha256 0123abcd4567]"."""
    names = [
        f"{_path(i, r)} ({r['split']})" if with_split else _path(i, r) for i, r in group.iterrows()
    ]
    names = list(dict.fromkeys(names))
    shown = names[:most] + ([f"{len(names) - most} more"] if len(names) > most else [])
    return " = ".join(shown) + f"  [sha256 {sha[:12]}]"


def _image_row(index: Any, row: pd.Series, column: str, kind: str) -> str:
    path = _path(index, row)
    if column in ("width", "height") and kind != "expect_column_values_to_not_be_null":
        return f"{path} {_show(row.get('width'))}x{_show(row.get('height'))}"
    if column == "error" or kind == "expect_column_values_to_not_be_null":
        error = row.get("error")
        return f"{path}: {error}" if _present(error) else path
    issue = row.get("issue")
    why = f": {issue}" if _present(issue) else ""
    return f"{path} ({column}={_show(row.get(column))}){why}"


def _copy_row(index: Any, row: pd.Series, frame: pd.DataFrame) -> str:
    """"b.jpg (test): near copy (distance 2) of a.jpg (train)"."""
    original = row.get("duplicate_of")
    if not _present(original):
        return f"{_path(index, row)} ({row.get('split')})"
    distance = row.get("duplicate_distance")
    kind = ("exact copy" if _present(distance) and int(distance) == 0
            else f"near copy (distance {_show(distance)})" if _present(distance) else "copy")
    where = frame.loc[frame["path"] == original, "split"]
    split = f" ({where.iloc[0]})" if len(where) else ""
    return f"{_path(index, row)} ({row.get('split')}): {kind} of {original}{split}"


def _count_offenders(rows: pd.DataFrame, column: str, kind: str, _: pd.DataFrame) -> list[str]:
    return [f"{r['label']}/{r['split']}: {int(r['images'])} image(s)" for _, r in rows.iterrows()]


def _total_offenders(rows: pd.DataFrame, column: str, kind: str, frame: pd.DataFrame) -> list[str]:
    smallest = frame.loc[frame["images"].idxmin()]
    return [
        f"{r['label']}: {int(r['images'])} images, {r['ratio_to_smallest']:.1f}x "
        f"{smallest['label']} ({int(smallest['images'])})"
        for _, r in rows.sort_values("images", ascending=False).iterrows()
    ]


_OFFENDERS: dict[str, Callable[[pd.DataFrame, str, str, pd.DataFrame], list[str]]] = {
    "images": _image_offenders,
    "class_split_counts": _count_offenders,
    "class_totals": _total_offenders,
}


def _path(index: Any, row: pd.Series) -> str:
    path = row.get("path")
    return str(path) if _present(path) else f"(row {index}, no path)"


def _present(value: Any) -> bool:
    return not (value is None or (pd.api.types.is_scalar(value) and pd.isna(value)))


def _show(value: Any) -> str:
    """12.0 -> "12" (a column with a gap is float), missing -> "?", text as is."""
    if not _present(value):
        return "?"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float | int) and float(value).is_integer():
        return str(int(value))
    return str(value)
