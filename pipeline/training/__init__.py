"""Training: ``fit`` with early stopping and DVCLive curves, optimizers, learning-rate
schedules, batch augmentation, training inputs, and the recipes that use them: the
head on cached features (``head``), the backbone + head fine-tuned end to end
(``finetune``, with ``freeze``) and a network trained on the images by itself
(``scratch``). A recipe is handed the fit it calls; running it (placement, resuming a
killed run, saving) is ``pipeline.runs``'."""
