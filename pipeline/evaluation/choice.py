"""The recommendation, from the evaluate stages' outputs: what export and report both need.

The export stage exports the model this picks and the report stage explains the pick;
both call :func:`recommendation`, so the two cannot disagree on the rule or its inputs.
"""

from __future__ import annotations

from pipeline.core import paths
from pipeline.core.errors import PipelineError
from pipeline.core.io import read_json
from pipeline.core.params import Params
from pipeline.evaluation import predictions
from pipeline.evaluation.comparison import ModelResult, Report, compare


def evaluate_stage(params: Params, name: str) -> str:
    """The dvc.yaml stage that evaluates model ``name``: one stage group per params.yaml
    family (DVC's foreach takes one dict, and params.yaml keeps finetune and scratch apart)."""
    if name in params.finetune:
        return f"evaluate_finetune@{name}"
    if name in params.scratch:
        return f"evaluate_scratch@{name}"
    return "evaluate_head"


def load_results(params: Params) -> list[ModelResult]:
    """Every model's test metrics, card, predictions and the run facts of its evaluation
    (the costs: the size of what ships, the speed), a PipelineError naming a missing one."""
    models = []
    for name in params.models():
        needed = [paths.evaluation(name),
                  paths.predictions(name), paths.model_card(name),
                  paths.run_record(f"evaluate/{name}")]
        missing = [str(p) for p in needed if not p.is_file()]
        if missing:
            raise PipelineError(
                f"model {name!r} has no evaluation ({', '.join(missing)} missing): run "
                f"`dvc repro {evaluate_stage(params, name)}`")
        card = read_json(paths.model_card(name))
        models.append(ModelResult(name, card.get("family", name), read_json(needed[0]), card,
                                  predictions.read(needed[1]), read_json(needed[3])))
    return models


def recommendation(params: Params) -> Report:
    """Every model compared on the same test images, and the one params.yaml's rule picks."""
    return compare(load_results(params), params.report.cost, params.report.alpha)
