"""Evaluation: one model on the held-out test split (``evaluate``, what the evaluate stages
run: ``scores``, ``confusion``, ``calibration``, ``mistakes``), the table that compares
models and the pick (``report``, ``choice``), every model's training curves as tables
(``curves``), and inference with a saved model (``inference``)."""
