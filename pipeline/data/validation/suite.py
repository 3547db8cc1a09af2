"""The expectation suites: read pipeline/data/suites/*.yaml, fill its ``${name}``
placeholders from params, check each expectation's meta, and build it for Great
Expectations without letting it drop one silently."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from pipeline.core.errors import PipelineError
from pipeline.core.image_formats import FORMAT_ALIASES
from pipeline.core.params import ImagesParams, ValidateParams
from pipeline.data.validation.tables import TABLES
from pipeline.data.validation.validation_report import SEVERITIES

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuite

SUITE_FILE = Path(__file__).parents[1] / "suites" / "manifest.yaml"

_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")
_LIST_IN_TEXT = 6  # a longer list inside a rule's text is cut, so the table stays readable


class SuiteError(PipelineError, ValueError):
    """The suite YAML is malformed, names an unknown placeholder or table, or lost
    expectations while Great Expectations built it."""


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
    (GX >= 1.5), so GX's result objects agree with this package.
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
