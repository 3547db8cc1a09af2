"""The validation report: failures with their files, its metrics, and the table printed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SEVERITIES = ("critical", "warning")  # an expectation's meta.severity: critical fails
MAX_FILES = 5


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
