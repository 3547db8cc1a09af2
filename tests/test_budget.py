"""A training run's time budget: its clock, the plan of epochs, and the schedule fitted to it.

The planner is driven by a clock the test moves (each training step, validation pass and
set-up costs the seconds the test says), so that "ends on time" is exact and the figures
are the same on any machine, however loaded.
"""

from __future__ import annotations

import time

import keras
import numpy as np
import psutil
import pytest

from pipeline.runs.budget import Budget, plan_epochs, process_age
from pipeline.training.budget import Planner
from pipeline.training.schedules import PlannedSchedule

STEPS = 10  # training batches an epoch (40 examples, batch 4)
VAL_STEPS = 2


class Clock:
    """Seconds the test sets: the budget's clock."""

    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class Costs(keras.callbacks.Callback):
    """Moves ``clock`` as if the fit's first step (its trace) took ``first`` seconds, every
    other step ``step(epoch)`` and each validation pass ``val``. Put before the planner."""

    def __init__(self, clock: Clock, *, first: float, step, val: float):
        super().__init__()
        self.clock, self.first, self.step, self.val = clock, first, step, val
        self.steps = 0
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self.clock.now += self.first if self.steps == 0 else self.step(self.epoch)
        self.steps += 1

    def on_test_end(self, logs=None):
        self.clock.now += self.val


def tiny_fit(planner: Planner, costs: Costs, epochs: int = 50) -> keras.callbacks.History:
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 4)).astype("float32"), rng.integers(0, 2, 40)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(keras.optimizers.Adam(planner.schedule), "sparse_categorical_crossentropy")
    return model.fit(x, y, batch_size=4, epochs=epochs, validation_data=(x[:8], y[:8]),
                     callbacks=[costs, planner], verbose=0, shuffle=False)


def planner(clock: Clock, seconds: float = 100, epochs: int = 50, warmup: int = 1) -> Planner:
    schedule = PlannedSchedule("onecycle", 0.01, STEPS, epochs, warmup_epochs=warmup)
    return Planner(Budget(seconds, started=0.0, clock=clock), epochs=epochs, steps=STEPS,
                   val_steps=VAL_STEPS, schedule=schedule, free_epochs=warmup)


def lr_at(schedule, step: int) -> float:
    return float(keras.ops.convert_to_numpy(schedule(step)))


# --- the clock and the arithmetic -------------------------------------------------------

def test_a_stage_budget_counts_from_its_process_start():
    """The budget covers what a user waits for: the process from its start (TensorFlow's
    import included), not from when the training code first looked at the clock."""
    age = time.time() - psutil.Process().create_time()
    assert process_age() == pytest.approx(age, abs=0.5)
    assert age > 1  # this test process has been up a while: a clock from now would be ~0
    budget = Budget.of_process(600)
    assert budget.elapsed() == pytest.approx(age, abs=0.5)
    assert budget.remaining() == pytest.approx(600 - age, abs=0.5)
    assert Budget.of_process(None) is None


def test_plan_epochs_fits_the_time_left_within_the_cap():
    assert plan_epochs(done=2, cap=50, epoch_seconds=10, left=45) == 6
    assert plan_epochs(done=2, cap=5, epoch_seconds=10, left=450) == 5
    assert plan_epochs(done=3, cap=50, epoch_seconds=10, left=-5) == 3  # nothing more
    assert plan_epochs(done=0, cap=50, epoch_seconds=10, left=3) == 1  # the one under way


def test_a_resumed_budget_counts_the_time_the_killed_run_used():
    clock = Clock(100.0)
    budget = Budget(300, started=100.0, clock=clock).resumed(120)
    clock.now = 130.0
    assert budget.elapsed() == 150 and budget.remaining() == 150


# --- the plan -----------------------------------------------------------------------------

def test_the_plan_ends_the_fit_and_its_schedule_within_the_budget():
    """Set-up 10 s, a 5 s trace, 1 s steps, 2 s validation, 100 s budget (finish line
    100 - 4 reserved = 96 s): after timing five steps it plans 7 epochs (a validation
    estimated at half a step per batch), at the end of the first epoch, measured, 6; the
    fit runs 6 epochs, ends at 86 s, and the one-cycle rate reaches 0 at its last step."""
    clock = Clock(10.0)
    plan = planner(clock)
    history = tiny_fit(plan, Costs(clock, first=5, step=lambda e: 1.0, val=2))
    assert plan.first_plan == 7 and plan.planned == 6
    assert len(history.history["loss"]) == 6
    assert plan.stopped_by == "budget" and clock.now == 86 <= 100 - plan.budget.reserve()
    schedule = plan.schedule
    assert lr_at(schedule, STEPS) == pytest.approx(0.01)  # the peak, after the warm-up
    assert lr_at(schedule, 6 * STEPS) == pytest.approx(0.0, abs=1e-9)
    assert lr_at(schedule, 3.5 * STEPS) == pytest.approx(0.005)  # half-way down
    facts = plan.facts()
    assert facts["planned_epochs"] == 6 and facts["budget_seconds"] == 100
    assert facts["step_seconds"] == 1 and facts["epoch_seconds"] == 12


def test_a_budget_larger_than_the_epochs_runs_them_all():
    clock = Clock(0.0)
    plan = planner(clock, seconds=1000, epochs=4)
    history = tiny_fit(plan, Costs(clock, first=1, step=lambda e: 1.0, val=1), epochs=4)
    assert len(history.history["loss"]) == 4 and plan.planned == 4
    assert plan.stopped_by is None  # the fit reports "epochs"


def test_a_machine_getting_busier_shortens_the_plan_and_its_schedule():
    """Steps three times slower from the second epoch (32 s an epoch): measured at its
    end, the plan of 6 shrinks to 3, whose schedule ends at the last step; the fit ends
    at 90 s, where the first plan would have run to 26 + 5 x 32 s."""
    clock = Clock(10.0)
    plan = planner(clock)
    history = tiny_fit(plan, Costs(clock, first=5, step=lambda e: 3.0 if e >= 1 else 1.0,
                                   val=2))
    assert len(history.history["loss"]) == plan.planned == 3
    assert plan.stopped_by == "budget" and clock.now == 90
    assert lr_at(plan.schedule, 3 * STEPS) == pytest.approx(0.0, abs=1e-9)


def test_a_lasting_slowdown_is_planned_for_before_the_schedule_is_cut():
    """Steps twice as slow from the third epoch on (22 s an epoch): the plan shrinks to 4
    at once (the last epoch, not the mean of the last two, which would keep 5 and be cut
    at the fourth's end with the rate still high), and the fit ends with its schedule."""
    clock = Clock(10.0)
    plan = planner(clock)
    history = tiny_fit(plan, Costs(clock, first=5, step=lambda e: 2.0 if e >= 2 else 1.0,
                                   val=2))
    assert len(history.history["loss"]) == plan.planned == 4
    assert plan.stopped_by == "budget" and clock.now == 82
    assert lr_at(plan.schedule, 4 * STEPS) == pytest.approx(0.0, abs=1e-9)


def test_a_slowdown_the_plan_cannot_absorb_is_cut_at_the_finish_line():
    """Slower from the third epoch: the plan shrinks, and the epoch that would overrun
    stops at the step that reaches the finish line (stopped by the deadline)."""
    clock = Clock(10.0)
    plan = planner(clock)
    history = tiny_fit(plan, Costs(clock, first=5, step=lambda e: 3.0 if e >= 2 else 1.0,
                                   val=2))
    assert len(history.history["loss"]) < 6
    assert clock.now <= 100 - plan.budget.reserve()
    assert plan.stopped_by == "deadline"


def test_out_of_time_mid_epoch_the_epoch_ends_at_once():
    """A budget the first epoch cannot fit: the epoch stops at the step that reaches the
    finish line, and is validated (the model is kept)."""
    clock = Clock(10.0)
    plan = planner(clock, seconds=20)  # finish line 20 - 2.4 = 17.6 s
    history = tiny_fit(plan, Costs(clock, first=5, step=lambda e: 1.0, val=2))
    assert len(history.history["val_loss"]) == 1 and plan.stopped_by == "deadline"
    assert clock.now < 10 + 5 + 9 + 2  # short of a whole epoch
    assert clock.now - 2 <= 20 - plan.budget.reserve()  # its last step ended by the line


def test_a_resumed_plan_is_kept_and_only_shortened():
    clock = Clock(10.0)
    first = planner(clock)
    tiny_fit(first, Costs(clock, first=5, step=lambda e: 1.0, val=2), epochs=2)
    state = first.state()
    again = planner(Clock(0.0))  # the process started again
    again.restore(state)
    assert again.planned == first.planned == 6
    assert again.budget.elapsed() == state["used_seconds"] == 38
    assert lr_at(again.schedule, 3 * STEPS) == pytest.approx(lr_at(first.schedule, 3 * STEPS))
    # Steps ten times cheaper now: a fresh plan would grow, the kept one does not.
    history = tiny_fit(again, Costs(again.budget.clock, first=0.5, step=lambda e: 0.1, val=0.2))
    assert len(history.history["loss"]) == 6 and again.planned == 6
