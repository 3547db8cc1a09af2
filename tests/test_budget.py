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
from pipeline.training.budget_planner import Planner
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
                   val_steps=VAL_STEPS, schedule=schedule)


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


def test_a_machine_getting_quieter_lengthens_the_plan_and_its_schedule():
    """Steps three times faster from the second epoch (12 s an epoch instead of 32): the
    plan made from the slow first steps grows once the epochs measure the change, after
    the warm-up, and its schedule still ends at the last step, within the budget."""
    clock = Clock(10.0)
    plan = planner(clock, seconds=200)
    history = tiny_fit(plan, Costs(clock, first=5, step=lambda e: 1.0 if e >= 1 else 3.0,
                                   val=2))
    assert len(history.history["loss"]) == plan.planned > plan.first_plan + 3
    assert plan.stopped_by == "budget" and clock.now <= 200 - plan.budget.reserve()
    assert lr_at(plan.schedule, plan.planned * STEPS) == pytest.approx(0.0, abs=1e-9)
    assert lr_at(plan.schedule, plan.planned * STEPS - 1) > 0


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


def test_a_resumed_plan_goes_on_with_its_schedule_and_time_used():
    """Killed after two epochs of a plan that shrank (a slower machine), started again in
    a new process: the plan, the schedule's progress and the time used come back, so the
    rate at the next step is the one the run would have had."""
    clock = Clock(10.0)
    first = planner(clock)
    tiny_fit(first, Costs(clock, first=5, step=lambda e: 3.0 if e >= 1 else 1.0, val=2),
             epochs=2)
    state = first.state()
    again = planner(Clock(0.0))  # the process started again
    again.restore(state)
    assert again.planned == first.planned == 3
    assert again.budget.elapsed() == state["used_seconds"] == 58
    assert again.epoch_cost() == first.epoch_cost()  # planned from what was measured
    for step in (20, 25, 30):
        assert lr_at(again.schedule, step) == pytest.approx(lr_at(first.schedule, step))
    assert lr_at(again.schedule, 25) > 0 and lr_at(again.schedule, 30) == pytest.approx(0.0)


def test_a_plan_made_after_the_warm_up_goes_on_from_the_rate_reached():
    """Replanned from 6 to 10 epochs at step 30: the one-cycle rate goes on from 60 % of
    its peak (where it was) down to 0 at the new end, without a jump; a plan made in the
    warm-up starts the schedule afresh."""
    schedule = PlannedSchedule("onecycle", 0.01, STEPS, 50, warmup_epochs=1)
    schedule.plan(6, step=5)  # in the warm-up: 10 warm-up steps, then down to step 60
    assert lr_at(schedule, 5) == pytest.approx(0.005) and lr_at(schedule, 35) == pytest.approx(
        0.005)
    before = lr_at(schedule, 30)
    schedule.plan(10, step=30)
    assert lr_at(schedule, 30) == pytest.approx(before) == pytest.approx(0.006)
    assert lr_at(schedule, 65) == pytest.approx(0.003)  # half-way from step 30 to 100
    assert lr_at(schedule, 100) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("kind", ["cosine", "step", "constant"])
def test_planned_at_its_epochs_it_is_the_schedule_without_a_budget(kind):
    """A budget that plans the recipe's own epochs changes nothing in the rate."""
    from helpers import wrn_recipe

    from pipeline.training.schedules import make_schedule

    recipe = wrn_recipe(schedule=kind, learning_rate=0.1, epochs=8, warmup_epochs=1,
                        step_epochs=[3, 5], step_factor=0.2)
    plain = make_schedule(recipe, STEPS)
    planned = make_schedule(recipe, STEPS, planned=True)
    assert isinstance(planned, PlannedSchedule)
    planned.plan(8, step=3)
    for step in (0, 4, 10, 29, 30, 45, 50, 79, 80):
        expected = plain if isinstance(plain, float) else lr_at(plain, step)
        assert lr_at(planned, step) == pytest.approx(expected, rel=1e-5, abs=1e-9), step
