"""Training: ``fit`` with early stopping and DVCLive curves, ``optimizers``, learning-rate
schedules (``schedules``), the time budget's planner (``budget_planner``), batch
augmentation (``augment``), training inputs (``inputs``), what every network recipe
shares (``recipe``), and the recipes that use them: the head on cached features
(``head_recipes``, with ``softmax``: its L-BFGS fit), the backbone + head fine-tuned end
to end (``finetune``, with ``freeze``) and a network trained on the images by itself
(``scratch``). Running a recipe (placement, the backup a killed run resumes from, saving)
is ``pipeline.runs``', the layer below: a recipe is handed the run's backup and passes it
to ``fit``."""
