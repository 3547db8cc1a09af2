"""Evaluation: one model on the held-out test split (``evaluate``, what the evaluate stages
run: ``scores``, ``confusion``, ``calibration``, ``mistakes``), the models compared and
the pick (``comparison``, ``choice``), the report that shows them (``report``, its chart
``charts``), every model's training curves as tables (``curves``), and inference with a
saved model (``inference``)."""
