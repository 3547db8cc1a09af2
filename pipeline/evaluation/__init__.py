"""Evaluation: one model on the held-out test split (``evaluate``, what the evaluate stages
run: ``scores``, ``predictions`` per image, ``confusion`` and the ``confused_pairs``,
``calibration``, ``mistakes`` with Grad-CAM's ``saliency``), the models compared with
paired tests (``stats``) and the pick (``comparison``, ``choice``), the report that shows
them (``report``, its chart ``charts``), the shipped model's card (``modelcard``), every
model's training curves as tables (``curves``), and inference with a saved model
(``inference``)."""
