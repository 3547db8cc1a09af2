"""A fit planned within a time budget: how many epochs, and a schedule that ends with them.

:class:`Planner` is a Keras callback. It times the first training steps (the first of a
fit holds the trace and is left out), estimates an epoch's cost (its steps, the
validation pass) and sets the fit's epochs to as many as end before the budget's finish
line (``Budget.seconds`` less ``Budget.reserve()``: saving the model and the process's
exit come after the fit), never more than the recipe's ``epochs``. The learning-rate
schedule (``schedules.PlannedSchedule``) is set to end with them, so that a budgeted run
anneals to its end instead of being cut off at a high rate.

The plan is made once the first steps are timed, and again at the end of every epoch
from what the epochs measured, longer or shorter as the machine turned out faster or
busier: the schedule keeps the progress it has made and spreads the rest over the new
plan, so the rate never jumps. Past the finish line with the plan unfinished, the epoch
under way ends at once (``stopped_by: deadline``, the schedule cut short). Early stopping
may still end the fit sooner.

The plan, the schedule's state, the time used and why the fit stopped go into the run's
memory after every epoch (``pipeline.runs.memory``): a killed run that resumes goes on
with them and keeps its budget (the time used before counts, ``Budget.resumed``).
"""

from __future__ import annotations

import logging
import statistics
from typing import Any

import keras
import tensorflow as tf

from pipeline.runs.budget import Budget, plan_epochs
from pipeline.training.schedules import PlannedSchedule

log = logging.getLogger(__name__)

PROBE_STEPS = 5  # steps timed (after the traced first one) before the first plan
FORWARD_SHARE = 0.5  # a validation batch's cost in training steps, until one is measured


class Planner(keras.callbacks.Callback):
    """Plans a fit's epochs within ``budget`` (see the module).

    ``epochs``: the recipe's, the most the plan may give; ``steps`` and ``val_steps``: the
    training and validation batches of an epoch; ``schedule``: the learning rate to fit
    to the plan (None: a constant rate, nothing to fit); ``finish_by``: the budget's
    seconds by which this fit must end (None: the budget's end less its reserve; a fit
    that another follows, the fine-tune's head phase, ends sooner)."""

    def __init__(self, budget: Budget, *, epochs: int, steps: int, val_steps: int,
                 schedule: PlannedSchedule | None = None, finish_by: float | None = None,
                 probe: int = PROBE_STEPS) -> None:
        super().__init__()
        self.budget = budget
        self.cap = epochs
        self.steps = steps
        self.val_steps = val_steps
        self.schedule = schedule
        self.finish_by = budget.seconds - budget.reserve() if finish_by is None else finish_by
        self.probe = probe
        self.planned = epochs
        self.first_plan: int | None = None
        self.stopped_by: str | None = None  # budget | deadline
        self.step_seconds: list[float] = []
        self.val_seconds: list[float] = []
        self.epoch_seconds: list[float] = []  # steps and validation, after a fit's first epoch
        self.between_seconds: list[float] = []  # an epoch's end to the next one's begin
        self._epoch = 0
        self._fit_steps = 0
        self._fit_epochs = 0
        self._epoch_begun = 0.0
        self._epoch_ended: float | None = None
        self._last = 0.0
        self._test_begun = 0.0

    # --- what the run keeps -------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The plan, the schedule's state and the time used, for the run's memory."""
        return {"planned_epochs": self.planned, "first_planned_epochs": self.first_plan,
                "used_seconds": round(self.budget.elapsed(), 3),
                "stopped_by": self.stopped_by,
                "schedule": None if self.schedule is None else self.schedule.state(),
                # What the plan was made from: a resumed run plans from these until it has
                # measured its own (its first epoch holds the traces).
                "costs": {"step": self.step_seconds[-PROBE_STEPS:],
                          "validation": self.val_seconds[-1:],
                          "epoch": self.epoch_seconds[-2:],
                          "between": self.between_seconds[-1:]}}

    def restore(self, state: dict[str, Any]) -> None:
        """Go on with a killed run's plan and schedule, and its budget (its time used
        counts)."""
        self.planned = int(state["planned_epochs"])
        self.first_plan = state.get("first_planned_epochs")
        self.stopped_by = state.get("stopped_by")
        self.budget = self.budget.resumed(float(state["used_seconds"]))
        if self.schedule is not None and state.get("schedule"):
            self.schedule.restore(state["schedule"])
        costs = state.get("costs") or {}
        self.step_seconds = [float(s) for s in costs.get("step", [])]
        self.val_seconds = [float(s) for s in costs.get("validation", [])]
        self.epoch_seconds = [float(s) for s in costs.get("epoch", [])]
        self.between_seconds = [float(s) for s in costs.get("between", [])]

    def facts(self) -> dict[str, Any]:
        """What a card records of the budget: the seconds, the plan, the costs it used."""
        out: dict[str, Any] = {"budget_seconds": self.budget.seconds,
                               "planned_epochs": self.planned,
                               "first_planned_epochs": self.first_plan}
        if self.step_seconds:
            out["step_seconds"] = round(statistics.median(self.step_seconds), 4)
        if self.first_plan is not None or self.step_seconds:
            out["epoch_seconds"] = round(self.epoch_cost(), 2)
        return out

    # --- the estimates ------------------------------------------------------------------

    def validation_cost(self) -> float:
        if self.val_seconds:  # the last: the first one holds a trace
            return self.val_seconds[-1]
        step = statistics.median(self.step_seconds) if self.step_seconds else 0.0
        return self.val_steps * step * FORWARD_SHARE

    def epoch_cost(self) -> float:
        """Seconds of one more epoch: the last epoch measured, or the mean of the last two
        if more (recent, and cautious: on a machine getting busier the plan shrinks while
        its schedule can still end with it, rather than being cut at the finish line),
        else its steps at the median step's cost and a validation pass; and what runs
        between two epochs (the callbacks that log and back the run up)."""
        between = self.between_seconds[-1] if self.between_seconds else 0.0
        if self.epoch_seconds:
            last = self.epoch_seconds[-2:]
            return max(last[-1], statistics.fmean(last)) + between
        step = statistics.median(self.step_seconds) if self.step_seconds else 0.0
        return self.steps * step + self.validation_cost() + between

    # --- the plan -----------------------------------------------------------------------

    def _plan(self, done: int, left: float) -> None:
        planned = agreed(self.model, plan_epochs(
            done=done, cap=self.cap, epoch_seconds=self.epoch_cost(), left=left))
        if self.first_plan is None:
            self.first_plan = planned
        if planned != self.planned:
            log.info(f"budget {self.budget.seconds:g} s: {planned} epochs planned (of at most "
                     f"{self.cap}; {self.epoch_cost():.1f} s an epoch, {left:.0f} s left)")
            self.planned = planned
            if self.schedule is not None:
                self.schedule.plan(planned, int(self.model.optimizer.iterations.numpy()))

    # --- Keras' hooks -------------------------------------------------------------------

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._fit_steps = 0
        self._fit_epochs = 0
        self._epoch_ended = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        now = self.budget.clock()
        if self._epoch_ended is not None:
            self.between_seconds.append(now - self._epoch_ended)
        self._epoch, self._epoch_begun, self._last = epoch, now, now
        self._fit_epochs += 1

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        now = self.budget.clock()
        self._fit_steps += 1
        if self._fit_steps > 1:  # the first step of a fit holds the trace
            self.step_seconds.append(now - self._last)
        self._last = now
        if (self.first_plan is None
                and (len(self.step_seconds) >= self.probe or batch + 1 >= self.steps)):
            rest = (self.steps - batch - 1) * statistics.median(self.step_seconds or [0.0])
            left = self.finish_by - self.budget.elapsed() - rest - self.validation_cost()
            self._plan(self._epoch + 1, left)
        if (self.budget.elapsed() + self.validation_cost() >= self.finish_by
                and not self.model.stop_training and not multi_worker(self.model)):
            log.warning(f"budget {self.budget.seconds:g} s: out of time in epoch "
                        f"{self._epoch + 1} of {self.planned} planned; stopping it here")
            self.planned = self._epoch + 1
            self.stopped_by = "deadline"
            self.model.stop_training = True

    def on_test_begin(self, logs: dict | None = None) -> None:
        self._test_begun = self.budget.clock()

    def on_test_end(self, logs: dict | None = None) -> None:
        self.val_seconds.append(self.budget.clock() - self._test_begun)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        now = self.budget.clock()
        if self._fit_epochs > 1:  # a fit's first epoch holds the traces
            self.epoch_seconds.append(now - self._epoch_begun)
        self._epoch_ended = now
        done = epoch + 1
        if self.stopped_by is None and done < self.planned:
            self._plan(done, self.finish_by - self.budget.elapsed())
            if self.planned <= done:  # fell behind: nothing more fits
                self.stopped_by = "deadline"
        if done >= self.planned:
            self.stopped_by = self.stopped_by or ("budget" if self.planned < self.cap else None)
            self.model.stop_training = True


def multi_worker(model: keras.Model) -> bool:
    return isinstance(model.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy)


def agreed(model: keras.Model, planned: int) -> int:
    """The plan every worker of a cluster keeps: the shortest (each worker times its own
    steps; workers that stopped at different epochs would wait for each other for ever).
    On one machine, ``planned`` itself."""
    if not multi_worker(model):
        return planned
    strategy = model.distribute_strategy
    plans = strategy.gather(strategy.run(lambda: tf.constant([planned], tf.int64)), axis=0)
    return int(min(plans.numpy()))
