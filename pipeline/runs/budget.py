"""A training stage's time budget: the clock it counts on and how many epochs fit in it.

``budget_seconds`` (a ``finetune``/``scratch`` entry's key) covers what a user waits for:
the whole stage process, from its start (the interpreter, TensorFlow's import, the data,
the model's build and trace) to its model and card written. So :class:`Budget` counts from
the process's own start (:func:`process_age`), not from the first training step.

No framework here: the Keras callback that plans a fit by it is
``pipeline.training.budget_planner.Planner``; a training loop of another kind (the NumPy head)
can plan with :class:`Budget` and :func:`plan_epochs` alone.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

_IMPORTED = time.monotonic()  # the fallback start, where /proc cannot tell the process's


def process_age() -> float:
    """Seconds since this process started (Linux: its start time in /proc/self/stat against
    the boot clock); elsewhere, since this module was imported, which a stage does before
    importing TensorFlow."""
    try:
        # Field 22 (after the ")" closing the command name, field 20): clock ticks after boot.
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - started)
    except (OSError, ValueError, IndexError, AttributeError):
        return time.monotonic() - _IMPORTED


@dataclass(frozen=True)
class Budget:
    """``seconds`` of wall time, counted from ``started`` (a ``clock()`` reading), plus
    ``spent_before``: what a killed run had used of the same budget when it last saved
    its state (a resumed run keeps the budget it started with)."""

    seconds: float
    started: float
    spent_before: float = 0.0
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def of_process(cls, seconds: float | None) -> Budget | None:
        """The budget of a stage: ``seconds`` from this process's start; None: no budget."""
        if seconds is None:
            return None
        return cls(float(seconds), time.monotonic() - process_age())

    @classmethod
    def from_now(cls, seconds: float, clock: Callable[[], float] = time.monotonic) -> Budget:
        return cls(float(seconds), clock(), clock=clock)

    def elapsed(self) -> float:
        return self.spent_before + self.clock() - self.started

    def remaining(self) -> float:
        return self.seconds - self.elapsed()

    def resumed(self, spent_before: float) -> Budget:
        """This budget for a run that goes on after a kill, having used ``spent_before``."""
        return replace(self, spent_before=float(spent_before))

    def reserve(self) -> float:
        """Seconds kept back at the end for what follows training: the best weights
        restored, the model and card saved, the process's exit (about 2 s for the
        networks here) and the noise of a shared machine (2 % of the budget)."""
        return 2.0 + 0.02 * self.seconds


def plan_epochs(*, done: int, cap: int, epoch_seconds: float, left: float) -> int:
    """Epochs a run should have in all: those ``done``, and as many more of
    ``epoch_seconds`` each as fit in ``left`` seconds; at least the one under way
    (``done`` + 1 before the first epoch ends, else ``done``), at most ``cap``."""
    more = math.floor(left / epoch_seconds) if epoch_seconds > 0 else cap
    return max(min(cap, done + max(more, 0)), done, 1)


class Plan(Protocol):
    """What a fit and a run's memory ask of a budget's planner (the Keras one is
    ``pipeline.training.budget_planner.Planner``): why it stopped the fit, the state a killed run
    resumes with, and the facts a card records."""

    budget: Budget
    stopped_by: str | None  # budget | deadline | None (it did not stop the fit)

    def state(self) -> dict[str, Any]: ...

    def restore(self, state: dict[str, Any]) -> None: ...

    def facts(self) -> dict[str, Any]: ...
