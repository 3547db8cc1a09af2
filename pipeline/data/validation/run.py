"""Run the suites on the manifest's tables with Great Expectations 1.x, and turn its
results into a :class:`~pipeline.data.validation.validation_report.ValidationReport`.

Given a folder, Great Expectations also writes its Data Docs (HTML pages of every
expectation and result) there, made to render offline (pipeline/data/data_docs.py).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.core.params import ImagesParams, ValidateParams
from pipeline.data.data_docs import make_offline
from pipeline.data.splits import SPLITS
from pipeline.data.validation.offenders import offenders
from pipeline.data.validation.suite import SUITE_FILE, build_suite, load_suites, suite_values
from pipeline.data.validation.tables import build_tables, counts, expected_classes, normalised
from pipeline.data.validation.validation_report import Failure, ValidationReport

log = logging.getLogger(__name__)
DOCS_SITE = "data_docs"


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
    images = normalised(manifest)
    classes = expected_classes(images, validate)
    suites = load_suites(suite_values(validate, classes, splits, images_params), suite_file)
    tables = build_tables(images, classes, splits)
    for table, suite in suites.items():
        log.debug("validate: %s (%d rows): %d expectations from %s", table,
                  len(tables[table]), len(suite["expectations"]), suite_file)
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
        per_split=counts(images, "split", splits),
        per_class=counts(images, "label"),
        evaluated=evaluated,
        failures=tuple(failures),
    )


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


def _failure(table: str, frame: pd.DataFrame, result: Any) -> Failure:
    """A failed GX result as a Failure: its rule and severity from the YAML's meta, and
    the rows it names (or GX's error, or the table-level observation)."""
    config = result.expectation_config
    column = config.kwargs.get("column")
    errors = _exception_messages(result.exception_info)
    details = result.result or {}
    if errors:
        count, named = None, [f"error: {message}" for message in errors]
    elif "unexpected_index_list" in details:
        rows = frame.loc[list(details["unexpected_index_list"])]
        count = int(details.get("unexpected_count", len(rows)))
        named = offenders(table, rows, column, config.type, frame)
    else:
        count, named = None, _table_level(details)
    return Failure(
        table=table,
        expectation=config.type,
        column=column,
        rule=str(config.meta["rule"]),
        severity=str(config.meta["severity"]),
        unexpected_count=count,
        offenders=tuple(named),
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
